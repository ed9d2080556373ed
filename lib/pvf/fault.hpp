// fault.hpp: fault models on a parameter's stored bits (issue 17, after Jiao
// et al., "PVF: A Novel Metric for Understanding AI Systems' Vulnerability
// Against SDCs in Model Parameters", arXiv 2405.01741).
//
// Storage types. A parameter's master value is FP32; stored in another type
// it is that value rounded to the type (BF16 and FP16 round to nearest even;
// INT8 is symmetric per tensor: scale = max|w| / 127, q = round(w / scale)
// clamped to [-127, 127], two's complement). A fault acts on the stored bits
// and the corrupted value is decoded back to FP32 for the forward (INT8: q *
// scale; the flipped code -128 decodes to -128 * scale).
//
// Bit classes (bit 0 the least significant of the stored word):
//   FP32: sign 31, exponent 23-30, mantissa 0-22
//   BF16: sign 15, exponent 7-14,  mantissa 0-6
//   FP16: sign 15, exponent 10-14, mantissa 0-9
//   INT8: sign 7 (the two's-complement sign: a flip moves q by 128), high 4-6
//         (moves q by 16..64), low 0-3 (moves q by 1..8): the integer
//         analogue of exponent and mantissa, big and small value changes.
//   any:  every bit of the word.
//
// Fault models, all drawn inside the chosen bit class of the chosen elements:
//   flip      one bit of one element flips.
//   ber:P     every class bit of the component flips independently with
//             probability P (the count is Binomial(bits, P), positions distinct);
//             a trial may corrupt nothing (it then counts as a correct trial).
//   burst:L   L adjacent bits of one element flip: the burst starts at a bit
//             of the class and runs towards bit 0 ([s - L + 1, s], cut at 0),
//             so a sign-bit burst reaches into the exponent.
//   stuck0/stuck1  one bit of one element is forced to 0 / 1 (no change when
//             it already holds that value: the fault is latent).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "pvf/rng.hpp"

namespace paralab::pvf {

enum class DType { fp32, bf16, fp16, int8 };
enum class BitClass { any, sign, exponent, mantissa, high, low };
enum class FaultKind { flip, ber, burst, stuck0, stuck1 };

int storage_bits(DType dtype);
std::string name(DType dtype);
std::string name(BitClass bits);
DType parse_dtype(const std::string& text);         // UsageError naming the known ones
BitClass parse_bit_class(const std::string& text);  // UsageError
// Whether the class exists for the type (exponent/mantissa for the floats,
// high/low for INT8; sign and any for all).
bool class_valid(DType dtype, BitClass bits);

// Bits lo..hi (inclusive) of the class in the stored word.
struct BitRange {
  int lo = 0, hi = -1;
  int count() const { return hi - lo + 1; }
};
BitRange class_bits(DType dtype, BitClass bits);  // std::invalid_argument if !class_valid

struct FaultModel {
  FaultKind kind = FaultKind::flip;
  double ber = 0;            // ber: probability per bit
  int burst = 0;             // burst: length in bits
  std::string name() const;  // as parse_fault_model reads it: "flip", "ber:1e-06", "burst:4", ...
};
FaultModel parse_fault_model(const std::string& text);  // UsageError

// How a tensor's FP32 master values are stored in a type. INT8 carries the
// tensor's scale; the float types ignore it.
struct Storage {
  DType dtype = DType::fp32;
  float scale = 1;
  uint32_t encode(float value) const;  // the stored word (low storage_bits bits)
  float decode(uint32_t word) const;
  float round(float value) const { return decode(encode(value)); }
};
// The storage of a tensor with these master values (INT8: max|w| / 127, or 1
// for an all-zero tensor).
Storage make_storage(DType dtype, std::span<const float> master);

// A change of one stored word: word' = ((word & ~clear) | set) ^ flip.
struct BitOp {
  uint32_t flip = 0, set = 0, clear = 0;
  uint32_t apply(uint32_t word) const { return ((word & ~clear) | set) ^ flip; }
  void merge(const BitOp& other);  // both at once (distinct bits)
};
// One element's fault: element index within the component's elements.
struct ElementFault {
  uint64_t element = 0;
  BitOp op;
};

// The faults of one trial on a component of `elements` parameters, drawn
// from rng. Sorted by element, one entry per element. Throws
// std::invalid_argument for a class the type lacks.
std::vector<ElementFault> sample_faults(const FaultModel& model, DType dtype, BitClass bits,
                                        uint64_t elements, Rng& rng);

// Largest expected flip count of a ber trial that sample_faults accepts: the
// binomial is drawn by inversion, which needs (1 - P)^bits well above 0.
inline constexpr double kMaxExpectedFlips = 64;

// Float <-> FP16 (IEEE binary16), round to nearest even, with subnormals,
// infinities and NaN.
uint16_t float_to_fp16(float value);
float fp16_to_float(uint16_t half);

}  // namespace paralab::pvf
