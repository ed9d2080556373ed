// Transformer shapes and the cost of their linear layers; see transformer.hpp.
#include "sim/transformer.hpp"

#include <cmath>

#include "core/errors.hpp"
#include "sim/collectives.hpp"

namespace paralab::sim {

TransformerShape llama3_405b() {
  return {"llama3-405b", 126, 16384, 53248, 128, 8, 128, 128256};
}

std::vector<std::string> transformer_names() {
  return {"llama3-405b"};
}

TransformerShape find_transformer(std::string_view name) {
  if (name == "llama3-405b") return llama3_405b();
  throw UsageError("unknown model '" + std::string(name) + "'; known: llama3-405b");
}

int heads_per_tp_rank(const TransformerShape& s, int tp) {
  if (tp < 1 || s.heads % tp != 0)
    throw UsageError(s.name + ": " + std::to_string(s.heads) +
                     " query heads do not split over TP " + std::to_string(tp));
  return s.heads / tp;
}

int kv_heads_per_tp_rank(const TransformerShape& s, int tp) {
  if (tp < 1 || (s.kv_heads >= tp ? s.kv_heads % tp : tp % s.kv_heads) != 0)
    throw UsageError(s.name + ": " + std::to_string(s.kv_heads) +
                     " KV heads neither split over nor replicate onto TP " + std::to_string(tp));
  return s.kv_heads >= tp ? s.kv_heads / tp : 1;
}

// Per token and TP rank: QKV (d -> (H + 2 H_kv) Dh), output (H Dh -> d),
// gate and up (d -> 2 ffn), down (ffn -> d); the weights split over TP.
double linear_flops_per_layer(const TransformerShape& s, double tokens, int tp) {
  const double d = double(s.d_model), dh = double(s.head_dim);
  const double qkv = d * (s.heads + 2.0 * s.kv_heads) * dh;
  const double out = double(s.heads) * dh * d;
  const double mlp = 3.0 * d * double(s.ffn);
  return 2.0 * tokens * (qkv + out + mlp) / tp;
}

namespace {

// The TP group's all-reduce of `bytes` inside one node.
double tp_allreduce_s(const HardwareProfile& hw, int tp, double bytes) {
  return collective_time(hw, Collective::all_reduce, strided_group(hw, tp), bytes).seconds;
}

}  // namespace

LinearCost linear_layer_cost(const TransformerShape& s, double tokens, int tp,
                             const HardwareProfile& hw, Precision precision, int element_bytes) {
  const ComputeModel model = compute_model(hw, precision);
  const double d = double(s.d_model), dh = double(s.head_dim), e = element_bytes;
  struct Gemm {
    double in, out;  // features per token, on one TP rank
  };
  const Gemm gemms[] = {
      {d, (s.heads + 2.0 * s.kv_heads) * dh / tp},  // QKV
      {double(s.heads) * dh / tp, d},               // output projection
      {d, 2.0 * double(s.ffn) / tp},                // gate and up
      {double(s.ffn) / tp, d},                      // down
  };
  LinearCost cost;
  for (const Gemm& g : gemms) {
    const double flops = 2.0 * tokens * g.in * g.out;
    const double bytes = (g.in * g.out + tokens * (g.in + g.out)) * e;
    cost.gemm_s += model.gemm_s(flops, bytes);
  }
  if (tp > 1) cost.tp_allreduce_s = 2 * tp_allreduce_s(hw, tp, tokens * d * e);
  return cost;
}

double elementwise_layer_s(const TransformerShape& s, double tokens, int tp,
                           const HardwareProfile& hw, int element_bytes) {
  const ComputeModel model = compute_model(hw, Precision::fp32);
  const double d = double(s.d_model), dh = double(s.head_dim), e = element_bytes;
  const double qk = (double(s.heads) + s.kv_heads) * dh / tp, kv = 2.0 * s.kv_heads * dh / tp;
  const double ffn = double(s.ffn) / tp;
  const double bytes_per_token[] = {
      2 * d,    // RMSNorm before attention: read, write
      2 * d,    // RMSNorm before the MLP
      2 * qk,   // RoPE on Q and K in place
      2 * kv,   // K and V appended to the cache
      3 * ffn,  // SwiGLU: read gate and up, write
      3 * d,    // residual add after attention: read two, write one
      3 * d,    // residual add after the MLP
  };
  double seconds = 0;
  for (double b : bytes_per_token) seconds += model.memory_s(tokens * b * e);
  return seconds;
}

double per_pass_s(const TransformerShape& s, double tokens, double outputs, int tp,
                  const HardwareProfile& hw, Precision precision, int element_bytes) {
  const ComputeModel model = compute_model(hw, precision);
  const double d = double(s.d_model), e = element_bytes, vocab = double(s.vocab);
  double seconds = model.memory_s(2 * tokens * d * e);  // embedding rows gathered and written
  seconds += model.memory_s(2 * outputs * d * e);       // final RMSNorm
  const double head_vocab = vocab / tp;                 // the LM head is split over TP
  seconds +=
      model.gemm_s(2 * outputs * d * head_vocab, (d * head_vocab + outputs * (d + head_vocab)) * e);
  if (tp > 1) {
    seconds +=
        collective_time(hw, Collective::all_gather, strided_group(hw, tp), outputs * vocab * 4)
            .seconds;
  }
  seconds += model.memory_s(outputs * vocab * 4);  // sampling reads the FP32 logits
  return seconds;
}

ForwardCost forward_cost(const TransformerShape& s, double tokens, int cp_ranks, int tp,
                         double attention_s, double attention_flops, const HardwareProfile& hw,
                         Precision precision, int element_bytes, double outputs) {
  const double per_rank = std::ceil(tokens / cp_ranks);
  const LinearCost linear = linear_layer_cost(s, per_rank, tp, hw, precision, element_bytes);
  ForwardCost cost;
  cost.attention_s = s.layers * attention_s;
  cost.linear_s = s.layers * linear.gemm_s;
  cost.tp_comm_s = s.layers * linear.tp_allreduce_s;
  cost.other_s =
      s.layers * elementwise_layer_s(s, per_rank, tp, hw, element_bytes) +
      per_pass_s(s, per_rank, std::ceil(outputs / cp_ranks), tp, hw, precision, element_bytes);
  cost.flops = s.layers * (attention_flops + linear_flops_per_layer(s, tokens, 1)) +
               2 * outputs * double(s.d_model) * double(s.vocab);
  return cost;
}

double ForwardCost::utilization(const HardwareProfile& hw, Precision precision, int gpus) const {
  const double peak = precision == Precision::bf16 ? hw.bf16_peak_flops : hw.fp32_peak_flops;
  return flops / (total_s() * gpus * peak);
}

}  // namespace paralab::sim
