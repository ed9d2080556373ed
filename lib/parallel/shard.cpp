#include "parallel/shard.hpp"

#include <algorithm>
#include <string>

#include "core/errors.hpp"

namespace paralab::parallel {

namespace {

Share even_share(int total, int rank, int ranks) {
  const int base = total / ranks, extra = total % ranks;
  return {rank * base + std::min(rank, extra), base + (rank < extra ? 1 : 0)};
}

std::string layer_prefix(int l) {
  return "layers." + std::to_string(l);
}

TensorShard whole(std::string name, int rows, int cols) {
  return {std::move(name), rows, cols, TensorShard::whole, {0, cols}};
}

}  // namespace

ShardPlan make_shard_plan(const model::ModelConfig& config, int tp, int tp_rank, int pp,
                          int stage) {
  model::validate(config);
  if (tp < 1 || pp < 1) throw UsageError("tp and pp must be at least 1");
  if (config.kv_heads % tp != 0) {
    throw UsageError("tensor parallelism: tp = " + std::to_string(tp) +
                     " must divide the model's kv_heads = " + std::to_string(config.kv_heads) +
                     " (each tp rank keeps whole groups of query heads with their key/value head)");
  }
  if (tp > config.ffn) {
    throw UsageError("tensor parallelism: tp = " + std::to_string(tp) +
                     " exceeds the model's ffn = " + std::to_string(config.ffn));
  }
  ShardPlan plan;
  plan.config = config;
  plan.tp = tp, plan.tp_rank = tp_rank, plan.pp = pp, plan.stage = stage;
  plan.layers = schedule::stage_layers(config.layers, stage, pp);
  plan.heads = even_share(config.heads, tp_rank, tp);
  plan.kv_heads = even_share(config.kv_heads, tp_rank, tp);
  plan.ffn = even_share(config.ffn, tp_rank, tp);
  return plan;
}

std::vector<int> TensorShard::local_shape(bool one_dimensional) const {
  if (one_dimensional) return {full_cols};
  if (split == rows) return {part.count, full_cols};
  if (split == columns) return {full_rows, part.count};
  return {full_rows, full_cols};
}

size_t TensorShard::local_size() const {
  const size_t r = split == rows ? part.count : full_rows;
  const size_t c = split == columns ? part.count : full_cols;
  return r * c;
}

size_t TensorShard::full_index(size_t i) const {
  const size_t cols = static_cast<size_t>(full_cols);
  switch (split) {
    case rows:  // a contiguous block
      return static_cast<size_t>(part.first) * cols + i;
    case columns: {
      const size_t width = static_cast<size_t>(part.count);
      return (i / width) * cols + part.first + i % width;
    }
    case whole:
      break;
  }
  return i;
}

std::vector<TensorShard> local_tensors(const ShardPlan& plan) {
  const model::ModelConfig& c = plan.config;
  const int d = c.d_model, hd = c.head_dim();
  const Share q_rows{plan.heads.first * hd, plan.heads.count * hd};
  const Share kv_rows{plan.kv_heads.first * hd, plan.kv_heads.count * hd};
  std::vector<TensorShard> out;
  if (plan.has_embedding()) out.push_back(whole("embed.weight", c.vocab, d));
  for (int l = plan.layers.first; l < plan.layers.first + plan.layers.count; ++l) {
    const std::string p = layer_prefix(l);
    out.push_back(whole(p + ".attn_norm.gain", 1, d));
    out.push_back({p + ".attn.wq", c.heads * hd, d, TensorShard::rows, q_rows});
    out.push_back({p + ".attn.wk", c.kv_heads * hd, d, TensorShard::rows, kv_rows});
    out.push_back({p + ".attn.wv", c.kv_heads * hd, d, TensorShard::rows, kv_rows});
    out.push_back({p + ".attn.wo", d, c.heads * hd, TensorShard::columns, q_rows});
    out.push_back(whole(p + ".mlp_norm.gain", 1, d));
    out.push_back({p + ".mlp.w_gate", c.ffn, d, TensorShard::rows, plan.ffn});
    out.push_back({p + ".mlp.w_up", c.ffn, d, TensorShard::rows, plan.ffn});
    out.push_back({p + ".mlp.w_down", d, c.ffn, TensorShard::columns, plan.ffn});
  }
  if (plan.has_head()) {
    out.push_back(whole("final_norm.gain", 1, d));
    out.push_back(whole("lm_head.weight", c.vocab, d));
  }
  return out;
}

size_t FullTensor::size() const {
  size_t n = 1;
  for (int s : shape) n *= static_cast<size_t>(s);
  return n;
}

std::vector<FullTensor> full_tensors(const model::ModelConfig& c) {
  const int d = c.d_model, hd = c.head_dim();
  std::vector<FullTensor> out;
  auto add = [&](std::string name, std::vector<int> shape) {
    const size_t offset = out.empty() ? 0 : out.back().offset + out.back().size();
    out.push_back({std::move(name), std::move(shape), offset});
  };
  add("embed.weight", {c.vocab, d});
  for (int l = 0; l < c.layers; ++l) {
    const std::string p = layer_prefix(l);
    add(p + ".attn_norm.gain", {d});
    add(p + ".attn.wq", {c.heads * hd, d});
    add(p + ".attn.wk", {c.kv_heads * hd, d});
    add(p + ".attn.wv", {c.kv_heads * hd, d});
    add(p + ".attn.wo", {d, c.heads * hd});
    add(p + ".mlp_norm.gain", {d});
    add(p + ".mlp.w_gate", {c.ffn, d});
    add(p + ".mlp.w_up", {c.ffn, d});
    add(p + ".mlp.w_down", {d, c.ffn});
  }
  add("final_norm.gain", {d});
  add("lm_head.weight", {c.vocab, d});
  return out;
}

}  // namespace paralab::parallel
