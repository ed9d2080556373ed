// The simulator's cost mechanisms on constructed cases: NCCL's protocol
// model for collectives, the GEMM roofline (decode streams weights), the
// attention occupancy model, contention, pass-Q's partial-output type, the
// per-step report and the fixed per-layer and per-pass costs.
#include <gtest/gtest.h>

#include <cmath>

#include <nlohmann/json.hpp>

#include "core/errors.hpp"
#include "ring/choose.hpp"
#include "ring/schedule.hpp"
#include "ring/simulate.hpp"
#include "sim/collectives.hpp"
#include "sim/compute.hpp"
#include "sim/hardware.hpp"
#include "sim/transformer.hpp"

namespace paralab::sim {
namespace {

constexpr double kUs = 1e-6;

TEST(Collectives, NcclSmallAllReduceIsLatencyBoundOnEveryProfile) {
  for (const HardwareProfile& hw : builtin_profiles())
    for (GroupShape g : {GroupShape{8, 1}, GroupShape{16, 2}, GroupShape{4, 4}}) {
      const double empty = collective_time(hw, Collective::all_reduce, g, 0).seconds;
      const CollectiveTime small = collective_time(hw, Collective::all_reduce, g, 4096);
      EXPECT_GT(empty, 5 * kUs) << hw.name;            // base latency alone
      EXPECT_LT(small.seconds, 2 * empty) << hw.name;  // 4 KB adds less than it
      EXPECT_EQ(small.protocol, "LL") << hw.name << " " << g.ranks;
    }
}

TEST(Collectives, NcclLatencyIsBaseLatencyPlusHops) {
  const HardwareProfile hw = find_profile("h100-gtt");
  // 8 GPUs on NVLink, ring LL: 6.6 us + 14 hops x 0.6 us (tree LL: 6.8 + 2 x 7 x 0.6).
  const CollectiveTime ar = collective_time(hw, Collective::all_reduce, {8, 1}, 0);
  EXPECT_NEAR(ar.seconds, 15.0 * kUs, 1e-12);
  EXPECT_EQ(ar.algorithm, "ring");
  // A small send-recv between nodes: LL's base 6.6 us, one network hop 2.7 us,
  // posting it 1 us.
  EXPECT_NEAR(collective_time(hw, Collective::send_recv, {2, 2}, 0).seconds, 10.3 * kUs, 1e-12);
  // A large one runs Simple at the link's bandwidth: 8.4 + 14 + 3 us.
  const double mb = 1 << 20;
  const CollectiveTime big = collective_time(hw, Collective::send_recv, {2, 2}, mb);
  EXPECT_EQ(big.protocol, "Simple");
  EXPECT_NEAR(big.seconds, 25.4 * kUs + mb * hw.inter_node.beta_s_per_byte, 1e-12);
}

TEST(Collectives, NcclLargeMessagesRunAtTheLinksBandwidth) {
  const HardwareProfile hw = find_profile("h100-gtt");
  const double gb = 1e9;
  const CollectiveTime ar = collective_time(hw, Collective::all_reduce, {8, 1}, gb);
  // Ring Simple: 2 (n-1) / n of the buffer over NVLink.
  EXPECT_NEAR(ar.seconds, 2.0 * 7 / 8 * gb * hw.intra_node.beta_s_per_byte, 0.02 * ar.seconds);
  EXPECT_EQ(ar.protocol, "Simple");
  // An all-to-all across 4 nodes sends 3/4 of its buffer over the network.
  const double a2a = collective_time(hw, Collective::all_to_all, {4, 4}, gb).seconds;
  EXPECT_NEAR(a2a, 0.75 * gb * hw.inter_node.beta_s_per_byte, 0.01 * a2a);
}

TEST(Collectives, AlphaBetaProfilesKeepTheRingFormulas) {
  HardwareProfile hw = find_profile("h100-gtt");
  hw.comm_library = "alpha-beta";
  const double bytes = 3e6;
  EXPECT_DOUBLE_EQ(collective_time(hw, Collective::all_reduce, {8, 1}, bytes).seconds,
                   ring_allreduce_s(hw.intra_node, 8, bytes));
  EXPECT_DOUBLE_EQ(collective_time(hw, Collective::all_gather, {4, 2}, bytes).seconds,
                   ring_allgather_s(hw.inter_node, 4, bytes));
  EXPECT_DOUBLE_EQ(collective_time(hw, Collective::send_recv, {2, 1}, bytes).seconds,
                   sendrecv_s(hw.intra_node, bytes));
  EXPECT_EQ(collective_time(hw, Collective::all_to_all, {1, 1}, bytes).seconds, 0);
}

TEST(Collectives, RejectsImpossibleGroups) {
  const HardwareProfile hw = find_profile("h100-gtt");
  EXPECT_THROW(collective_time(hw, Collective::all_reduce, {0, 1}, 1), std::invalid_argument);
  EXPECT_THROW(collective_time(hw, Collective::all_reduce, {2, 3}, 1), std::invalid_argument);
  EXPECT_THROW(collective_time(hw, Collective::send_recv, {3, 1}, 1), std::invalid_argument);
  EXPECT_THROW(collective_time(hw, Collective::all_reduce, {2, 1}, -1), std::invalid_argument);
}

TEST(Collectives, GroupsSpanTheNodesOfTheirGpus) {
  const HardwareProfile hw = find_profile("h100-gtt");  // 8 GPUs a node
  EXPECT_EQ(strided_group(hw, 8).nodes, 1);
  EXPECT_EQ(strided_group(hw, 9).nodes, 2);
  EXPECT_EQ(strided_group(hw, 4, 8).nodes, 4);    // CP4 over TP8 groups: one GPU a node
  EXPECT_EQ(strided_group(hw, 3, 3).nodes, 1);    // GPUs 0, 3, 6
  EXPECT_EQ(strided_group(hw, 2, 100).nodes, 2);  // never more nodes than ranks
  EXPECT_EQ(pair_group(hw, 7, 8).nodes, 2);
  EXPECT_EQ(pair_group(hw, 8, 15).nodes, 1);
  EXPECT_THROW(strided_group(hw, 0), std::invalid_argument);
}

TEST(Collectives, AlltoallvWithEvenSizesIsTheUniformAllToAll) {
  for (const char* name : {"h100-gtt", "cluster-100g-tcp"}) {
    HardwareProfile hw = find_profile(name);
    for (const char* library : {"nccl", "alpha-beta"}) {
      hw.comm_library = library;
      for (double per_peer : {1e3, 1e6}) {
        const int n = 16;  // two nodes of 8
        std::vector<std::vector<double>> bytes(n, std::vector<double>(n, per_peer));
        std::vector<int> gpus(n);
        for (int i = 0; i < n; ++i) gpus[i] = i;
        EXPECT_NEAR(alltoallv_time(hw, bytes, gpus),
                    collective_time(hw, Collective::all_to_all, {n, 2}, per_peer * n).seconds,
                    1e-12)
            << name << " " << library << " " << per_peer;
      }
    }
  }
}

TEST(ComputeModel, ThinGemmsStreamTheirWeights) {
  const HardwareProfile hw = find_profile("h100-gtt");
  const TransformerShape m = llama3_405b();
  // One token (decode): every GEMM is its weight bytes over HBM bandwidth.
  const double weight_bytes = linear_flops_per_layer(m, 1, 8) / 2 * 2;  // params x 2 bytes
  const LinearCost one = linear_layer_cost(m, 1, 8, hw, Precision::bf16, 2);
  EXPECT_NEAR(one.gemm_s, 4 * hw.kernel_overhead_s + weight_bytes / hw.memory_bytes_per_s,
              0.001 * one.gemm_s);
  HardwareProfile fast = hw;
  fast.memory_bytes_per_s *= 2;
  const double streamed = one.gemm_s - 4 * hw.kernel_overhead_s;
  EXPECT_NEAR(
      linear_layer_cost(m, 1, 8, fast, Precision::bf16, 2).gemm_s - 4 * hw.kernel_overhead_s,
      streamed / 2, 0.001 * streamed);
  // Many tokens: compute-bound, FLOPs over the GEMM rate.
  const LinearCost many = linear_layer_cost(m, 16384, 8, hw, Precision::bf16, 2);
  EXPECT_NEAR(many.gemm_s,
              linear_flops_per_layer(m, 16384, 8) / (hw.bf16_peak_flops * hw.gemm_efficiency),
              0.001 * many.gemm_s);
}

TEST(ComputeModel, ShortAttentionCallsLeaveTileRowsEmpty) {
  const HardwareProfile hw = find_profile("h100-gtt");
  const ComputeModel model = compute_model(hw, Precision::bf16);
  // Long calls fill the GPU but for the last wave: 64 tiles x 8 heads in 4 waves of 132.
  EXPECT_NEAR(model.occupancy({8192, 8, 8, 8192}), 512.0 / (4 * 132), 1e-12);
  // 16 grouped query heads of one KV head pack into the rows: 160 rows x 16 =
  // 20 full tiles, split along the keys to fill the SMs.
  const double packed = model.occupancy({160, 16, 1, 32000});
  EXPECT_GT(packed, 0.85);
  // One query of one head fills 1 row of 128.
  EXPECT_LT(model.occupancy({1, 1, 1, 32000}), 1.0 / 128 + 1e-12);
  // Without an SM count (CPU profiles) there is no occupancy model.
  HardwareProfile cpu = hw;
  cpu.sm_count = 0;
  EXPECT_EQ(compute_model(cpu, Precision::bf16).occupancy({1, 1, 1, 32000}), 1);
}

TEST(ComputeModel, KeySplitsFollowFlashAttentionsHeuristic) {
  ComputeModel model;
  model.sm_count = 100;
  model.tile_rows = 128;
  // 10 blocks on 100 SMs: 10 splits fill one wave exactly.
  EXPECT_EQ(model.kv_splits(10, 1e6), 9);  // 90% >= 85% of 100%: the fewest that reach it
  EXPECT_EQ(model.kv_splits(10, 256), 2);  // only two key tiles to split
  EXPECT_DOUBLE_EQ(model.wave_efficiency(150), 0.75);
}

ring::RingProblem problem(int64_t T, int64_t P) {
  ring::RingProblem p;
  p.T = T;
  p.P = P;
  p.H = 16;
  p.H_kv = 1;
  p.D = 128;
  p.causal = true;
  return p;
}

HardwareProfile exact_gpu(double link_bytes_per_s) {
  HardwareProfile hw = find_profile("h100-gtt");
  hw.comm_library = "alpha-beta";
  hw.sm_count = 0;
  hw.kernel_overhead_s = 0;
  hw.memory_bytes_per_s = 1e300;
  hw.gpus_per_node = 1;
  hw.inter_node = {"test", 0, 1 / link_bytes_per_s};
  hw.comm_compute_slowdown = 0;
  return hw;
}

TEST(RingCosts, TransfersSlowTheAttentionBesideThem) {
  const ring::RingProblem p = problem(8192, 0);
  const ring::RingSchedule s = ring::plan_ring(ring::Algorithm::pass_kv, p, ring::layout_of(p, 4));
  HardwareProfile hw = exact_gpu(1e11);
  const ring::SimulatedRing free = ring::simulate_ring(s, {hw, Precision::bf16, 2, 1, 4});
  hw.comm_compute_slowdown = 0.1;
  const ring::SimulatedRing shared = ring::simulate_ring(s, {hw, Precision::bf16, 2, 1, 4});
  for (int r = 0; r < 4; ++r)
    for (size_t k = 0; k < 4; ++k) {
      const double a = free.ranks[r].step_attention_s[k];
      const double t = free.ranks[r].step_transfer_s[k];
      EXPECT_NEAR(shared.ranks[r].step_attention_s[k], a + std::min(a, t) * 0.1 / 0.9, 1e-15);
    }
  EXPECT_GT(shared.latency_s, free.latency_s);
}

TEST(RingCosts, PerStepReportAddsUpToTheTotals) {
  const ring::RingProblem p = problem(4096, 1000);
  for (ring::Algorithm algo :
       {ring::Algorithm::pass_kv, ring::Algorithm::pass_q, ring::Algorithm::all_gather}) {
    const ring::RingSchedule s = ring::plan_ring(algo, p, ring::layout_of(p, 3));
    const ring::SimulatedRing sim = ring::simulate_ring(s, {exact_gpu(1e9), Precision::bf16, 2});
    for (const ring::SimulatedRank& r : sim.ranks) {
      const size_t steps = algo == ring::Algorithm::all_gather ? 1 : 3;
      ASSERT_EQ(r.step_attention_s.size(), steps);
      ASSERT_EQ(r.step_wait_s.size(), steps);
      double attention = 0, wait = 0;
      for (size_t k = 0; k < steps; ++k) attention += r.step_attention_s[k];
      for (size_t k = 0; k < steps; ++k) wait += r.step_wait_s[k];
      EXPECT_NEAR(attention, r.attention_s, 1e-15);
      EXPECT_NEAR(wait, r.comm_wait_s, 1e-15);
      if (algo != ring::Algorithm::all_gather) {
        EXPECT_GT(r.step_transfer_s[0], 0);
        EXPECT_EQ(r.step_transfer_s[steps - 1], 0);  // the last step forwards nothing
      }
    }
  }
}

TEST(RingCosts, PassQPartialsInBf16HalveTheirAllToAll) {
  const ring::RingProblem p = problem(4096, 0);
  const ring::RingSchedule s = ring::plan_ring(ring::Algorithm::pass_q, p, ring::layout_of(p, 4));
  const HardwareProfile hw = exact_gpu(1e6);  // the all-to-all dominates
  const double f32 = ring::simulate_ring(s, {hw, Precision::bf16, 2, 1, 4}).ranks[0].all2all_s;
  const double bf16 = ring::simulate_ring(s, {hw, Precision::bf16, 2, 1, 2}).ranks[0].all2all_s;
  // A row is D values and an FP32 LSE: (128 x 2 + 4) / (128 x 4 + 4) of the bytes.
  EXPECT_NEAR(bf16 / f32, 260.0 / 516.0, 1e-9);
  // The rule counts the same bytes.
  ring::ChoiceInputs in{4, 4096, 0, 16, 1, 128};
  in.flops_per_s = 1e14;
  in.bytes_per_s = 1e6;
  const double q32 = ring::choose_algorithm(in).exposed_pass_q_s;
  in.partial_element_bytes = 2;
  EXPECT_LT(ring::choose_algorithm(in).exposed_pass_q_s, q32);
}

TEST(Transformer, PerLayerAndPerPassCostsAreCharged) {
  const TransformerShape m = llama3_405b();
  const HardwareProfile hw = find_profile("h100-gtt");
  // Seven elementwise kernels a layer: at one token, seven kernel overheads and little else.
  const double one = elementwise_layer_s(m, 1, 8, hw, 2);
  EXPECT_GE(one, 7 * hw.kernel_overhead_s);
  EXPECT_LT(one, 7.1 * hw.kernel_overhead_s);
  // The pass's LM head streams its vocab x d_model / TP weights once per step.
  const double head_bytes = double(m.vocab) * m.d_model / 8 * 2;
  EXPECT_GT(per_pass_s(m, 1, 1, 8, hw, Precision::bf16, 2), head_bytes / hw.memory_bytes_per_s);
  const ForwardCost cost = forward_cost(m, 1, 1, 8, 0, 0, hw, Precision::bf16, 2);
  EXPECT_NEAR(cost.other_s, m.layers * one + per_pass_s(m, 1, 1, 8, hw, Precision::bf16, 2), 1e-15);
}

TEST(HardwareProfile, NewFieldsRoundTripAndAreChecked) {
  HardwareProfile hw = find_profile("h100-gti");
  const HardwareProfile back = profile_from_json(profile_to_json(hw));
  EXPECT_EQ(back.comm_library, "nccl");
  EXPECT_EQ(back.sm_count, 132);
  EXPECT_EQ(back.attention_tile_rows, 128);
  EXPECT_DOUBLE_EQ(back.comm_compute_slowdown, hw.comm_compute_slowdown);
  auto with = [&](const char* key, nlohmann::json value) {
    nlohmann::json j = profile_to_json(hw);
    j[key] = value;
    return j;
  };
  EXPECT_THROW(profile_from_json(with("comm_library", "mpi")), UsageError);
  EXPECT_THROW(profile_from_json(with("comm_compute_slowdown", 1.0)), UsageError);
  EXPECT_THROW(profile_from_json(with("sm_count", -1)), UsageError);
  EXPECT_THROW(profile_from_json(with("attention_tile_rows", 0)), UsageError);
  // Profiles written before these fields existed read as before: alpha-beta, no GPU shape.
  nlohmann::json old = profile_to_json(hw);
  for (const char* key :
       {"comm_library", "sm_count", "attention_tile_rows", "comm_compute_slowdown"})
    old.erase(key);
  const HardwareProfile legacy = profile_from_json(old);
  EXPECT_EQ(legacy.comm_library, "alpha-beta");
  EXPECT_EQ(legacy.sm_count, 0);
  EXPECT_EQ(legacy.comm_compute_slowdown, 0);
}

}  // namespace
}  // namespace paralab::sim
