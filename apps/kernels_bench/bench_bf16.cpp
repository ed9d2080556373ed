// BF16 conversions and the Kahan update at 64M elements: memory-bound, so
// each reports GB/s (bytes read + written by the kernel) and its fraction of
// the measured copy bandwidth (of_memory).
#include "kernels/bf16.hpp"
#include "support.hpp"

namespace paralab::kernels_bench {
namespace {

using kernels::Rounding;

constexpr size_t kElements = size_t{64} << 20;

std::vector<bf16> random_bf16(size_t n, unsigned seed) {
  const std::vector<float> values = random_floats(n, seed);
  std::vector<bf16> out(n);
  kernels::cpu::convert(values.data(), out.data(), n, Rounding::nearest_even);
  return out;
}

// FP32 -> BF16: reads 4 bytes and writes 2 per element.
void BM_bf16_convert_from_f32(benchmark::State& state, Rounding rounding) {
  const std::vector<float> in = random_floats(kElements, 1);
  std::vector<bf16> out(kElements);
  uint64_t seed = 0;
  run_memory_bound(state, 6.0 * kElements, [&] {
    kernels::cpu::convert(in.data(), out.data(), kElements, rounding, ++seed);
    benchmark::DoNotOptimize(out.data());
  });
}
BENCHMARK_CAPTURE(BM_bf16_convert_from_f32, nearest_even, Rounding::nearest_even)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_bf16_convert_from_f32, truncate, Rounding::truncate)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_bf16_convert_from_f32, stochastic, Rounding::stochastic)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// BF16 -> FP32: reads 2 bytes and writes 4 per element.
void BM_bf16_convert_to_f32(benchmark::State& state) {
  const std::vector<bf16> in = random_bf16(kElements, 2);
  std::vector<float> out(kElements);
  run_memory_bound(state, 6.0 * kElements, [&] {
    kernels::cpu::convert(in.data(), out.data(), kElements);
    benchmark::DoNotOptimize(out.data());
  });
}
BENCHMARK(BM_bf16_convert_to_f32)->UseRealTime()->Unit(benchmark::kMillisecond);

// w += u with compensation c: reads w, c (2 bytes each) and u (4), writes w
// and c: 12 bytes per element.
void BM_bf16_kahan_add(benchmark::State& state) {
  std::vector<bf16> w = random_bf16(kElements, 3), c(kElements);
  std::vector<float> u = random_floats(kElements, 4);
  for (float& x : u) x *= 1e-3f;
  run_memory_bound(state, 12.0 * kElements, [&] {
    kernels::cpu::kahan_add(w.data(), c.data(), u.data(), kElements);
    benchmark::DoNotOptimize(w.data());
  });
}
BENCHMARK(BM_bf16_kahan_add)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace paralab::kernels_bench
