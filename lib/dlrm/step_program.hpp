// step_program.hpp: one DistributedDlrm step (distributed.hpp) as a
// schedule::Program, the phases every rank runs in their order:
//
//   input lengths      alltoallv of i32 bag lengths to the shards' holders
//   input indices      alltoallv of i32 indices
//   lookup             pooling the global batch's bags on this rank's shards
//   forward exchange   alltoallv of the pooled embeddings (compressed: encode,
//                      the byte counts' alltoall, the payload, the ranks'
//                      agreement all-reduce, decode)
//   dense forward      placing the features, bottom MLP, interaction, top MLP
//   -- training only --
//   dense backward     the loss and the dense part's backward
//   backward exchange  the transpose of the forward exchange
//   embedding backward sparse gradients on the shards and replicated tables
//   gradient all-reduce, loss all-reduce
//   square sums        row-wise Adagrad only: the column shards' row sums
//   update             MLPs and embeddings
//
// DistributedDlrm::train_step and forward walk this program on their rank
// and run each phase; dlrm::simulate_step plays it (schedule/play.hpp) with
// the operations' costs: sizes from the sharding plan and batch split, compute
// from FLOPs and bytes on the profile or from a measured run's phases.
#pragma once

#include "dlrm/model.hpp"
#include "dlrm/sharding.hpp"
#include "dlrm/simulate.hpp"
#include "schedule/program.hpp"

namespace paralab::dlrm {

// What each operation is to the step (schedule::OpRef::role).
enum class StepRole : int {
  input_lengths,
  input_indices,
  lookup,
  forward_exchange,  // the payload alltoallv; with compression, exchange_detail ops around it
  dense_forward,
  dense_backward,
  backward_exchange,
  embedding_backward,
  gradient_allreduce,
  loss_allreduce,
  square_sums,
  update,
  // Inside a compressed exchange (encode, counts, agreement, decode):
  // CompressedExchange runs them within its exchange call; the simulator
  // prices each.
  exchange_detail,
};

StepRole step_role(const schedule::Op& op);

struct StepProgramInputs {
  const DlrmConfig* config = nullptr;
  const ShardingPlan* plan = nullptr;
  BatchSplit split;
  EmbeddingOptimizer optimizer = EmbeddingOptimizer::sgd;
  bool training = true;                       // false: up to the dense forward (evaluation)
  bool compressed = false;                    // the exchanges compress (CompressedExchange)
  CompressionModel compression;               // ratios per table and the codec rate
  const MeasuredCompute* measured = nullptr;  // compute from a run, else FLOPs and bytes
};

schedule::Program step_program(const StepProgramInputs& inputs);

}  // namespace paralab::dlrm
