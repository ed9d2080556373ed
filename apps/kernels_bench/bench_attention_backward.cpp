// The attention backward on the CPU: causal, FP32, D = 128, 32 query heads over 4 key/value
// heads (GQA 8:1), T = S. FLOPs are 2.5 x attention_forward_flops: the standard backward
// count of five matmuls (S = Q K^T recomputed, dV += P^T dO, dP = dO V^T, dQ += dS K,
// dK += dS^T Q) against the forward's two, over the pairs the mask leaves; so of_sgemm
// says what fraction of OpenBLAS SGEMM's rate the backward reaches.
//
// BM_attention_backward_causal covers 1k, 2k and 4k. The 8k run (about 4 s per iteration
// on two cores) is named BM_long_attn_bwd_causal, beside the forward's BM_long_attn_*, so
// that --benchmark_filter=backward (or =attention) leaves it out; run it with
// --benchmark_filter=long_attn_bwd (or =long_attn for every long run).
#include <cmath>
#include <vector>

#include "kernels/attention.hpp"
#include "support.hpp"

namespace paralab::kernels_bench {
namespace {

constexpr int kHeads = 32, kKvHeads = 4, kHeadDim = 128;

// T = S = state.range(0). The kernel's cost does not depend on the values, as long as they
// are realistic: LSE = log(visible keys) keeps P at its true size (~1/keys; random Q and K
// give near-uniform attention) so that no overflow or denormal path is timed. Inputs are
// made here rather than by a forward kernel, so the backward is measured on its own.
void backward_causal(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  kernels::AttentionArgs args;
  args.shape = {n, n, kHeads, kKvHeads, kHeadDim};
  args.mask.causal = true;
  const size_t q_size = size_t(n) * kHeads * kHeadDim, kv_size = size_t(n) * kKvHeads * kHeadDim;
  const std::vector<float> q = random_floats(q_size, 1), k = random_floats(kv_size, 2),
                           v = random_floats(kv_size, 3), o = random_floats(q_size, 4),
                           d_o = random_floats(q_size, 5);
  std::vector<float> lse(size_t(n) * kHeads);
  for (int i = 0; i < n; ++i)
    for (int h = 0; h < kHeads; ++h) lse[size_t(i) * kHeads + h] = std::log(float(i + 1));
  std::vector<float> dq(q_size), dk(kv_size), dv(kv_size);
  run_compute_bound(state, 2.5 * kernels::attention_forward_flops(args), [&] {
    kernels::cpu::attention_backward(args, q.data(), k.data(), v.data(), o.data(), lse.data(),
                                     d_o.data(), dq.data(), dk.data(), dv.data());
  });
}

void BM_attention_backward_causal(benchmark::State& state) {
  backward_causal(state);
}
void BM_long_attn_bwd_causal(benchmark::State& state) {
  backward_causal(state);
}

BENCHMARK(BM_attention_backward_causal)
    ->RangeMultiplier(2)
    ->Range(1 << 10, 4 << 10)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_long_attn_bwd_causal)->Arg(8 << 10)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace paralab::kernels_bench
