// The limits themselves as benchmarks, so the report shows the reference
// rates beside the kernels (of_sgemm ~ 1 and of_memory ~ 1 by construction).
#include <cblas.h>
#include <omp.h>

#include "kernels/cpu/isa.hpp"
#include "support.hpp"

#include "kernels/cpu/x86_intrinsics.hpp"

namespace paralab::kernels_bench {
namespace {

void BM_sgemm_openblas(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  std::vector<float> a = random_floats(size_t(n) * n, 1), b = random_floats(size_t(n) * n, 2);
  std::vector<float> c(size_t(n) * n);
  run_compute_bound(state, 2.0 * n * n * n, [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n,
                0.0f, c.data(), n);
  });
}
BENCHMARK(BM_sgemm_openblas)->Arg(1024)->Arg(4096)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace paralab::kernels_bench

// The cores' arithmetic peak, for context beside the SGEMM limit (Debian's OpenBLAS may run
// narrower vectors than the CPU has): independent chains of FMAs at the widest vectors of the
// instruction-set tier in force (bench_peak.cpp, Highway), every thread, no memory traffic;
// and on the avx512_bf16 tier, chains of BF16 dot products.
#if defined(__x86_64__)
namespace paralab::kernels_bench {
namespace {

constexpr int kChains = 12;  // enough independent chains to cover FMA latency
constexpr long kSteps = 1 << 20;

__attribute__((target("avx512f,avx512bf16"))) float dpbf16_chains() {
  __m512 acc[kChains];
  const __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80), b = (__m512bh)_mm512_set1_epi16(0x3300);
  for (auto& x : acc) x = _mm512_setzero_ps();
  for (long s = 0; s < kSteps; ++s)
    for (auto& x : acc) x = _mm512_dpbf16_ps(x, a, b);
  __m512 sum = acc[0];
  for (int c = 1; c < kChains; ++c) sum = _mm512_add_ps(sum, acc[c]);
  return _mm512_reduce_add_ps(sum);
}

// FLOPs per thread and call: 32 pairs x 2 per instruction.
void BM_peak_dot_bf16_avx512(benchmark::State& state) {
  if (!kernels::cpu::isa_enabled(kernels::cpu::Isa::avx512_bf16))
    return state.SkipWithError("no AVX512-BF16 on the tier in force");
  const double flops = 4.0 * 16.0 * kChains * kSteps * omp_get_max_threads();
  float sink = 0;
  run_compute_bound(state, flops, [&] {
#pragma omp parallel reduction(+ : sink)
    sink += dpbf16_chains();
  });
  benchmark::DoNotOptimize(sink);
}
BENCHMARK(BM_peak_dot_bf16_avx512)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace paralab::kernels_bench
#endif
