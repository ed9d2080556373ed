#include "schedule/pipeline.hpp"

#include <algorithm>
#include <string>

#include "core/errors.hpp"

namespace paralab::schedule {

std::vector<PipelineOp> one_f_one_b(int stage, int stages, int micro_batches) {
  if (stages < 1 || micro_batches < 1) {
    throw UsageError("1F1B schedule: stages (" + std::to_string(stages) + ") and micro-batches (" +
                     std::to_string(micro_batches) + ") must be positive");
  }
  if (stage < 0 || stage >= stages) {
    throw UsageError("1F1B schedule: stage " + std::to_string(stage) + " is outside 0.." +
                     std::to_string(stages - 1));
  }
  const int warmup = std::min(stages - 1 - stage, micro_batches);
  std::vector<PipelineOp> ops;
  ops.reserve(2 * static_cast<size_t>(micro_batches));
  for (int i = 0; i < warmup; ++i) ops.push_back({PipelineOp::forward, i});
  for (int i = 0; i < micro_batches - warmup; ++i) {
    ops.push_back({PipelineOp::forward, warmup + i});
    ops.push_back({PipelineOp::backward, i});
  }
  for (int i = micro_batches - warmup; i < micro_batches; ++i) {
    ops.push_back({PipelineOp::backward, i});
  }
  return ops;
}

LayerRange stage_layers(int layers, int stage, int stages) {
  if (stages > layers) {
    throw UsageError("pipeline: pp = " + std::to_string(stages) + " stages exceed the model's " +
                     std::to_string(layers) + " layers (every stage needs at least one layer)");
  }
  if (stage < 0 || stage >= stages) {
    throw UsageError("pipeline: stage " + std::to_string(stage) + " is outside 0.." +
                     std::to_string(stages - 1));
  }
  const int base = layers / stages, extra = layers % stages;
  return {stage * base + std::min(stage, extra), base + (stage < extra ? 1 : 0)};
}

}  // namespace paralab::schedule
