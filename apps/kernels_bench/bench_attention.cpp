// Attention on the CPU: the forward, causal and unmasked, FP32 and BF16 inputs, with grouped
// query heads (GQA 8:1) and D = 128; FLOPs are those the mask leaves
// (attention_forward_flops), so a causal and an unmasked run of the same rate take the same
// time per FLOP. And the LSE merge of two partial results (memory bound).
//
// BM_attention_* stays quick (T = S up to 8k). The long contexts, 16k and 32k, are named
// BM_long_attn_* so that --benchmark_filter=attention leaves them out; run them with
// --benchmark_filter=long_attn.
#include <vector>

#include "core/bf16.hpp"
#include "kernels/attention.hpp"
#include "support.hpp"

namespace paralab::kernels_bench {
namespace {

// 16 query heads over 2 key/value heads: the GQA ratio of Llama-3-70B at a head count that
// keeps an 8k causal run near a second on two cores.
constexpr int kHeads = 16, kKvHeads = 2, kHeadDim = 128;

template <class T>
std::vector<T> inputs(size_t n, unsigned seed) {
  const std::vector<float> values = random_floats(n, seed);
  if constexpr (std::is_same_v<T, float>) {
    return values;
  } else {
    std::vector<bf16> out(n);
    for (size_t i = 0; i < n; ++i) out[i] = float_to_bf16_rne(values[i]);
    return out;
  }
}

// T = S = state.range(0).
template <class T>
void attention_forward(benchmark::State& state, bool causal) {
  const int n = static_cast<int>(state.range(0));
  kernels::AttentionArgs args;
  args.shape = {n, n, kHeads, kKvHeads, kHeadDim};
  args.mask.causal = causal;
  const size_t q_size = size_t(n) * kHeads * kHeadDim, kv_size = size_t(n) * kKvHeads * kHeadDim;
  const std::vector<T> q = inputs<T>(q_size, 1), k = inputs<T>(kv_size, 2),
                       v = inputs<T>(kv_size, 3);
  std::vector<float> o(q_size), lse(size_t(n) * kHeads);
  run_compute_bound(state, kernels::attention_forward_flops(args), [&] {
    kernels::cpu::attention_forward(args, q.data(), k.data(), v.data(), o.data(), lse.data());
  });
}

void BM_attention_causal_f32(benchmark::State& state) {
  attention_forward<float>(state, true);
}
void BM_attention_causal_bf16(benchmark::State& state) {
  attention_forward<bf16>(state, true);
}
void BM_attention_nomask_f32(benchmark::State& state) {
  attention_forward<float>(state, false);
}
void BM_attention_nomask_bf16(benchmark::State& state) {
  attention_forward<bf16>(state, false);
}
void BM_long_attn_causal_f32(benchmark::State& state) {
  attention_forward<float>(state, true);
}
void BM_long_attn_causal_bf16(benchmark::State& state) {
  attention_forward<bf16>(state, true);
}

#define PARALAB_ATTENTION_BENCHMARK(name, from, to) \
  BENCHMARK(name)->RangeMultiplier(2)->Range(from, to)->UseRealTime()->Unit(benchmark::kMillisecond)

PARALAB_ATTENTION_BENCHMARK(BM_attention_causal_f32, 1 << 10, 8 << 10);
PARALAB_ATTENTION_BENCHMARK(BM_attention_causal_bf16, 1 << 10, 8 << 10);
PARALAB_ATTENTION_BENCHMARK(BM_attention_nomask_f32, 1 << 10, 8 << 10);
PARALAB_ATTENTION_BENCHMARK(BM_attention_nomask_bf16, 1 << 10, 4 << 10);
PARALAB_ATTENTION_BENCHMARK(BM_long_attn_causal_f32, 16 << 10, 32 << 10);
PARALAB_ATTENTION_BENCHMARK(BM_long_attn_causal_bf16, 16 << 10, 32 << 10);

// (o_acc, lse_acc) <- merge(acc, part) over T = state.range(0) rows of all heads: reads both
// parts, writes the accumulator.
void BM_attention_merge_into(benchmark::State& state) {
  const size_t rows = size_t(state.range(0)) * kHeads;
  std::vector<float> o_acc = random_floats(rows * kHeadDim, 1);
  const std::vector<float> o_part = random_floats(rows * kHeadDim, 2);
  std::vector<float> lse_acc = random_floats(rows, 3);
  const std::vector<float> lse_part = random_floats(rows, 4);
  const double bytes = 3.0 * sizeof(float) * rows * (kHeadDim + 1);
  run_memory_bound(state, bytes, [&] {
    kernels::cpu::attention_merge_into(rows, kHeadDim, o_acc.data(), lse_acc.data(), o_part.data(),
                                       lse_part.data());
  });
}
BENCHMARK(BM_attention_merge_into)
    ->Arg(4 << 10)
    ->Arg(32 << 10)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace paralab::kernels_bench
