// sharded_layer.hpp: one transformer layer of lib/model (block.hpp) as a
// tensor- and context-parallel shard, on the local tokens of one micro-batch.
//
//   x += AllReduce_tp( Wo_r · CpAttention(RoPE(Wq_r·n), RoPE(Wk_r·n), Wv_r·n) ),  n = RMSNorm(x)
//   x += AllReduce_tp( Wd_r · (silu(Wg_r·n) * (Wu_r·n)) ),                         n = RMSNorm(x)
//
// with the column-parallel shards Wq_r, Wk_r, Wv_r (this tp rank's heads),
// Wg_r, Wu_r (its ffn rows) and the row-parallel Wo_r, Wd_r (ShardPlan). The
// residual stream x [n_local, d] is replicated over the tp ranks and split
// over the cp ranks by tokens. Backward mirrors it: the gradient of a
// row-parallel output is the replicated dx (no communication); the input
// gradients of the column-parallel GEMMs are partial sums over the heads or
// ffn rows of each tp rank, all-reduced before the RMSNorm backward. The
// attention of the local queries against the whole sequence's keys is
// CpAttention (all-gather of K/V, reduce-scatter of dK/dV); RoPE uses each
// token's position within its document of the packed sequence.
//
// Numerics follow model::TransformerLayer under every precision policy (the
// same sealing of GEMM operands to BF16), so at tp = cp = 1 a layer computes
// exactly what the single-rank layer does.
#pragma once

#include <cstdint>
#include <vector>

#include "model/attention.hpp"
#include "model/layers.hpp"
#include "model/parameters.hpp"
#include "parallel/cp_attention.hpp"
#include "parallel/shard.hpp"

namespace paralab::parallel {

// The tensor-parallel group: an in-place FP32 sum all-reduce, timed (a group
// of one does nothing).
class TensorParallelGroup {
 public:
  explicit TensorParallelGroup(comm::Communicator& comm) : comm_(comm) {}
  int size() const { return comm_.size(); }
  void allreduce_sum(float* x, size_t count);
  double seconds() const { return seconds_; }
  void reset_timing() { seconds_ = 0; }

 private:
  comm::Communicator& comm_;
  double seconds_ = 0;
};

// One micro-batch as this rank sees it: its CP layout (the whole packed
// sequence's documents and every CP rank's ranges) and the local tokens, in
// the order of this rank's ranges.
struct LocalSequence {
  CpLayout layout;
  int n = 0;                             // local tokens
  std::vector<int32_t> tokens, targets;  // [n]
  std::vector<int32_t> rope_positions;   // [n] positions within their documents
};
// Throws UsageError when the ranges or documents are inconsistent (CpLayout).
LocalSequence make_local_sequence(std::span<const int32_t> tokens, std::span<const int32_t> targets,
                                  std::span<const int64_t> doc_starts,
                                  const packing::CpShards& shards, int cp_rank);

class ShardedLayer {
 public:
  // What backward needs from one forward (one micro-batch in flight).
  struct Saved {
    std::vector<float> x_attn, x_mlp;        // residual stream entering each block
    std::vector<float> rstd_attn, rstd_mlp;  // RMSNorm 1 / rms per token
    model::Activation xn_attn, xn_mlp;       // normalised inputs (GEMM operands)
    model::Activation q, k, v;               // local heads, after RoPE (sealed)
    std::vector<float> o, lse;               // attention output and LSE, local heads
    std::vector<bf16> o_bf16;                // O as the BF16 input of Wo (BF16 policies)
    model::Mlp::Saved mlp;
  };

  // Registers this rank's shards of layer `layer` ("layers.<layer>.attn.wq",
  // ...) in params, in the single-rank order.
  ShardedLayer(model::Parameters& params, const ShardPlan& plan, int layer);

  // x [n, d] in place: the layer's input becomes its output.
  void forward(float* x, const LocalSequence& seq, Saved& saved, TensorParallelGroup& tp,
               CpAttention& cp);
  // dx [n, d] in place: d(loss)/d(output) becomes d(loss)/d(input).
  void backward(float* dx, const LocalSequence& seq, const Saved& saved, TensorParallelGroup& tp,
                CpAttention& cp);

 private:
  void project(model::Linear& w, model::Operand x, const LocalSequence& seq, model::Activation& out,
               int heads, bool rope);
  // x += AllReduce_tp(partial), partial = w.forward(in) (straight into x at tp = 1).
  void add_row_parallel(model::Linear& w, model::Operand in, int n, float* x,
                        TensorParallelGroup& tp);

  int d_, heads_, kv_heads_, head_dim_;
  bool bf16_;
  // Declared in registration order (the single-rank registry order).
  model::RmsNorm attn_norm_;
  model::Linear wq_, wk_, wv_, wo_;
  model::RmsNorm mlp_norm_;
  model::Mlp mlp_;
  model::Rope rope_;
  std::vector<float> branch_, dxn_, d_o_, dq_, dk_, dv_;
  std::vector<bf16> scratch_;
};

}  // namespace paralab::parallel
