// bf16_paths.hpp (internal to kernels/cpu): the vector paths behind cpu::convert and
// cpu::kahan_add (bf16.cpp, which splits arrays over threads and picks the path):
//   simd_*:    Highway, compiled for every instruction-set tier (bf16_simd.cpp)
//   avx512_*:  hand-written AVX-512 with AVX512-BF16's vcvtneps2bf16, x86-64 only, for the
//              avx512_bf16 tier (bf16_avx512.cpp)
// Every path is bit-identical to kernels/reference/bf16.cpp. `stream` asks for non-temporal
// stores (arrays past the last-level cache).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/bf16.hpp"

namespace paralab::kernels::cpu::bf16_paths {

void simd_convert(const float* in, bf16* out, size_t n, Rounding rounding, uint64_t seed,
                  uint64_t first, bool stream);
void simd_widen(const bf16* in, float* out, size_t n, bool stream);
void simd_kahan(bf16* w, bf16* c, const float* u, size_t n);

#if defined(__x86_64__)
void avx512_convert(const float* in, bf16* out, size_t n, Rounding rounding, uint64_t seed,
                    uint64_t first, bool stream);
void avx512_widen(const bf16* in, float* out, size_t n, bool stream);
void avx512_kahan(bf16* w, bf16* c, const float* u, size_t n);
#endif

}  // namespace paralab::kernels::cpu::bf16_paths
