// format.hpp: how one embedding row is stored (issue 16; Yang et al.,
// "Mixed-Precision Embedding Using a Cache", arXiv 2010.11305), and the
// conversions between a stored row and FP32.
//
// Row layouts (bytes of one row of dimension d; rows are packed back to
// back, no padding; multi-byte fields little-endian, unaligned):
//   fp32  d x float                                   4d bytes
//   fp16  d x IEEE binary16                           2d bytes
//   bf16  d x bfloat16                                2d bytes
//   int8  d x uint8 q, then float scale, float bias   d + 8 bytes
//         (FBGEMM's fused 8-bit row-wise layout)
//   int4  ceil(d / 2) bytes of q (element j in byte j / 2, low nibble for
//         even j), then fp16 scale, fp16 bias        ceil(d / 2) + 4 bytes
//         (FBGEMM's fused n-bit row-wise layout, "SBHalf")
// An integer row decodes as x_j = q_j * scale + bias. Quantising follows
// FBGEMM: bias = the row's minimum (int4: rounded to fp16 first), scale =
// (max - min) / (2^bits - 1) (int4: rounded to fp16; a zero range gives
// scale 1 so the inverse is finite), q = round((x - bias) / scale) clamped to
// [0, 2^bits - 1] (int8 divides by (max - min + 1e-8) / 255 as FBGEMM does).
//
// Rounding: nearest (ties to even) or stochastic. Stochastic rounding picks
// the upper of the two neighbouring representable values with probability
// equal to the fractional distance, so E[decoded] = x (for the integer
// formats: given the row's scale and bias). Its randomness is a pure
// function of a 64-bit key and the element index (uniform01 below), so a run
// is reproducible from its seed; the caller derives the key from (seed,
// table, row, step, purpose).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace paralab::emb {

enum class Format { fp32, fp16, bf16, int8, int4 };
enum class Rounding { nearest, stochastic };

// "fp32", "fp16", "bf16", "int8", "int4"; parse throws UsageError naming the
// known ones.
std::string to_string(Format f);
Format parse_format(const std::string& text);
std::string to_string(Rounding r);
Rounding parse_rounding(const std::string& text);

// Bytes of one stored row, all of it, and the part that is scale and bias.
size_t row_bytes(Format f, int dim);
size_t row_qparam_bytes(Format f);

// Counter-based randomness: splitmix64 of a mixed (key, index).
uint64_t hash_mix(uint64_t a, uint64_t b);
inline double uniform01(uint64_t key, uint64_t index) {
  return static_cast<double>(hash_mix(key, index) >> 11) * 0x1.0p-53;
}

struct RoundingKey {
  Rounding mode = Rounding::nearest;
  uint64_t key = 0;  // stochastic: element j draws uniform01(key, j)
};

// Encodes x[0 .. dim) into one row of `f` at out (row_bytes(f, dim) bytes).
void quantize_row(Format f, const float* x, int dim, uint8_t* out, RoundingKey rounding);
// Decodes one row into out[0 .. dim).
void dequantize_row(Format f, const uint8_t* row, int dim, float* out);

// Scalar IEEE binary16 conversions (round to nearest even; NaN stays NaN,
// overflow gives inf, subnormals kept).
uint16_t float_to_half(float value);
float half_to_float(uint16_t bits);

// One float to a 16-bit format (fp16 or bf16 bits) with the given rounding,
// u in [0, 1) the stochastic draw.
uint16_t round_to_16(Format f, float value, Rounding mode, double u);
float decode_16(Format f, uint16_t bits);

}  // namespace paralab::emb
