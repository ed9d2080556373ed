// BM_peak_fma_f32: the FP32 FMA peak of the instruction-set tier in force (kernels/cpu/isa.hpp),
// measured: twelve independent chains of FMAs on the widest vectors of the tier (enough to
// cover the FMA latency on every core we know), every thread, no memory traffic. The
// simulator's CPU profile (scripts/make_profile.py) takes its peak from here.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "apps/kernels_bench/bench_peak.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <omp.h>

#include <cstddef>

HWY_BEFORE_NAMESPACE();
namespace paralab::kernels_bench::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

constexpr long kSteps = 1 << 20;

// Returns the sum of the chains (so nothing is optimised away) and the FLOPs done.
float FmaChains(double* flops) {
  const hn::ScalableTag<float> d;
  const auto a = hn::Set(d, 0.999f), b = hn::Set(d, 1e-7f);
  // Named variables, not an array: SVE vectors are sizeless types. Different starting values,
  // or the compiler folds identical chains into one.
  auto c0 = hn::Set(d, 1.00f), c1 = hn::Set(d, 1.01f), c2 = hn::Set(d, 1.02f);
  auto c3 = hn::Set(d, 1.03f), c4 = hn::Set(d, 1.04f), c5 = hn::Set(d, 1.05f);
  auto c6 = hn::Set(d, 1.06f), c7 = hn::Set(d, 1.07f), c8 = hn::Set(d, 1.08f);
  auto c9 = hn::Set(d, 1.09f), c10 = hn::Set(d, 1.10f), c11 = hn::Set(d, 1.11f);
  for (long s = 0; s < kSteps; ++s) {
    c0 = hn::MulAdd(c0, a, b), c1 = hn::MulAdd(c1, a, b), c2 = hn::MulAdd(c2, a, b);
    c3 = hn::MulAdd(c3, a, b), c4 = hn::MulAdd(c4, a, b), c5 = hn::MulAdd(c5, a, b);
    c6 = hn::MulAdd(c6, a, b), c7 = hn::MulAdd(c7, a, b), c8 = hn::MulAdd(c8, a, b);
    c9 = hn::MulAdd(c9, a, b), c10 = hn::MulAdd(c10, a, b), c11 = hn::MulAdd(c11, a, b);
  }
  const auto sum = hn::Add(
      hn::Add(hn::Add(hn::Add(c0, c1), hn::Add(c2, c3)), hn::Add(hn::Add(c4, c5), hn::Add(c6, c7))),
      hn::Add(hn::Add(c8, c9), hn::Add(c10, c11)));
  *flops = 2.0 * 12 * kSteps * static_cast<double>(hn::Lanes(d));
  return hn::GetLane(hn::SumOfLanes(d, sum));
}

}  // namespace paralab::kernels_bench::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "kernels/cpu/isa.hpp"
#include "support.hpp"

namespace paralab::kernels_bench {
HWY_EXPORT(FmaChains);
namespace {

void BM_peak_fma_f32(benchmark::State& state) {
  kernels::cpu::active_isa();  // applies PARALAB_ISA / --isa before Highway dispatches
  double flops_per_thread = 0;
  HWY_DYNAMIC_DISPATCH(FmaChains)(&flops_per_thread);  // also tells the FLOPs per call
  float sink = 0;
  run_compute_bound(state, flops_per_thread * omp_get_max_threads(), [&] {
    double unused = 0;
#pragma omp parallel reduction(+ : sink)
    sink += HWY_DYNAMIC_DISPATCH(FmaChains)(&unused);
  });
  benchmark::DoNotOptimize(sink);
  state.SetLabel(kernels::cpu::isa_name(kernels::cpu::active_isa()));
}
BENCHMARK(BM_peak_fma_f32)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace paralab::kernels_bench
#endif
