#include "parallel/sharded_layer.hpp"

#include <string>

#include "core/errors.hpp"
#include "core/timer.hpp"

namespace paralab::parallel {

using model::Activation;
using model::Linear;
using model::Operand;

namespace {

size_t idx(int64_t row, int64_t width) {
  return static_cast<size_t>(row) * static_cast<size_t>(width);
}

// Keeps the block's input x and writes its normalised form into xn (sealed:
// BF16-rounded under the BF16 policies), as model::TransformerLayer does.
void normalise(const model::RmsNorm& norm, const float* x, int n, int d, bool use_bf16,
               std::vector<float>& x_saved, std::vector<float>& rstd, Activation& xn) {
  const size_t count = idx(n, d);
  x_saved.assign(x, x + count);
  rstd.resize(n);
  norm.forward(x, n, xn.reset(count), rstd.data());
  xn.seal(use_bf16);
}

std::string layer_prefix(int layer) {
  return "layers." + std::to_string(layer);
}

}  // namespace

// --- tensor-parallel group --------------------------------------------------------

void TensorParallelGroup::allreduce_sum(float* x, size_t count) {
  if (size() == 1) return;
  Stopwatch watch;
  comm_.allreduce(x, x, count, DType::f32, comm::ReduceOp::sum);
  seconds_ += watch.seconds();
}

// --- local sequence ---------------------------------------------------------------

LocalSequence make_local_sequence(std::span<const int32_t> tokens, std::span<const int32_t> targets,
                                  std::span<const int64_t> doc_starts,
                                  const packing::CpShards& shards, int cp_rank) {
  LocalSequence seq;
  seq.layout = CpLayout(doc_starts, static_cast<int64_t>(tokens.size()), shards);
  const std::vector<int64_t> positions = seq.layout.positions(cp_rank);
  seq.n = static_cast<int>(positions.size());
  seq.tokens.reserve(positions.size());
  seq.targets.reserve(positions.size());
  seq.rope_positions.reserve(positions.size());
  for (int64_t p : positions) {
    seq.tokens.push_back(tokens[p]);
    seq.targets.push_back(targets[p]);
    seq.rope_positions.push_back(static_cast<int32_t>(p - seq.layout.doc_start_of(p)));
  }
  return seq;
}

// --- the layer ----------------------------------------------------------------------

ShardedLayer::ShardedLayer(model::Parameters& params, const ShardPlan& plan, int layer)
    : d_(plan.config.d_model),
      heads_(plan.heads.count),
      kv_heads_(plan.kv_heads.count),
      head_dim_(plan.config.head_dim()),
      bf16_(model::computes_in_bf16(params.precision())),
      attn_norm_(params, layer_prefix(layer) + ".attn_norm.gain", d_, plan.config.norm_eps),
      wq_(params, layer_prefix(layer) + ".attn.wq", d_, heads_ * head_dim_),
      wk_(params, layer_prefix(layer) + ".attn.wk", d_, kv_heads_ * head_dim_),
      wv_(params, layer_prefix(layer) + ".attn.wv", d_, kv_heads_ * head_dim_),
      wo_(params, layer_prefix(layer) + ".attn.wo", heads_ * head_dim_, d_),
      mlp_norm_(params, layer_prefix(layer) + ".mlp_norm.gain", d_, plan.config.norm_eps),
      mlp_(params, layer_prefix(layer) + ".mlp", d_, plan.ffn.count),
      rope_(head_dim_, plan.config.context, plan.config.rope_theta) {}

// out = x W^T [n, heads, D], rotated when asked, then sealed (as model::Attention).
void ShardedLayer::project(Linear& w, Operand x, const LocalSequence& seq, Activation& out,
                           int heads, bool rope) {
  float* y = out.reset(idx(seq.n, w.out()));
  w.forward(x, seq.n, y);
  if (rope) rope_.apply(y, seq.n, heads, seq.rope_positions, false);
  out.seal(x.is_bf16());
}

void ShardedLayer::add_row_parallel(Linear& w, Operand in, int n, float* x,
                                    TensorParallelGroup& tp) {
  if (tp.size() == 1) {
    w.forward(in, n, x, /*accumulate=*/true);
    return;
  }
  const size_t count = idx(n, d_);
  branch_.resize(count);
  w.forward(in, n, branch_.data());
  tp.allreduce_sum(branch_.data(), count);
  for (size_t i = 0; i < count; ++i) x[i] += branch_[i];
}

void ShardedLayer::forward(float* x, const LocalSequence& seq, Saved& s, TensorParallelGroup& tp,
                           CpAttention& cp) {
  const int n = seq.n;
  // Attention block.
  normalise(attn_norm_, x, n, d_, bf16_, s.x_attn, s.rstd_attn, s.xn_attn);
  const Operand xn = s.xn_attn.operand();
  project(wq_, xn, seq, s.q, heads_, true);
  project(wk_, xn, seq, s.k, kv_heads_, true);
  project(wv_, xn, seq, s.v, kv_heads_, false);
  s.o.resize(idx(n, heads_ * head_dim_));
  s.lse.resize(idx(n, heads_));
  if (bf16_) {
    cp.forward(seq.layout, s.q.operand().b16, s.k.operand().b16, s.v.operand().b16, s.o.data(),
               s.lse.data());
  } else {
    cp.forward(seq.layout, s.q.data(), s.k.data(), s.v.data(), s.o.data(), s.lse.data());
  }
  add_row_parallel(wo_, model::as_operand(s.o, bf16_, s.o_bf16), n, x, tp);
  // MLP block.
  normalise(mlp_norm_, x, n, d_, bf16_, s.x_mlp, s.rstd_mlp, s.xn_mlp);
  if (tp.size() == 1) {
    mlp_.forward(s.xn_mlp.operand(), n, s.mlp, x, /*accumulate=*/true);
  } else {
    const size_t count = idx(n, d_);
    branch_.resize(count);
    mlp_.forward(s.xn_mlp.operand(), n, s.mlp, branch_.data(), false);
    tp.allreduce_sum(branch_.data(), count);
    for (size_t i = 0; i < count; ++i) x[i] += branch_[i];
  }
}

// Each block is x + f(norm(x)): the residual gradient passes through and each
// block adds norm'(f'(dy)), where f' of this rank's shard is a partial sum
// over tp ranks until all-reduced.
void ShardedLayer::backward(float* dx, const LocalSequence& seq, const Saved& s,
                            TensorParallelGroup& tp, CpAttention& cp) {
  const int n = seq.n;
  const size_t count = idx(n, d_);
  dxn_.resize(count);
  // MLP block.
  mlp_.backward(s.xn_mlp.operand(), s.mlp, dx, n, dxn_.data(), false);
  tp.allreduce_sum(dxn_.data(), count);
  mlp_norm_.backward(s.x_mlp.data(), s.rstd_mlp.data(), dxn_.data(), n, dx, true);
  // Attention block: d_o of the local heads needs no communication (Wo is row-parallel).
  const Operand o = bf16_ ? Operand{nullptr, s.o_bf16.data()} : Operand{s.o.data(), nullptr};
  d_o_.resize(s.o.size());
  wo_.backward(o, model::as_operand({dx, count}, bf16_, scratch_), n, d_o_.data());
  dq_.resize(s.q.size());
  dk_.resize(s.k.size());
  dv_.resize(s.v.size());
  cp.backward(seq.layout, s.q.data(), s.k.data(), s.v.data(), s.o.data(), s.lse.data(), d_o_.data(),
              dq_.data(), dk_.data(), dv_.data());
  rope_.apply(dq_.data(), n, heads_, seq.rope_positions, true);
  rope_.apply(dk_.data(), n, kv_heads_, seq.rope_positions, true);
  const Operand xn = s.xn_attn.operand();
  wq_.backward(xn, model::as_operand(dq_, bf16_, scratch_), n, dxn_.data(), false);
  wk_.backward(xn, model::as_operand(dk_, bf16_, scratch_), n, dxn_.data(), true);
  wv_.backward(xn, model::as_operand(dv_, bf16_, scratch_), n, dxn_.data(), true);
  tp.allreduce_sum(dxn_.data(), count);
  attn_norm_.backward(s.x_attn.data(), s.rstd_attn.data(), dxn_.data(), n, dx, true);
}

}  // namespace paralab::parallel
