// The DLRM step cost model (dlrm/simulate.hpp): the uneven all-to-all
// reduces to sim::alltoall_s on even sizes and costs each step by its
// slower message on the link it crosses; the exchange bytes match the
// engine's own layouts (sharding.hpp) for every sharding type on an uneven
// split; compression shrinks exactly the exchanged bytes; measured compute
// reproduces itself at the measured rank count; bad inputs are usage errors.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <vector>

#include "core/errors.hpp"
#include "dlrm/simulate.hpp"
#include "dlrm_test_support.hpp"
#include "sim/links.hpp"

namespace paralab::dlrm::test {
namespace {

sim::HardwareProfile two_link_profile(int gpus_per_node) {
  sim::HardwareProfile hw = sim::find_profile("cluster-100g-tcp");
  hw.gpus_per_node = gpus_per_node;
  hw.intra_node = {"fast", 1e-6, 1.0 / 100e9};
  hw.inter_node = {"slow", 30e-6, 1.0 / 5e9};
  hw.comm_library = "alpha-beta";  // exact link arithmetic in these tests
  return hw;
}

DlrmConfig small_config() {
  DlrmConfig c;
  c.bottom_layers = {32, 8};
  c.top_layers = {16, 1};
  c.embedding_dim = 8;
  c.table_rows = {100, 7, 250, 40, 13};
  c.pooling = {1, 2, 3, 1, 2};
  c.validate();
  return c;
}

TEST(DlrmSimulate, EvenAlltoallvIsTheRingAlltoall) {
  DLRM_SINGLE_PROCESS();
  const sim::HardwareProfile hw = two_link_profile(1);  // every pair inter-node
  for (int n : {1, 2, 5, 8}) {
    const double bytes = 3e6;  // a rank's whole send buffer
    AlltoallvBytes b;
    b.send.assign(size_t(n), std::vector<double>(size_t(n), bytes / n));
    EXPECT_NEAR(alltoallv_s(hw, b), sim::alltoall_s(hw.inter_node, n, bytes), 1e-12) << n;
  }
}

TEST(DlrmSimulate, UnevenAlltoallvTakesTheSlowerMessagePerStep) {
  DLRM_SINGLE_PROCESS();
  // Ranks 0, 1 on node 0, rank 2 on node 1.
  const sim::HardwareProfile hw = two_link_profile(2);
  AlltoallvBytes b;
  b.send = {{0, 1000, 2000}, {3000, 0, 4000}, {5000, 6000, 0}};
  const auto& f = hw.intra_node;
  const auto& s = hw.inter_node;
  // Rank 0: step 1 sends 1000 to 1 (intra), receives 5000 from 2 (inter);
  // step 2 sends 2000 to 2 (inter), receives 3000 from 1 (intra).
  const double r0 = std::max(f.time(1000), s.time(5000)) + std::max(s.time(2000), f.time(3000));
  const double r1 = std::max(s.time(4000), f.time(1000)) + std::max(f.time(3000), s.time(6000));
  const double r2 = std::max(s.time(5000), s.time(4000)) + std::max(s.time(6000), s.time(2000));
  EXPECT_NEAR(alltoallv_s(hw, b), std::max({r0, r1, r2}), 1e-15);
  EXPECT_DOUBLE_EQ(b.total(), 21000);
}

TEST(DlrmSimulate, ExchangeBytesMatchTheEngineLayouts) {
  DLRM_SINGLE_PROCESS();
  const DlrmConfig c = small_config();
  for (ShardingType type :
       {ShardingType::table_wise, ShardingType::row_wise, ShardingType::column_wise}) {
    for (int ranks : {1, 2, 3, 4}) {
      PlannerOptions po;
      po.type = type;
      po.data_parallel_max_rows = 10;  // table 1 (7 rows) replicated: no exchange
      const ShardingPlan plan = plan_sharding(c, ranks, po);
      const BatchSplit split = split_batch(31, ranks);  // uneven
      const AlltoallvBytes fwd = forward_exchange_bytes(plan, split);
      const AlltoallvBytes bwd = backward_exchange_bytes(plan, split);
      for (int r = 0; r < ranks; ++r) {
        const ExchangeLayout layout = forward_exchange_layout(plan, split, r);
        for (int p = 0; p < ranks; ++p) {
          EXPECT_DOUBLE_EQ(fwd.send[size_t(r)][size_t(p)],
                           4.0 * double(layout.send_counts[size_t(p)]))
              << sharding_name(type) << " ranks " << ranks << " " << r << "->" << p;
          EXPECT_DOUBLE_EQ(bwd.send[size_t(p)][size_t(r)], fwd.send[size_t(r)][size_t(p)]);
        }
      }
      // Every sample gets every non-replicated table's d floats (row shards: partial sums,
      // one per shard).
      double per_sample = 0;
      for (const Shard& s : plan.shards) per_sample += 4.0 * s.cols();
      EXPECT_NEAR(fwd.total(), 31 * per_sample, 1e-9);
      // Index distribution: one length per sample and shard; the indices of
      // a table go to each of its shards, row shards their share of them.
      double indices = 0;
      for (const Shard& s : plan.shards)
        indices +=
            c.pooling[size_t(s.table)] * double(s.rows()) / double(c.table_rows[size_t(s.table)]);
      EXPECT_NEAR(input_length_bytes(c, plan, split).total(), 4.0 * 31 * plan.shards.size(), 1e-9);
      EXPECT_NEAR(input_index_bytes(c, plan, split).total(), 4.0 * 31 * indices, 1e-9);
      if (type == ShardingType::row_wise) {
        // The shares add up to each table: the pooling of the tables not replicated.
        EXPECT_NEAR(indices, 1 + 3 + 1 + 2, 1e-12);
      }
    }
  }
}

TEST(DlrmSimulate, RatiosDivideEachTablesBlocks) {
  DLRM_SINGLE_PROCESS();
  const DlrmConfig c = small_config();
  const ShardingPlan plan = plan_sharding(c, 3);
  const BatchSplit split = split_batch(31, 3);
  const std::vector<double> ratios = {2, 1, 4, 8, 1.5};
  const AlltoallvBytes raw = forward_exchange_bytes(plan, split);
  const AlltoallvBytes comp = forward_exchange_bytes(plan, split, ratios);
  double expected = 0;
  for (const Shard& s : plan.shards) expected += 31 * 4.0 * s.cols() / ratios[size_t(s.table)];
  EXPECT_NEAR(comp.total(), expected, 1e-9);
  EXPECT_LT(comp.total(), raw.total());
}

TEST(DlrmSimulate, DenseFlopsByHand) {
  DLRM_SINGLE_PROCESS();
  const DlrmConfig c = small_config();  // D 13, bottom 13-32-8, top (8 + 15)-16-1, F 6
  const double forward_per_sample =
      2.0 * (13 * 32 + 32 * 8) + 2.0 * ((8 + 15) * 16 + 16 * 1) + 2.0 * 15 * 8;
  EXPECT_DOUBLE_EQ(dense_flops(c, 10), 3 * 10 * forward_per_sample);
  EXPECT_EQ(dense_gemm_calls(c), 3 * 4 + 2);
  // Parameters of both MLPs.
  const ShardingPlan plan = plan_sharding(c, 2);
  EXPECT_DOUBLE_EQ(allreduce_floats(c, plan), 13 * 32 + 32 + 32 * 8 + 8 + 23 * 16 + 16 + 16 + 1);
}

StepModelInputs inputs_for(const DlrmConfig& c, const sim::HardwareProfile& hw) {
  StepModelInputs in;
  in.config = c;
  in.batch = 1001;
  in.hardware = hw;
  return in;
}

TEST(DlrmSimulate, CompressionTradesLinkBytesForCodecTime) {
  DLRM_SINGLE_PROCESS();
  const sim::HardwareProfile hw = two_link_profile(2);
  const StepModelInputs in = inputs_for(small_config(), hw);
  const auto T = size_t(in.config.tables());

  // Ratio 1, free codec: only the byte-count alltoall and the decode
  // agreement (an i32 all-reduce) are added, per direction.
  CompressionModel none{std::vector<double>(T, 1.0), std::vector<double>(T, 1.0), 0.0};
  for (int n : {1, 3, 4, 7}) {
    const SimulatedStep s = simulate_step(in, none, n);
    const double framing =
        sim::alltoall_s(hw.inter_node, n, 8.0 * n) + sim::ring_allreduce_s(hw.inter_node, n, 4);
    EXPECT_NEAR(s.a2a_compressed_s(), s.a2a_s() + 2 * framing, 1e-12) << n;
    EXPECT_DOUBLE_EQ(s.raw_bytes, s.compressed_bytes);
    EXPECT_GE(s.speedup(), n == 1 ? 1.0 : 0.0);
    EXPECT_LE(s.speedup(), 1.0);
  }
  // One rank moves nothing over a link.
  const SimulatedStep one = simulate_step(in, none, 1);
  EXPECT_DOUBLE_EQ(one.step_s(), one.phase_sum_s());  // one rank: the phases in a row
  EXPECT_EQ(one.a2a_s(), 0);
  EXPECT_EQ(one.allreduce_s, 0);
  EXPECT_EQ(one.input_s, 0);

  // Ratio 8 at a codec rate far above the link, a batch large enough for
  // bandwidth to dominate the latency: the exchange gets faster.
  StepModelInputs big = in;
  big.batch = 200'000;
  CompressionModel good{std::vector<double>(T, 8.0), std::vector<double>(T, 8.0), 1.0 / 200e9};
  const SimulatedStep s = simulate_step(big, good, 4);
  EXPECT_NEAR(s.compressed_bytes * 8, s.raw_bytes, 1e-6 * s.raw_bytes);
  EXPECT_LT(s.a2a_compressed_s(), s.a2a_s());
  EXPECT_GT(s.speedup(), 1.0);
  // The played step never exceeds the phases at their slowest ranks.
  EXPECT_LE(s.step_s(), s.phase_sum_s() * (1 + 1e-12));
  EXPECT_LE(s.step_compressed_s(), s.phase_sum_compressed_s() * (1 + 1e-12));
  // The codec time is the slowest rank's raw bytes (sent and received, both
  // directions) at the codec rate; each rank handles at least its share.
  EXPECT_GE(s.codec_s, 2 * s.raw_bytes / 4 / 200e9 * (1 - 1e-12));
  // A slow codec makes it lose.
  CompressionModel slow = good;
  slow.codec_s_per_byte = 1.0 / 0.1e9;
  EXPECT_LT(simulate_step(big, slow, 4).speedup(), 1.0);
}

TEST(DlrmSimulate, RowwiseAdagradSwapsSquareSumsBetweenColumnShards) {
  DLRM_SINGLE_PROCESS();
  const sim::HardwareProfile hw = two_link_profile(2);
  StepModelInputs in = inputs_for(small_config(), hw);
  in.planner.type = ShardingType::column_wise;
  in.planner.column_shards = 2;
  const CompressionModel plain;
  const SimulatedStep sgd = simulate_step(in, plain, 4);
  EXPECT_EQ(sgd.optimizer_s, 0);  // SGD needs no exchange
  in.optimizer = EmbeddingOptimizer::rowwise_adagrad;
  const SimulatedStep adagrad = simulate_step(in, plain, 4);
  EXPECT_GT(adagrad.optimizer_s, 0);
  EXPECT_NEAR(adagrad.step_s() - adagrad.optimizer_s, sgd.step_s(), 1e-15);
  // Every shard sends one float per touched row to each rank holding its
  // table (its own included): 2 shards x 2 holders per table; a table of R
  // rows and 1001 x pooling uniform draws touches R (1 - (1 - 1/R)^draws).
  const ShardingPlan plan = plan_sharding(in.config, 4, in.planner);
  double expected = 0;
  for (size_t t = 0; t < 5; ++t) {
    ASSERT_EQ(plan.tables[t].shards.size(), 2u);
    const double rows = double(in.config.table_rows[t]);
    expected += 2 * 2 * 4 * rows * (1 - std::pow(1 - 1 / rows, 1001.0 * in.config.pooling[t]));
  }
  EXPECT_NEAR(square_sum_bytes(in.config, plan, 1001).total(), expected, 1e-9 * expected);
}

TEST(DlrmSimulate, MeasuredComputeReproducesItselfAndScales) {
  DLRM_SINGLE_PROCESS();
  StepModelInputs in = inputs_for(small_config(), two_link_profile(8));
  const int measured_ranks = 2;
  const ShardingPlan plan = plan_sharding(in.config, measured_ranks, in.planner);
  in.compute = ComputeSource::measured;
  in.measured.ranks = measured_ranks;
  in.measured.batch = in.batch;
  in.measured.dense_s = 0.004;
  in.measured.embedding_s = 0.002;
  in.measured.max_local_samples = 501;  // 1001 over 2
  in.measured.max_embedding_bytes = max_embedding_bytes(in.config, plan, double(in.batch));
  const CompressionModel plain;
  const SimulatedStep at2 = simulate_step(in, plain, measured_ranks);
  EXPECT_NEAR(at2.dense_s, 0.004, 1e-15);
  EXPECT_NEAR(at2.embedding_s, 0.002, 1e-15);
  // Four ranks: 251 local samples, the dense part scales with them.
  const SimulatedStep at4 = simulate_step(in, plain, 4);
  EXPECT_NEAR(at4.dense_s, 0.004 * 251 / 501, 1e-15);
  EXPECT_LE(at4.embedding_s, at2.embedding_s);
  // The profile's compute grows with the local samples too.
  in.compute = ComputeSource::profile;
  EXPECT_GT(simulate_step(in, plain, 2).dense_s, simulate_step(in, plain, 4).dense_s);
}

TEST(DlrmSimulate, BadInputsAreUsageErrors) {
  DLRM_SINGLE_PROCESS();
  const StepModelInputs in = inputs_for(small_config(), two_link_profile(8));
  const CompressionModel plain;
  EXPECT_THROW(simulate_step(in, plain, 1002), UsageError);  // more ranks than samples
  EXPECT_THROW(simulate_step(in, plain, 0), UsageError);
  CompressionModel wrong{{2.0, 2.0}, {}, 0.0};  // 2 ratios for 5 tables
  EXPECT_THROW(simulate_step(in, wrong, 2), UsageError);
  CompressionModel negative{std::vector<double>(5, -1.0), {}, 0.0};
  EXPECT_THROW(simulate_step(in, negative, 2), UsageError);
  EXPECT_THROW(parse_compute_source("guess"), UsageError);
}

TEST(DlrmSimulate, ClusterProfilesExist) {
  DLRM_SINGLE_PROCESS();
  const sim::HardwareProfile tcp = sim::find_profile("cluster-100g-tcp");
  const sim::HardwareProfile rdma = sim::find_profile("cluster-400g-rdma");
  EXPECT_EQ(tcp.gpus_per_node, 8);
  EXPECT_EQ(rdma.gpus_per_node, 8);
  // Below their line rates (12.5 and 50 GB/s), RDMA faster with less latency.
  EXPECT_LT(tcp.inter_node.bandwidth_bytes_per_s(), 12.5e9);
  EXPECT_LT(rdma.inter_node.bandwidth_bytes_per_s(), 50e9);
  EXPECT_GT(rdma.inter_node.bandwidth_bytes_per_s(), tcp.inter_node.bandwidth_bytes_per_s());
  EXPECT_LT(rdma.inter_node.alpha_s, tcp.inter_node.alpha_s);
  EXPECT_GE(tcp.inter_node.alpha_s, 20e-6);
  EXPECT_LE(tcp.inter_node.alpha_s, 50e-6);
}

}  // namespace
}  // namespace paralab::dlrm::test
