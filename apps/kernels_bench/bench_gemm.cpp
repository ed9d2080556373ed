// GEMM at the shapes of a transformer's linear layers: M = 4096 tokens, a
// layer of K inputs and N outputs ((N, K) = (4096, 4096), the attention
// projections; (11008, 4096) and (4096, 11008), the MLP up and down
// projections of a 7B model), in the three products a linear layer runs:
//   forward   Y  = X W^T    M x N, inner K   (A = X,  B = W transposed)
//   backward  dX = dY W     M x K, inner N   (A = dY, B = W)
//   backward  dW = dY^T X   N x K, inner M   (A = dY transposed, B = X)
// plus a square 2048 GEMM. FP32 runs OpenBLAS SGEMM, BF16 the AVX512-BF16
// kernel; both report GFLOP/s and of_sgemm (against OpenBLAS SGEMM 4096^3).
#include <string>

#include "kernels/bf16.hpp"
#include "kernels/gemm.hpp"
#include "support.hpp"

namespace paralab::kernels_bench {
namespace {

using kernels::GemmShape;
using kernels::Trans;

std::vector<GemmProduct> products() {
  std::vector<GemmProduct> all = {{"square_2048", {Trans::no, Trans::no, 2048, 2048, 2048}}};
  for (const auto& [n, k] : {std::pair{4096, 4096}, {11008, 4096}, {4096, 11008}})
    for (GemmProduct& p : linear_layer_products(4096, n, k)) all.push_back(std::move(p));
  return all;
}

// Stored sizes of A and B for a packed shape.
size_t stored_a(const GemmShape& s) {
  return size_t(s.M) * s.K;
}
size_t stored_b(const GemmShape& s) {
  return size_t(s.K) * s.N;
}

void run_f32(benchmark::State& state, const GemmShape& shape) {
  const std::vector<float> a = random_floats(stored_a(shape), 1);
  const std::vector<float> b = random_floats(stored_b(shape), 2);
  std::vector<float> c(size_t(shape.M) * shape.N);
  run_compute_bound(state, kernels::gemm_flops(shape),
                    [&] { kernels::cpu::gemm(shape, a.data(), b.data(), c.data()); });
}

std::vector<bf16> random_bf16(size_t n, unsigned seed) {
  const std::vector<float> values = random_floats(n, seed);
  std::vector<bf16> out(n);
  kernels::cpu::convert(values.data(), out.data(), n, kernels::Rounding::nearest_even);
  return out;
}

void run_bf16(benchmark::State& state, const GemmShape& shape) {
  const std::vector<bf16> a = random_bf16(stored_a(shape), 1);
  const std::vector<bf16> b = random_bf16(stored_b(shape), 2);
  std::vector<float> c(size_t(shape.M) * shape.N);
  run_compute_bound(state, kernels::gemm_flops(shape),
                    [&] { kernels::cpu::gemm(shape, a.data(), b.data(), c.data()); });
}

// FP32 and BF16 side by side for each product, so the report reads as pairs.
const bool registered = [] {
  for (const GemmProduct& p : products()) {
    benchmark::RegisterBenchmark(("BM_gemm_f32/" + p.name).c_str(), run_f32, p.shape)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("BM_gemm_bf16/" + p.name).c_str(), run_bf16, p.shape)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
  return true;
}();

}  // namespace
}  // namespace paralab::kernels_bench
