// bf16.hpp: the bfloat16 storage type and its scalar conversions (reference
// semantics; vectorised conversions live in kernels/).
#pragma once

#include <bit>
#include <cstdint>

namespace paralab {

struct bf16 {
  uint16_t bits = 0;
};

inline float bf16_to_float(bf16 value) {
  return std::bit_cast<float>(static_cast<uint32_t>(value.bits) << 16);
}

// Round to nearest, ties to even; NaN stays NaN (quiet), overflow gives inf.
inline bf16 float_to_bf16_rne(float value) {
  uint32_t bits = std::bit_cast<uint32_t>(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return bf16{static_cast<uint16_t>((bits >> 16) | 0x40u)};
  const uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return bf16{static_cast<uint16_t>((bits + rounding) >> 16)};
}

}  // namespace paralab
