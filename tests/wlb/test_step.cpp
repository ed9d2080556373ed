// The cost of one micro-batch and one simulated step (lib/wlb/step).
#include <gtest/gtest.h>

#include <vector>

#include "core/errors.hpp"
#include "sim/hardware.hpp"
#include "wlb/step.hpp"

namespace paralab::wlb {
namespace {

packing::MicroBatch micro_batch(std::vector<int64_t> lengths) {
  static int64_t next_id = 0;
  packing::MicroBatch mb;
  for (int64_t length : lengths) mb.docs.push_back({next_id++, length, 0});
  return mb;
}

StepSetup gtt(packing::CpSharding sharding = packing::CpSharding::per_sequence) {
  StepSetup setup;
  setup.hardware = sim::find_profile("h100-gtt");
  setup.sharding = sharding;
  return setup;
}

TEST(MicroBatchCost, OneDocumentOnOneGpuByHand) {
  const ModelPreset model = find_model_preset("7B");
  const StepSetup setup = gtt();
  const int64_t L = 1000;
  const MicroBatchCost cost = micro_batch_cost(micro_batch({L}), model, {1, 1, 1, 1}, setup);
  const sim::HardwareProfile& hw = setup.hardware;
  // L (L + 1) / 2 visible pairs, 4 FLOPs per pair, head dimension and head.
  const double attention =
      hw.kernel_overhead_s +
      4.0 * (L * (L + 1) / 2) * 32 * 128 / (hw.bf16_peak_flops * hw.attention_efficiency);
  const double gemm =
      sim::linear_layer_cost(model.shape, double(L), 1, hw, sim::Precision::bf16, 2).gemm_s;
  EXPECT_EQ(cost.tokens, L);
  EXPECT_NEAR(cost.attention_s, 32 * attention, 1e-12);
  EXPECT_NEAR(cost.gemm_s, 32 * gemm, 1e-12);
  EXPECT_DOUBLE_EQ(cost.tp_comm_s, 0);
  EXPECT_DOUBLE_EQ(cost.cp_comm_s, 0);
  EXPECT_NEAR(cost.forward_s, 32 * (attention + gemm), 1e-12);
  EXPECT_NEAR(cost.backward_s, 2 * cost.forward_s, 1e-12);
  EXPECT_DOUBLE_EQ(cost.pair_imbalance, 1);
}

TEST(MicroBatchCost, EmptyMicroBatchCostsNothing) {
  const MicroBatchCost cost =
      micro_batch_cost(packing::MicroBatch{}, find_model_preset("550M"), {2, 2, 4, 1}, gtt());
  EXPECT_EQ(cost.tokens, 0);
  EXPECT_DOUBLE_EQ(cost.forward_s + cost.backward_s + cost.send_bytes, 0);
}

TEST(MicroBatchCost, PerStageShareOfTheLayersAndCommunication) {
  const ModelPreset model = find_model_preset("7B");
  const packing::MicroBatch mb = micro_batch({4096, 2048, 2048});
  const MicroBatchCost whole = micro_batch_cost(mb, model, {1, 1, 1, 1}, gtt());
  const MicroBatchCost quarter = micro_batch_cost(mb, model, {1, 1, 4, 1}, gtt());
  EXPECT_NEAR(quarter.forward_s, whole.forward_s / 4, 1e-12);
  // TP and CP add their collectives.
  const MicroBatchCost split = micro_batch_cost(mb, model, {4, 2, 4, 1}, gtt());
  EXPECT_GT(split.tp_comm_s, 0);
  EXPECT_GT(split.cp_comm_s, 0);
  EXPECT_LT(split.attention_s, quarter.attention_s);
}

TEST(MicroBatchCost, PerDocumentShardingBalancesTheCpRanks) {
  // Documents of 3072 and 1024 tokens over CP 2. Per sequence (chunks of
  // 1024, rank 0 taking chunks 0 and 3): rank 0 sees 524800 + 524800 pairs,
  // rank 1 1573376 + 2621952, max over mean 4195328 / 2622464. Per document
  // every document splits evenly.
  const ModelPreset model = find_model_preset("7B");
  const packing::MicroBatch mb = micro_batch({3072, 1024});
  const Grid grid{1, 2, 1, 1};
  const MicroBatchCost sequence = micro_batch_cost(mb, model, grid, gtt());
  const MicroBatchCost document =
      micro_batch_cost(mb, model, grid, gtt(packing::CpSharding::per_document));
  EXPECT_NEAR(sequence.pair_imbalance, 4195328.0 / 2622464.0, 1e-12);
  EXPECT_NEAR(document.pair_imbalance, 1, 1e-12);
  EXPECT_LT(document.attention_s, sequence.attention_s);
  // Adaptive picks the better of the two.
  const MicroBatchCost adaptive =
      micro_batch_cost(mb, model, grid, gtt(packing::CpSharding::adaptive));
  EXPECT_NEAR(adaptive.attention_s, document.attention_s, 1e-12);
}

TEST(WorkloadModel, MatchesTheCostModelPerDocument) {
  const ModelPreset model = find_model_preset("7B");
  const Grid grid{8, 2, 4, 1};
  const StepSetup setup = gtt();
  const packing::WorkloadModel workload = workload_model(model, grid, setup);
  // One layer of one document on one GPU, without the kernel overheads.
  const int64_t d = 65536;
  const sim::ComputeModel compute = sim::compute_model(setup.hardware, setup.precision);
  const double attention =
      4.0 * (double(d) * (d + 1) / 2) * (32 / 8) * 128 / compute.attention_flops_per_s;
  EXPECT_NEAR(workload.attention(d) / attention, 1, 1e-4);
  EXPECT_NEAR(workload.linear(d),
              sim::linear_flops_per_layer(model.shape, double(d), 8) / compute.gemm_flops_per_s,
              1e-12);
}

// Four micro-batches of 64K tokens over PP 4, the same documents arranged two ways.
packing::Step step_of(std::vector<std::vector<int64_t>> micro_batches) {
  packing::Step step;
  for (auto& lengths : micro_batches) step.micro_batches.push_back(micro_batch(lengths));
  return step;
}

TEST(SimulateStep, ImbalanceRaisesStepTime) {
  const std::vector<int64_t> short_docs(32, 1024), many_short(64, 1024);
  std::vector<int64_t> one_long{32768};
  one_long.insert(one_long.end(), short_docs.begin(), short_docs.end());
  const packing::Step balanced = step_of({one_long, one_long, one_long, one_long});
  // The heavy micro-batches first and last: the pipeline fills with the first
  // forward and drains with the last backward, so both stretch the step
  // (light ones there would shorten it: the order matters, not only the spread).
  const packing::Step skewed = step_of({{32768, 32768}, many_short, many_short, {32768, 32768}});
  const ModelPreset model = find_model_preset("7B");
  const Grid grid{1, 1, 4, 1};
  const SimulatedStep even = simulate_step(balanced, model, grid, gtt());
  const SimulatedStep uneven = simulate_step(skewed, model, grid, gtt());
  EXPECT_EQ(even.tokens, uneven.tokens);
  EXPECT_NEAR(even.latency_imbalance, 1, 1e-12);
  EXPECT_GT(uneven.latency_imbalance, 1.2);
  EXPECT_GT(uneven.step_s, 1.05 * even.step_s);
  EXPECT_LT(uneven.tokens_per_s, even.tokens_per_s);
  EXPECT_GT(even.mfu, uneven.mfu);
  EXPECT_GT(even.mfu, 0.2);
  EXPECT_LT(even.mfu, 1);
  EXPECT_NEAR(even.tokens_per_s * even.step_s, double(even.tokens), 1e-6);
}

TEST(SimulateStep, DataParallelReplicasAllReduceGradients) {
  const ModelPreset model = find_model_preset("550M");
  const packing::Step step = step_of({{8192}, {4096, 4096}, {8192}, {2048, 6144}});
  const SimulatedStep one = simulate_step(step, model, {2, 1, 2, 1}, gtt());
  const SimulatedStep two = simulate_step(step, model, {2, 1, 2, 2}, gtt());
  EXPECT_DOUBLE_EQ(one.gradient_allreduce_s, 0);
  EXPECT_GT(two.gradient_allreduce_s, 0);
  // Half the micro-batches per replica: shorter, but not by more than half plus the all-reduce.
  EXPECT_LT(two.step_s, one.step_s);
  EXPECT_EQ(one.tokens, two.tokens);
}

TEST(SimulateStep, BadInputIsAUsageError) {
  const ModelPreset model = find_model_preset("550M");
  const packing::Step three = step_of({{100}, {100}, {100}});
  EXPECT_THROW(simulate_step(three, model, {1, 1, 1, 2}, gtt()), UsageError);
  EXPECT_THROW(simulate_step(packing::Step{}, model, {1, 1, 1, 1}, gtt()), UsageError);
  EXPECT_THROW(simulate_step(three, model, {1, 1, 32, 1}, gtt()), UsageError);  // pp > layers
  EXPECT_THROW(simulate_step(three, model, {5, 1, 1, 1}, gtt()), UsageError);   // 12 heads / 5
}

}  // namespace
}  // namespace paralab::wlb
