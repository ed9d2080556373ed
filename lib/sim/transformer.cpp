// Transformer shapes and the cost of their linear layers; see transformer.hpp.
#include "sim/transformer.hpp"

#include <cmath>

#include "core/errors.hpp"
#include "sim/links.hpp"

namespace paralab::sim {

TransformerShape llama3_405b() {
  return {"llama3-405b", 126, 16384, 53248, 128, 8, 128};
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

LinearCost linear_layer_cost(const TransformerShape& s, double tokens, int tp,
                             const HardwareProfile& hw, Precision precision, int element_bytes) {
  const ComputeModel model = compute_model(hw, precision);
  const double d = double(s.d_model), dh = double(s.head_dim);
  const double gemm_flops[] = {
      2.0 * tokens * d * (s.heads + 2.0 * s.kv_heads) * dh / tp,  // QKV
      2.0 * tokens * double(s.heads) * dh * d / tp,               // output projection
      2.0 * tokens * d * 2.0 * double(s.ffn) / tp,                // gate and up
      2.0 * tokens * double(s.ffn) * d / tp,                      // down
  };
  LinearCost cost;
  for (double flops : gemm_flops) cost.gemm_s += model.gemm_s(flops);
  if (tp > 1)
    cost.tp_allreduce_s = 2 * ring_allreduce_s(hw.intra_node, tp, tokens * d * element_bytes);
  return cost;
}

ForwardCost forward_cost(const TransformerShape& s, double tokens, int cp_ranks, int tp,
                         double attention_s, double attention_flops, const HardwareProfile& hw,
                         Precision precision, int element_bytes) {
  const double per_rank = std::ceil(tokens / cp_ranks);
  const LinearCost linear = linear_layer_cost(s, per_rank, tp, hw, precision, element_bytes);
  ForwardCost cost;
  cost.attention_s = s.layers * attention_s;
  cost.linear_s = s.layers * linear.gemm_s;
  cost.tp_comm_s = s.layers * linear.tp_allreduce_s;
  cost.flops = s.layers * (attention_flops + linear_flops_per_layer(s, tokens, 1));
  return cost;
}

double ForwardCost::utilization(const HardwareProfile& hw, Precision precision, int gpus) const {
  const double peak = precision == Precision::bf16 ? hw.bf16_peak_flops : hw.fp32_peak_flops;
  return flops / (total_s() * gpus * peak);
}

}  // namespace paralab::sim
