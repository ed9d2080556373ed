// The reference BF16 conversions: one element at a time, from the bit-level
// definitions in core/bf16.hpp and kernels/bf16.hpp.
#include <bit>

#include "kernels/bf16.hpp"

namespace paralab::kernels::reference {

namespace {
bf16 truncate(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return bf16{static_cast<uint16_t>((bits >> 16) | 0x40u)};
  return bf16{static_cast<uint16_t>(bits >> 16)};
}
}  // namespace

void convert(const float* in, bf16* out, size_t n, Rounding rounding, uint64_t seed,
             uint64_t first) {
  for (size_t i = 0; i < n; ++i) {
    switch (rounding) {
      case Rounding::nearest_even:
        out[i] = float_to_bf16_rne(in[i]);
        break;
      case Rounding::truncate:
        out[i] = truncate(in[i]);
        break;
      case Rounding::stochastic:
        out[i] = bf16{float_to_bf16_bits_sr(std::bit_cast<uint32_t>(in[i]),
                                            stochastic_bits(seed, first + i))};
        break;
    }
  }
}

void convert(const bf16* in, float* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = bf16_to_float(in[i]);
}

void kahan_add(bf16* w, bf16* c, const float* u, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const float weight = bf16_to_float(w[i]);
    const float y = u[i] - bf16_to_float(c[i]);
    const bf16 t = float_to_bf16_rne(weight + y);
    c[i] = float_to_bf16_rne((bf16_to_float(t) - weight) - y);
    w[i] = t;
  }
}

}  // namespace paralab::kernels::reference
