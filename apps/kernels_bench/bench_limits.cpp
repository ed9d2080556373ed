// The limits themselves as benchmarks, so the report shows the reference
// rates beside the kernels (of_sgemm ~ 1 and of_memory ~ 1 by construction).
#include <cblas.h>

#include "support.hpp"

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
