// The DLRM step's operations, rank by rank; see step_program.hpp.
#include "dlrm/step_program.hpp"

#include <algorithm>
#include <numeric>

namespace paralab::dlrm {
namespace {

using schedule::ComputeCost;
using schedule::OpRef;
using schedule::Program;

constexpr double kFloatBytes = 4;

OpRef ref(StepRole role, int item = -1) {
  return {static_cast<int>(role), -1, item};
}

// Floats one rank's embedding work moves, forward (read the looked-up rows,
// write the pooled ones) and backward (read the pooled gradients, read and
// write the rows): its shards for the global batch, with row shards taking
// their expected share of the lookups, and the replicated tables for its
// own samples.
struct EmbeddingFloats {
  double forward = 0, backward = 0;
};

EmbeddingFloats embedding_floats(const DlrmConfig& config, const ShardingPlan& plan, int rank,
                                 double batch, double local_samples) {
  EmbeddingFloats f;
  for (int id : plan.rank_shards[static_cast<size_t>(rank)]) {
    const Shard& s = plan.shards[static_cast<size_t>(id)];
    const auto t = static_cast<size_t>(s.table);
    const double share = double(s.rows()) / double(config.table_rows[t]);
    const double lookups = config.pooling[t] * s.cols() * share;
    f.forward += batch * (lookups + s.cols());
    f.backward += batch * (2 * lookups + s.cols());
  }
  for (int t : plan.data_parallel_tables) {
    const double pooling = config.pooling[static_cast<size_t>(t)];
    f.forward += local_samples * (pooling + 1) * config.embedding_dim;
    f.backward += local_samples * (2 * pooling + 1) * config.embedding_dim;
  }
  return f;
}

class StepLowering {
 public:
  explicit StepLowering(const StepProgramInputs& in)
      : in_(in), config_(*in.config), plan_(*in.plan), ranks_(plan_.ranks), program_(ranks_) {
    std::vector<int> all(ranks_);
    std::iota(all.begin(), all.end(), 0);
    world_ = program_.add_group(all, "world");
    const BatchSplit& split = in.split;
    lengths_ = input_length_bytes(config_, plan_, split);
    indices_ = input_index_bytes(config_, plan_, split);
    forward_ = forward_exchange_bytes(plan_, split);
    backward_ = backward_exchange_bytes(plan_, split);
    forward_sent_ = forward_exchange_bytes(plan_, split, in.compression.forward_ratio);
    backward_sent_ = backward_exchange_bytes(plan_, split, in.compression.backward_ratio);
    if (in.optimizer == EmbeddingOptimizer::rowwise_adagrad)
      square_sums_ = square_sum_bytes(config_, plan_, double(split.total));
  }

  Program lower() {
    for (int r = 0; r < ranks_; ++r) lower_rank(r);
    return std::move(program_);
  }

 private:
  void lower_rank(int r) {
    const size_t me = static_cast<size_t>(r);
    program_.alltoallv(r, world_, lengths_.send[me], {}, ref(StepRole::input_lengths),
                       "input lengths");
    program_.alltoallv(r, world_, indices_.send[me], {}, ref(StepRole::input_indices),
                       "input indices");
    const Compute c = compute(r);
    program_.compute(r, "lookup", c.lookup, {}, ref(StepRole::lookup));
    exchange(r, forward_, forward_sent_, StepRole::forward_exchange, "forward exchange");
    program_.compute(r, "dense forward", c.dense_forward, {}, ref(StepRole::dense_forward));
    if (!in_.training) return;
    program_.compute(r, "dense backward", c.dense_backward, {}, ref(StepRole::dense_backward));
    exchange(r, backward_, backward_sent_, StepRole::backward_exchange, "backward exchange");
    program_.compute(r, "embedding backward", c.embedding_backward, {},
                     ref(StepRole::embedding_backward));
    program_.collective(r, world_, sim::Collective::all_reduce,
                        kFloatBytes * allreduce_floats(config_, plan_), {},
                        ref(StepRole::gradient_allreduce), "gradient all-reduce");
    program_.collective(r, world_, sim::Collective::all_reduce, 8, {},
                        ref(StepRole::loss_allreduce), "loss all-reduce");
    if (in_.optimizer == EmbeddingOptimizer::rowwise_adagrad)
      program_.alltoallv(r, world_, square_sums_.send[me], {}, ref(StepRole::square_sums),
                         "square sums");
    program_.compute(r, "update", c.update, {}, ref(StepRole::update));
  }

  // One exchange: plain, the alltoallv; compressed, encoding what the rank
  // sends, the byte counts (one u64 per peer), the payload, the agreement on
  // whether every block decoded (an i32 all-reduce), decoding what it received.
  void exchange(int r, const AlltoallvBytes& raw, const AlltoallvBytes& sent, StepRole role,
                const std::string& label) {
    const size_t me = static_cast<size_t>(r);
    if (!in_.compressed) {
      program_.alltoallv(r, world_, raw.send[me], {}, ref(role), label);
      return;
    }
    double out = 0, in = 0;
    for (int p = 0; p < ranks_; ++p) {
      out += raw.send[me][static_cast<size_t>(p)];
      in += raw.send[static_cast<size_t>(p)][me];
    }
    const double rate = in_.compression.codec_s_per_byte;
    program_.compute(r, label + ": encode", schedule::fixed_cost(rate * out), {},
                     ref(StepRole::exchange_detail));
    program_.collective(r, world_, sim::Collective::all_to_all, 8.0 * ranks_, {},
                        ref(StepRole::exchange_detail), label + ": counts");
    program_.alltoallv(r, world_, sent.send[me], {}, ref(role), label);
    program_.collective(r, world_, sim::Collective::all_reduce, 4, {},
                        ref(StepRole::exchange_detail), label + ": agreement");
    program_.compute(r, label + ": decode", schedule::fixed_cost(rate * in), {},
                     ref(StepRole::exchange_detail));
  }

  struct Compute {
    ComputeCost lookup, dense_forward, dense_backward, embedding_backward, update;
  };

  // Profile compute: the dense part's GEMM FLOPs (a third forward, two thirds
  // backward; one call per layer forward and two backward, and the
  // interaction each way), the embedding bytes on memory bandwidth, the
  // update's three passes over the all-reduced parameters. Measured compute:
  // the run's dense and embedding seconds scaled by this rank's samples and
  // embedding bytes, split as the FLOPs and bytes split.
  Compute compute(int r) const {
    const double samples = in_.split.counts[static_cast<size_t>(r)];
    const EmbeddingFloats e = embedding_floats(config_, plan_, r, double(in_.split.total), samples);
    const double flops = dense_flops(config_, samples);
    const int layers = int(config_.bottom_layers.size() + config_.top_layers.size());
    Compute c;
    if (in_.measured == nullptr) {
      c.lookup = schedule::memory_cost(kFloatBytes * e.forward);
      c.embedding_backward = schedule::memory_cost(kFloatBytes * e.backward);
      c.dense_forward = schedule::gemm_cost(flops / 3, 0, layers + 1);
      c.dense_backward = schedule::gemm_cost(2 * flops / 3, 0, 2 * layers + 1);
      c.update = schedule::memory_cost(3 * kFloatBytes * allreduce_floats(config_, plan_));
      return c;
    }
    const MeasuredCompute& m = *in_.measured;
    const double dense = m.dense_s * samples / std::max(1, m.max_local_samples);
    const double shard_bytes = embedding_bytes(config_, plan_, r, double(in_.split.total));
    const double embedding =
        m.max_embedding_bytes > 0 ? m.embedding_s * shard_bytes / m.max_embedding_bytes : 0;
    const double forward_share = e.forward / std::max(1.0, e.forward + e.backward);
    c.lookup = schedule::fixed_cost(embedding * forward_share);
    c.embedding_backward = schedule::fixed_cost(embedding * (1 - forward_share));
    c.dense_forward = schedule::fixed_cost(dense / 3);
    c.dense_backward = schedule::fixed_cost(2 * dense / 3);
    c.update = schedule::fixed_cost(0);  // inside the measured dense part
    return c;
  }

  const StepProgramInputs& in_;
  const DlrmConfig& config_;
  const ShardingPlan& plan_;
  int ranks_;
  Program program_;
  int world_ = 0;
  AlltoallvBytes lengths_, indices_, forward_, backward_, forward_sent_, backward_sent_,
      square_sums_;
};

}  // namespace

StepRole step_role(const schedule::Op& op) {
  return static_cast<StepRole>(op.ref.role);
}

schedule::Program step_program(const StepProgramInputs& inputs) {
  return StepLowering(inputs).lower();
}

}  // namespace paralab::dlrm
