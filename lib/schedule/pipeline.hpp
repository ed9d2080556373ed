// pipeline.hpp: the pipeline-parallel 1F1B schedule (PipeDream-Flush /
// Megatron-LM) and the split of a model's layers over pipeline stages.
//
// A stage s of pp runs, for its m micro-batches in order:
//   warm-up    min(pp - 1 - s, m) forwards,
//   steady     one forward then one backward, until every forward is done,
//   cool-down  the remaining backwards.
// So at most pp - s micro-batches are in flight on stage s (their
// activations kept for backward), and the last stage runs each backward
// right after its forward. The schedule is plain data, so the measure
// executor (parallel::Engine4D) and the simulator (wlb::simulate_1f1b) run
// the same list.
#pragma once

#include <vector>

#include "schedule/program.hpp"
#include "sim/links.hpp"

namespace paralab::schedule {

struct PipelineOp {
  enum Kind { forward, backward };
  Kind kind = forward;
  int micro_batch = 0;  // index among this replica's micro-batches
  bool operator==(const PipelineOp&) const = default;
};

// The ops of stage `stage` of `stages` over `micro_batches` micro-batches,
// in execution order (2 * micro_batches ops). Throws UsageError when
// stage is outside 0 .. stages - 1 or a count is not positive.
std::vector<PipelineOp> one_f_one_b(int stage, int stages, int micro_batches);

// Layers [first, first + count) of stage `stage`: contiguous, in order, the
// first layers % stages stages taking one layer more. Throws UsageError when
// stages > layers (a stage without layers).
struct LayerRange {
  int first = 0;
  int count = 0;
};
LayerRange stage_layers(int layers, int stage, int stages);

// The 1F1B pipeline of one step as a Program: rank replica * stages + stage
// runs its stage's one_f_one_b order; a forward receives the activation from
// the stage before (tag 2i), computes and sends it on; a backward receives
// the gradient from the stage after (tag 2i + 1), computes and sends it back;
// then each stage's replicas all-reduce their gradients. Engine4D walks its
// stage's operations; wlb::simulate_1f1b plays them.
enum class PipelineRole : int {
  recv_activation,
  forward,
  send_activation,
  recv_gradient,
  backward,
  send_gradient,
  gradient_allreduce,
};
PipelineRole pipeline_role(const Op& op);  // OpRef::item is the micro-batch

struct PipelineWork {  // one micro-batch on one stage
  ComputeCost forward, backward;
  double send_bytes = 0;  // the activation to the next stage (= the gradient back)
};
struct PipelineProgramInputs {
  int stages = 1;
  std::vector<std::vector<PipelineWork>> replicas;  // [replica][micro-batch], >= 1 each
  // Optional: the link after each stage (stages - 1), pricing the transfers
  // across it; empty: the player prices them from the profile and placement.
  std::vector<sim::LinkModel> boundary_links;
  // The gradient all-reduce of each stage over its replicas: its seconds
  // (> 0; the replicas stand for a larger group of reducers), or none.
  double gradient_allreduce_s = 0;
};
// Throws UsageError for no stages, no replicas, an empty replica, or the
// wrong number of boundary links.
Program pipeline_program(const PipelineProgramInputs& inputs);

}  // namespace paralab::schedule
