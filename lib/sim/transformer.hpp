// transformer.hpp: the shape of a decoder-only transformer and the cost of
// its linear layers under tensor parallelism, for whole-model simulations
// (ring_attention's Llama3-405B prefill; later the 4D-parallel trainer).
//
// A layer is attention (QKV projection, attention, output projection) and a
// SwiGLU MLP (gate and up projections, down projection). With TP over t GPUs
// (Megatron style) every GPU holds 1/t of the heads and of the FFN columns;
// the layer ends each of its two blocks with an all-reduce of the [tokens,
// d_model] activations over the TP group.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sim/compute.hpp"
#include "sim/hardware.hpp"

namespace paralab::sim {

struct TransformerShape {
  std::string name;
  int layers = 1;
  int64_t d_model = 0;
  int64_t ffn = 0;  // hidden size of the SwiGLU MLP
  int heads = 1;
  int kv_heads = 1;
  int head_dim = 1;
  int64_t vocab = 0;  // embedding rows and LM head outputs
};

// Llama 3.1 405B: 126 layers, d_model 16384, FFN 53248, 128 query heads,
// 8 KV heads, head dimension 128, vocabulary 128256.
TransformerShape llama3_405b();
// Known shapes by name ("llama3-405b"); UsageError naming them otherwise.
TransformerShape find_transformer(std::string_view name);
std::vector<std::string> transformer_names();

// Forward FLOPs of one layer's linear layers for `tokens` tokens on one of
// `tp` TP ranks (2 FLOPs per multiply-add).
double linear_flops_per_layer(const TransformerShape& shape, double tokens, int tp);

// Query / KV heads one TP rank holds (KV heads are replicated when there are
// fewer than TP ranks). UsageError when heads do not split over tp.
int heads_per_tp_rank(const TransformerShape& shape, int tp);
int kv_heads_per_tp_rank(const TransformerShape& shape, int tp);

// The time of one layer's linear part for `tokens` tokens per TP group: the
// four GEMMs (QKV, output, gate+up, down), each a roofline of its FLOPs and
// the bytes it streams (its weight shard and its activations, all of
// `element_bytes`), and the two TP all-reduces of tokens x d_model
// activations inside the node (sim/collectives.hpp).
struct LinearCost {
  double gemm_s = 0;
  double tp_allreduce_s = 0;
  double total_s() const { return gemm_s + tp_allreduce_s; }
};
LinearCost linear_layer_cost(const TransformerShape& shape, double tokens, int tp,
                             const HardwareProfile& hardware, Precision precision,
                             int element_bytes);

// The memory-bound kernels of one layer besides GEMMs and attention, each a
// kernel call that reads and writes its activations: two RMSNorms, RoPE on Q
// and K, the KV-cache append, SwiGLU and two residual adds.
double elementwise_layer_s(const TransformerShape& shape, double tokens, int tp,
                           const HardwareProfile& hardware, int element_bytes);

// What a forward pass costs once, not per layer: the embedding lookup of
// `tokens`, and for `outputs` tokens (one per request: the next token) the
// final norm, the LM head (its weight shard streamed: a roofline), the
// all-gather of the logits over TP, and sampling.
double per_pass_s(const TransformerShape& shape, double tokens, double outputs, int tp,
                  const HardwareProfile& hardware, Precision precision, int element_bytes);

// A forward pass over every layer on cp_ranks x tp GPUs: each layer's
// attention takes `attention_s` (simulated by the caller, e.g. a ring
// schedule) and does `attention_flops` over all GPUs; its linear part runs on
// ceil(tokens / cp_ranks) tokens per CP rank under TP; `outputs` tokens get
// logits (a prefill's requests, or a decode step's batch).
struct ForwardCost {
  double attention_s = 0, linear_s = 0, tp_comm_s = 0;  // summed over layers
  double other_s = 0;  // elementwise kernels of every layer, and the per-pass work
  double flops = 0;    // the whole pass, all GPUs
  double total_s() const { return attention_s + linear_s + tp_comm_s + other_s; }
  // Achieved FLOP/s over the peak of every GPU for `precision`.
  double utilization(const HardwareProfile& hardware, Precision precision, int gpus) const;
};
ForwardCost forward_cost(const TransformerShape& shape, double tokens, int cp_ranks, int tp,
                         double attention_s, double attention_flops,
                         const HardwareProfile& hardware, Precision precision, int element_bytes,
                         double outputs = 1);

}  // namespace paralab::sim
