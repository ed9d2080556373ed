// precision.hpp: the numeric policies of the training engine (Kalamkar et al.,
// "A Study of BFLOAT16 for Deep Learning Training"). What each one keeps in
// BF16 and in FP32 is documented in model.hpp.
#pragma once

#include <span>
#include <string_view>

namespace paralab::model {

enum class Precision {
  fp32,             // everything FP32
  bf16_mixed,       // BF16 GEMM inputs, FP32 accumulation, FP32 master weights
  bf16_pure_rne,    // BF16 weights only; updates rounded to nearest even
  bf16_pure_sr,     // BF16 weights only; updates rounded stochastically
  bf16_pure_kahan,  // BF16 weights only; Kahan-compensated updates (BF16 compensation)
};

// "fp32", "bf16-mixed", "bf16-pure-rne", "bf16-pure-sr", "bf16-pure-kahan";
// anything else is a UsageError that lists the valid names.
Precision parse_precision(std::string_view text);
std::string_view to_string(Precision precision);
std::span<const Precision> all_precisions();

// GEMM inputs (weights, saved activations, output gradients) are BF16.
inline bool computes_in_bf16(Precision p) {
  return p != Precision::fp32;
}
// The weights exist only in BF16 (no FP32 master copy).
inline bool stores_bf16_weights(Precision p) {
  return p == Precision::bf16_pure_rne || p == Precision::bf16_pure_sr ||
         p == Precision::bf16_pure_kahan;
}

}  // namespace paralab::model
