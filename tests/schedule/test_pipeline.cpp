// The 1F1B order both the 4D engine and the pipeline simulation run.
#include <gtest/gtest.h>

#include <string>

#include "core/errors.hpp"
#include "schedule/pipeline.hpp"

namespace paralab::schedule {
namespace {

// "F0 F1 B0 ..." for a stage's ops.
std::string order(int stage, int stages, int micro_batches) {
  std::string out;
  for (const PipelineOp& op : one_f_one_b(stage, stages, micro_batches)) {
    if (!out.empty()) out += ' ';
    out += op.kind == PipelineOp::forward ? 'F' : 'B';
    out += std::to_string(op.micro_batch);
  }
  return out;
}

TEST(OneFOneB, OrderHasWarmupSteadyAndCooldown) {
  // Stage 0 of 4 with 6 micro-batches: 3 warm-up forwards, F/B pairs, 3 backwards.
  EXPECT_EQ(order(0, 4, 6), "F0 F1 F2 F3 B0 F4 B1 F5 B2 B3 B4 B5");
  // The last stage alternates from the start.
  EXPECT_EQ(order(3, 4, 3), "F0 B0 F1 B1 F2 B2");
  // Fewer micro-batches than warm-up slots: all forwards, then all backwards.
  EXPECT_EQ(order(0, 4, 2), "F0 F1 B0 B1");
  EXPECT_THROW(one_f_one_b(4, 4, 2), UsageError);
  EXPECT_THROW(one_f_one_b(0, 4, 0), UsageError);
}

TEST(StageLayers, ContiguousWithTheFirstStagesTakingTheRemainder) {
  EXPECT_EQ(stage_layers(5, 0, 3).first, 0);
  EXPECT_EQ(stage_layers(5, 0, 3).count, 2);
  EXPECT_EQ(stage_layers(5, 1, 3).first, 2);
  EXPECT_EQ(stage_layers(5, 2, 3).count, 1);
  EXPECT_THROW(stage_layers(2, 0, 3), UsageError);
}

}  // namespace
}  // namespace paralab::schedule
