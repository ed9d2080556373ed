// compress_simd.hpp (internal to kernels/cpu): the vector stages of the compressor over
// Highway, compiled for every instruction-set tier (compress_simd.cpp). The avx512 tier keeps
// its hand-written stages (compress.cpp, compress_quantize.cpp). Every stage makes exactly the
// decisions and IEEE operations of the scalar definitions beside them, so streams are
// byte-identical on every tier.
#pragma once

#include <cstddef>
#include <cstdint>

namespace paralab::kernels::compress::detail::simd {

// The quantiser stages run whole vectors of x[0, n) and return how many values they took (a
// multiple of the vector length); the caller finishes the rest with the scalar definition.

// Predictor none: symbols[i] = code + kCodeOffset for values kept as codes, 0 for outliers,
// whose values go to outliers[] in order (room for 16 floats past the last one);
// *outlier_count of them; *lo and *hi the range of kept codes (lo > hi: none).
size_t quantize_none(const float* x, size_t n, float inverse, float step, float bound,
                     uint16_t* symbols, float* outliers, uint32_t* outlier_count, int32_t* lo,
                     int32_t* hi);

// out[i] = (h[i] + code_lo - 1) * step, or the next of outliers[0, count) where h[i] = 0;
// *used: how many outliers it took, or count + 1 when the block has more escapes than count
// (then it stops there).
size_t dequantize(const uint16_t* h, size_t n, int32_t code_lo, float step, const float* outliers,
                  size_t count, float* out, size_t* used);

// The smallest and largest finite values (lo = +inf, hi = -inf when none).
size_t finite_range(const float* x, size_t n, float* lo, float* hi);

// FP32 <-> FP16 (IEEE binary16, round to nearest even, as float_to_half / half_to_float);
// `out` and `in` hold little-endian 16-bit values at any alignment.
void to_half(const float* in, uint16_t* out, size_t n);
void from_half(const uint16_t* in, float* out, size_t n);

// One INT8 row: scale = max |finite x| / 127, q = round(x * (127 / max)) clamped to +-127,
// NaN to 0; returns the scale.
float int8_row(const float* x, size_t dim, int8_t* q);

}  // namespace paralab::kernels::compress::detail::simd
