#include "model/precision.hpp"

#include <array>
#include <string>

#include "core/errors.hpp"

namespace paralab::model {

namespace {

constexpr std::array kAll = {Precision::fp32, Precision::bf16_mixed, Precision::bf16_pure_rne,
                             Precision::bf16_pure_sr, Precision::bf16_pure_kahan};

}  // namespace

std::span<const Precision> all_precisions() {
  return kAll;
}

std::string_view to_string(Precision precision) {
  switch (precision) {
    case Precision::fp32:
      return "fp32";
    case Precision::bf16_mixed:
      return "bf16-mixed";
    case Precision::bf16_pure_rne:
      return "bf16-pure-rne";
    case Precision::bf16_pure_sr:
      return "bf16-pure-sr";
    case Precision::bf16_pure_kahan:
      return "bf16-pure-kahan";
  }
  return "?";
}

Precision parse_precision(std::string_view text) {
  for (Precision p : kAll) {
    if (to_string(p) == text) return p;
  }
  std::string names;
  for (Precision p : kAll) names += (names.empty() ? "" : ", ") + std::string(to_string(p));
  throw UsageError("unknown precision '" + std::string(text) + "' (expected one of: " + names +
                   ")");
}

}  // namespace paralab::model
