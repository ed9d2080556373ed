// The CPU BF16 conversions and the Kahan-compensated BF16 update: arrays split over the
// OpenMP threads in chunks whose element indices stay global (so stochastic rounding gives the
// same bits for any thread count), each chunk on the vector path of the tier in force
// (bf16_paths.hpp): Highway on every tier, hand-written AVX-512 with vcvtneps2bf16 on
// avx512_bf16. Every path is bit-identical to kernels/reference/bf16.cpp.

#include <omp.h>

#include <algorithm>

#include "kernels/bf16.hpp"
#include "kernels/cpu/bf16_paths.hpp"
#include "kernels/cpu/isa.hpp"

namespace paralab::kernels::cpu {

namespace {

// Below this many elements per thread, starting a parallel region costs more
// than it saves (a chunk of 64k elements takes tens of microseconds).
constexpr size_t kMinChunk = size_t{1} << 16;

// Calls body(begin, end) over [0, n) in chunks that the OpenMP threads take
// dynamically, about 8 per thread, so that a thread slowed down (by another
// process on its core, say) does not hold the others up. Chunk boundaries are
// multiples of 64 elements, so only the last chunk has a partial vector.
template <class Body>
void parallel_chunks(size_t n, Body&& body) {
  const size_t max_threads = static_cast<size_t>(std::max(1, omp_get_max_threads()));
  const size_t threads = std::min(max_threads, n / kMinChunk);
  if (threads <= 1) {
    body(size_t{0}, n);
    return;
  }
  const size_t chunk = std::max(kMinChunk, (n / (8 * threads) + 63) & ~size_t{63});
  const size_t chunks = (n + chunk - 1) / chunk;
  const int team = static_cast<int>(threads);
#pragma omp parallel for num_threads(team) schedule(dynamic, 1)
  for (size_t t = 0; t < chunks; ++t) body(t * chunk, std::min(n, (t + 1) * chunk));
}

// Arrays from this many elements up are streamed (16 MiB or more of output, beside at least
// 32 MiB of input: past the last-level cache of most CPUs). A regular store first reads the
// line it writes (read for ownership), which for FP32 -> BF16 adds a third to the traffic.
constexpr size_t kStreamMin = size_t{8} << 20;

bool hand_written() {
#if defined(__x86_64__)
  return isa_enabled(Isa::avx512_bf16);
#else
  return false;
#endif
}

}  // namespace

void convert(const float* in, bf16* out, size_t n, Rounding rounding, uint64_t seed,
             uint64_t first) {
  [[maybe_unused]] const bool hand = hand_written();
  const bool stream = n >= kStreamMin;
  parallel_chunks(n, [&](size_t begin, size_t end) {
    const size_t count = end - begin;
#if defined(__x86_64__)
    if (hand)
      return bf16_paths::avx512_convert(in + begin, out + begin, count, rounding, seed,
                                        first + begin, stream);
#endif
    bf16_paths::simd_convert(in + begin, out + begin, count, rounding, seed, first + begin, stream);
  });
}

void convert(const bf16* in, float* out, size_t n) {
  [[maybe_unused]] const bool hand = hand_written();
  const bool stream = n >= kStreamMin;
  parallel_chunks(n, [&](size_t begin, size_t end) {
#if defined(__x86_64__)
    if (hand) return bf16_paths::avx512_widen(in + begin, out + begin, end - begin, stream);
#endif
    bf16_paths::simd_widen(in + begin, out + begin, end - begin, stream);
  });
}

void kahan_add(bf16* w, bf16* c, const float* u, size_t n) {
  [[maybe_unused]] const bool hand = hand_written();
  parallel_chunks(n, [&](size_t begin, size_t end) {
#if defined(__x86_64__)
    if (hand) return bf16_paths::avx512_kahan(w + begin, c + begin, u + begin, end - begin);
#endif
    bf16_paths::simd_kahan(w + begin, c + begin, u + begin, end - begin);
  });
}

}  // namespace paralab::kernels::cpu
