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

}  // namespace paralab::schedule
