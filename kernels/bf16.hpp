// bf16.hpp: array conversions between FP32 and BF16 and the BF16 weight
// update with Kahan compensation. Scalar semantics are those of
// core/bf16.hpp (round to nearest even); stochastic rounding takes its random
// bits from stochastic_bits(seed, index), so a result is reproducible from the
// seed and each element's global index, on every backend.
//   reference::  scalar loops
//   cpu::        AVX-512 (AVX512-BF16 where the CPU has it), portable fallback
//   cuda::       device pointers, queued on `stream`
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/bf16.hpp"

#if defined(__CUDACC__)
#define PARALAB_HOST_DEVICE __host__ __device__
#else
#define PARALAB_HOST_DEVICE
#endif

namespace paralab::kernels {

// 32 random bits for element `index` under `seed`: a counter-based hash
// (SplitMix64's finaliser over seed and index), the same on host and device.
PARALAB_HOST_DEVICE inline uint32_t stochastic_bits(uint64_t seed, uint64_t index) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ull * (index + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return static_cast<uint32_t>((z ^ (z >> 31)) >> 32);
}

// Stochastic rounding of one value: adds 16 random bits below the BF16
// mantissa and truncates, so it rounds up with probability equal to the
// distance from the value below. NaN stays NaN; overflow saturates to inf
// only when the value is beyond the largest BF16 by the rounding.
PARALAB_HOST_DEVICE inline uint16_t float_to_bf16_bits_sr(uint32_t bits, uint32_t random) {
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  if ((bits & 0x7f800000u) == 0x7f800000u) return static_cast<uint16_t>(bits >> 16);  // +-inf
  return static_cast<uint16_t>((bits + (random & 0xffffu)) >> 16);
}

enum class Rounding { nearest_even, truncate, stochastic };

// Declarations shared by reference:: and cpu::.
#define PARALAB_BF16_DECLARATIONS                                                               \
  /* out[i] = round(in[i]); for stochastic, element i uses stochastic_bits(seed, first + i). */ \
  void convert(const float* in, bf16* out, size_t n, Rounding rounding, uint64_t seed = 0,      \
               uint64_t first = 0);                                                             \
  void convert(const bf16* in, float* out, size_t n);                                           \
  /* Kahan-compensated update of BF16 weights w by FP32 updates u, with a BF16             */   \
  /* compensation buffer c (zero at the start): y = u - c; t = bf16(w + y);                */   \
  /* c = bf16((t - w) - y); w = t; arithmetic in FP32, stores round to nearest even.      */    \
  void kahan_add(bf16* w, bf16* c, const float* u, size_t n);

namespace reference {
PARALAB_BF16_DECLARATIONS
}  // namespace reference

namespace cpu {
PARALAB_BF16_DECLARATIONS
}  // namespace cpu

#undef PARALAB_BF16_DECLARATIONS

#ifdef PARALAB_HAVE_CUDA
namespace cuda {
void convert(const float* in, bf16* out, size_t n, Rounding rounding, uint64_t seed = 0,
             uint64_t first = 0, void* stream = nullptr);
void convert(const bf16* in, float* out, size_t n, void* stream = nullptr);
void kahan_add(bf16* w, bf16* c, const float* u, size_t n, void* stream = nullptr);
}  // namespace cuda
#endif

}  // namespace paralab::kernels
