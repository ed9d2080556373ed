// The 1F1B pipeline of lib/wlb on the sim timeline, against hand-computed
// schedules.
#include <gtest/gtest.h>

#include <vector>

#include "core/errors.hpp"
#include "wlb/step.hpp"

namespace paralab::wlb {
namespace {

// Free links: transfers take no time.
std::vector<sim::LinkModel> free_links(int stages) {
  return std::vector<sim::LinkModel>(size_t(stages > 0 ? stages - 1 : 0), sim::LinkModel{"free"});
}

PipelineInput pipeline(int stages, std::vector<std::vector<StageWork>> replicas) {
  PipelineInput input;
  input.stages = stages;
  input.replicas = std::move(replicas);
  input.boundary_links = free_links(stages);
  return input;
}

TEST(OneFOneB, EqualMicroBatchesTakeMPlusPMinusOneSlots) {
  for (int stages : {1, 2, 3, 4, 7})
    for (int m : {1, 2, 3, 5, 8}) {
      const double f = 1.5, b = 3.25;
      const PipelineResult result =
          simulate_1f1b(pipeline(stages, {std::vector<StageWork>(size_t(m), {f, b, 0})}));
      EXPECT_DOUBLE_EQ(result.step_s, (m + stages - 1) * (f + b)) << stages << " stages, m " << m;
      // Every stage computes m (f + b); the rest of the step is bubble.
      EXPECT_NEAR(result.bubble_fraction, double(stages - 1) / (m + stages - 1), 1e-12);
    }
}

TEST(OneFOneB, UnequalMicroBatchesByHand) {
  // 2 stages, forwards 1 and 2, backwards twice that.
  //   stage 1: F0 [1,2] B0 [2,4] F1 [4,6] B1 [6,10]
  //   stage 0: F0 [0,1] F1 [1,3] B0 [4,6] B1 [10,14]
  const PipelineResult result = simulate_1f1b(pipeline(2, {{{1, 2, 0}, {2, 4, 0}}}));
  EXPECT_DOUBLE_EQ(result.step_s, 14);
  EXPECT_NEAR(result.bubble_fraction, 1 - (9.0 + 9.0) / (2 * 14), 1e-12);
  // The long micro-batch first: stage 1 F0 [2,4] B0 [4,8] F1 [8,9] B1 [9,11];
  // stage 0 F0 [0,2] F1 [2,3] B0 [8,12] B1 [12,14].
  EXPECT_DOUBLE_EQ(simulate_1f1b(pipeline(2, {{{2, 4, 0}, {1, 2, 0}}})).step_s, 14);
  // 3 stages, a heavy micro-batch between two light ones:
  //   stage 0: F0 [0,1] F1 [1,4] F2 [4,5] B0 [9,11] B1 [22,28] B2 [28,30]
  //   stage 1: F0 [1,2] F1 [4,7] B0 [7,9] F2 [9,10] B1 [16,22] B2 [22,24]
  //   stage 2: F0 [2,3] B0 [3,5] F1 [7,10] B1 [10,16] F2 [16,17] B2 [17,19]
  EXPECT_DOUBLE_EQ(simulate_1f1b(pipeline(3, {{{1, 2, 0}, {3, 6, 0}, {1, 2, 0}}})).step_s, 30);
}

TEST(OneFOneB, TransfersDelayTheNeighbourStage) {
  // One micro-batch over 2 stages, each transfer 0.5 s: F [0,1], send
  // [1,1.5], F [1.5,2.5], B [2.5,4.5], send [4.5,5], B [5,7].
  PipelineInput input = pipeline(2, {{{1, 2, 1000}}});
  input.boundary_links = {sim::LinkModel{"slow", 0.25, 0.25 / 1000}};
  EXPECT_DOUBLE_EQ(simulate_1f1b(input).step_s, 7);
}

TEST(OneFOneB, GradientAllReduceWaitsForTheSlowestReplica) {
  // Two replicas of one stage: 3 s and 5 s of work, then a 1 s all-reduce
  // that starts when both are done.
  PipelineInput input = pipeline(1, {{{1, 2, 0}}, {{2, 3, 0}}});
  input.gradient_allreduce_s = 1;
  input.keep_trace = true;
  const PipelineResult result = simulate_1f1b(input);
  EXPECT_DOUBLE_EQ(result.step_s, 6);
  int collectives = 0;
  for (const sim::TaskRecord& task : result.trace)
    if (task.label == "gradient all-reduce") {
      EXPECT_DOUBLE_EQ(task.start_s, 5);
      ++collectives;
    }
  EXPECT_EQ(collectives, 2);
}

TEST(OneFOneB, ImbalanceRaisesStepTime) {
  // The same total work, spread evenly or not: imbalance costs time.
  const PipelineResult even = simulate_1f1b(pipeline(4, {std::vector<StageWork>(4, {2, 4, 0})}));
  const PipelineResult skewed =
      simulate_1f1b(pipeline(4, {{{1, 2, 0}, {1, 2, 0}, {1, 2, 0}, {5, 10, 0}}}));
  EXPECT_GT(skewed.step_s, even.step_s);
  EXPECT_GT(skewed.bubble_fraction, even.bubble_fraction);
}

TEST(OneFOneB, BadInputIsAUsageError) {
  EXPECT_THROW(simulate_1f1b(pipeline(0, {{{1, 2, 0}}})), UsageError);
  EXPECT_THROW(simulate_1f1b(pipeline(2, {})), UsageError);
  EXPECT_THROW(simulate_1f1b(pipeline(2, {{}})), UsageError);
  PipelineInput wrong_links = pipeline(3, {{{1, 2, 0}}});
  wrong_links.boundary_links.pop_back();
  EXPECT_THROW(simulate_1f1b(wrong_links), UsageError);
}

}  // namespace
}  // namespace paralab::wlb
