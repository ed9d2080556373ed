// The ring schedules (lib/ring/schedule), their simulation (lib/ring/simulate)
// and the pass-KV / pass-Q rule (lib/ring/choose): no MPI needed.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <utility>

#include "core/errors.hpp"
#include "kernels/attention.hpp"
#include "ring/choose.hpp"
#include "ring/schedule.hpp"
#include "ring/simulate.hpp"
#include "sim/hardware.hpp"
#include "sim/transformer.hpp"

namespace paralab::ring {
namespace {

RingProblem problem(int64_t T, int64_t P, Sharding sharding = Sharding::load_balanced) {
  RingProblem p;
  p.T = T;
  p.P = P;
  p.H = 4;
  p.H_kv = 2;
  p.D = 16;
  p.sharding = sharding;
  return p;
}

double whole_flops(const RingProblem& p) {
  kernels::AttentionArgs a;
  a.shape = {int(p.T), int(p.P + p.T), p.H, p.H_kv, p.D};
  a.mask.causal = p.causal;
  a.mask.q_offset = p.P;
  a.mask.doc_starts = p.doc_starts;
  return kernels::attention_forward_flops(a);
}

double total_flops(const RingSchedule& s) {
  double sum = 0;
  for (int r = 0; r < s.ranks; ++r) sum += s.flops(r);
  return sum;
}

TEST(RingSchedule, EveryAlgorithmCoversTheWholeAttentionOnce) {
  for (int N : {1, 2, 3, 4, 7})
    for (int64_t P : {0, 23})
      for (auto algo : {Algorithm::pass_kv, Algorithm::pass_q, Algorithm::all_gather}) {
        RingProblem p = problem(101, P);
        p.doc_starts = {0, 40, 40, 90};
        const RingSchedule s = plan_ring(algo, p, layout_of(p, N));
        EXPECT_DOUBLE_EQ(total_flops(s), whole_flops(p)) << N << " ranks, P " << P;
        // No (query piece, key piece) pair is computed twice.
        std::set<std::pair<int64_t, int64_t>> seen;
        for (const auto& steps : s.steps)
          for (const auto& step : steps)
            for (const auto& call : step.calls)
              EXPECT_TRUE(seen.insert({call.q.start, call.kv.start}).second);
        const size_t expected_steps = algo == Algorithm::all_gather ? 1 : size_t(N);
        for (const auto& steps : s.steps) EXPECT_EQ(steps.size(), expected_steps);
      }
}

TEST(RingSchedule, RingStepsForwardAllButTheLastAndHoldTheRightBlock) {
  const RingProblem p = problem(64, 0);
  const RingSchedule kv = plan_ring(Algorithm::pass_kv, p, layout_of(p, 4));
  for (int r = 0; r < 4; ++r)
    for (int k = 0; k < 4; ++k) {
      EXPECT_EQ(kv.steps[r][k].block_owner, (r - k + 4) % 4);
      EXPECT_EQ(kv.steps[r][k].forwards, k < 3);
      for (const auto& call : kv.steps[r][k].calls) {
        EXPECT_EQ(call.q_owner, r);
        EXPECT_EQ(call.kv_owner, (r - k + 4) % 4);
      }
    }
  const RingSchedule q = plan_ring(Algorithm::pass_q, p, layout_of(p, 4));
  EXPECT_EQ(q.block_elements, size_t(16 * 4 * 16));       // 16 query tokens x H x D
  EXPECT_EQ(q.all2all_slot_floats, size_t(16 * 4 * 17));  // O and LSE
  EXPECT_EQ(kv.block_elements, size_t(2 * 16 * 2 * 16));  // K and V of 16 tokens
}

TEST(RingSchedule, LoadBalancedShardingEqualisesCausalWork) {
  const RingProblem balanced = problem(4096, 0, Sharding::load_balanced);
  const RingProblem contiguous = problem(4096, 0, Sharding::contiguous);
  const RingSchedule b = plan_ring(Algorithm::pass_kv, balanced, layout_of(balanced, 4));
  const RingSchedule c = plan_ring(Algorithm::pass_kv, contiguous, layout_of(contiguous, 4));
  auto spread = [](const RingSchedule& s) {
    double lo = 1e300, hi = 0;
    for (int r = 0; r < s.ranks; ++r) lo = std::min(lo, s.flops(r)), hi = std::max(hi, s.flops(r));
    return hi / lo;
  };
  EXPECT_LT(spread(b), 1.001);
  EXPECT_GT(spread(c), 6.0);  // the last rank sees 7x the first's keys
}

sim::HardwareProfile test_hardware(double bandwidth) {
  sim::HardwareProfile hw = sim::find_profile("h100-gtt");
  hw.bf16_peak_flops = 1e12;
  hw.attention_efficiency = 1;
  hw.memory_bytes_per_s = 1e300;
  hw.kernel_overhead_s = 0;
  hw.gpus_per_node = 1;  // every ring link is the inter-node one
  hw.inter_node = {"test", 0, 1 / bandwidth};
  hw.comm_library = "alpha-beta";  // exact link arithmetic, no protocol latencies
  hw.sm_count = 0;                 // no occupancy model
  hw.comm_compute_slowdown = 0;
  return hw;
}

TEST(RingSimulate, FreeLinksLeaveOnlyTheSlowestRanksCompute) {
  const RingProblem p = problem(4096, 0, Sharding::contiguous);
  const RingSchedule s = plan_ring(Algorithm::pass_kv, p, layout_of(p, 4));
  const SimulatedRing sim = simulate_ring(s, {test_hardware(1e300), sim::Precision::bf16, 2, 1});
  double slowest = 0;
  for (int r = 0; r < 4; ++r) slowest = std::max(slowest, s.flops(r) / 1e12);
  EXPECT_NEAR(sim.latency_s, slowest, 1e-12);
  EXPECT_NEAR(sim.ranks[3].attention_s, s.flops(3) / 1e12, 1e-12);
  // Rank 0 (the lightest) waits for the others' blocks.
  EXPECT_GT(sim.ranks[0].comm_wait_s, 0);
}

TEST(RingSimulate, SlowLinksExposeTheRingTransfers) {
  const RingProblem p = problem(4096, 0);
  const RingSchedule s = plan_ring(Algorithm::pass_kv, p, layout_of(p, 4));
  const double bandwidth = 1e6;  // far too slow to hide
  const SimulatedRing sim =
      simulate_ring(s, {test_hardware(bandwidth), sim::Precision::bf16, 2, 1});
  const double transfer = double(s.block_elements) * 2 / bandwidth;
  EXPECT_GE(sim.latency_s, 3 * transfer);
  EXPECT_LT(sim.latency_s, 3 * transfer + total_flops(s) / 1e12);
  EXPECT_GT(sim.ranks[1].comm_wait_s, 2.5 * transfer);
}

TEST(RingSimulate, PassQPaysItsAllToAllAndAllGatherItsCollective) {
  const RingProblem p = problem(1024, 0);
  const auto hw = test_hardware(1e9);
  const SimulatedRing q = simulate_ring(plan_ring(Algorithm::pass_q, p, layout_of(p, 4)),
                                        {hw, sim::Precision::bf16, 2, 1});
  const double slot_bytes = 256.0 * 4 * 17 * 4;  // 256 tokens x H x (D + 1) floats
  for (const auto& r : q.ranks) EXPECT_GE(r.all2all_s, 3 * slot_bytes / 1e9 - 1e-12);
  const SimulatedRing g = simulate_ring(plan_ring(Algorithm::all_gather, p, layout_of(p, 4)),
                                        {hw, sim::Precision::bf16, 2, 1});
  const double block_bytes = 2.0 * 256 * 2 * 16 * 2;
  for (const auto& r : g.ranks) EXPECT_NEAR(r.comm_wait_s, 3 * block_bytes / 1e9, 1e-12);
}

// The rule's cases, with N_H 128, N_KV 8, D 128, e 2, C 4e14, BW 4e10:
// T_min = N C N_KV e / (2 N_H BW) = 625 N; miss threshold 2 * 8 / 128 = 0.125.
ChoiceInputs rule_case(int N, double T, double P) {
  return {N, T, P, 128, 8, 128, 2, 4e14, 4e10};
}

TEST(RingChoose, FollowsThePapersRuleAndItsRefinement) {
  const AlgorithmChoice long_prompt = choose_algorithm(rule_case(4, 4096, 0));
  EXPECT_EQ(long_prompt.algorithm, Algorithm::pass_kv);
  EXPECT_DOUBLE_EQ(long_prompt.t_threshold, 2500);
  EXPECT_NE(long_prompt.reason.find("hides"), std::string::npos) << long_prompt.reason;

  const AlgorithmChoice high_miss = choose_algorithm(rule_case(4, 1024, 1024));
  EXPECT_EQ(high_miss.algorithm, Algorithm::pass_kv);
  EXPECT_NE(high_miss.reason.find("miss rate"), std::string::npos) << high_miss.reason;

  // 1% miss rate, short prompt: K/V messages 12x Q's and exposed; pass-Q.
  const AlgorithmChoice low_miss = choose_algorithm(rule_case(4, 1024, 100000));
  EXPECT_EQ(low_miss.algorithm, Algorithm::pass_q);
  EXPECT_LT(low_miss.exposed_pass_q_s, low_miss.exposed_pass_kv_s);

  // Below both thresholds, but pass-KV exposes less than pass-Q's All2All.
  const AlgorithmChoice refined = choose_algorithm(rule_case(2, 1024, 9000));
  EXPECT_LT(refined.miss_rate, refined.miss_threshold);
  EXPECT_LT(1024, refined.t_threshold);
  EXPECT_EQ(refined.algorithm, Algorithm::pass_kv);
  EXPECT_NE(refined.reason.find("All2All"), std::string::npos) << refined.reason;

  EXPECT_THROW(choose_algorithm(rule_case(2, 0, 10)), std::invalid_argument);
}

}  // namespace
}  // namespace paralab::ring

namespace paralab::sim {
namespace {

TEST(Transformer, Llama405bLinearLayersAreTwoFlopsPerParameter) {
  const TransformerShape m = llama3_405b();
  // 126 layers of QKV, output and SwiGLU weights: 401.6e9 of the model's 405e9
  // parameters (the rest are the embedding and LM head).
  EXPECT_NEAR(linear_flops_per_layer(m, 1, 1) * m.layers / 2, 401.6e9, 0.1e9);
  EXPECT_DOUBLE_EQ(linear_flops_per_layer(m, 1000, 8), linear_flops_per_layer(m, 1000, 1) / 8);
  EXPECT_EQ(heads_per_tp_rank(m, 8), 16);
  EXPECT_EQ(kv_heads_per_tp_rank(m, 8), 1);
  EXPECT_EQ(kv_heads_per_tp_rank(m, 16), 1);  // replicated
  EXPECT_THROW(heads_per_tp_rank(m, 3), UsageError);
}

TEST(Transformer, ForwardCostAddsLayersAndCountsFlops) {
  const TransformerShape m = llama3_405b();
  const HardwareProfile hw = find_profile("h100-gtt");
  const ForwardCost one = forward_cost(m, 8192, 1, 8, 0.01, 1e12, hw, Precision::bf16, 2);
  EXPECT_DOUBLE_EQ(one.attention_s, 126 * 0.01);
  // Every layer's attention and linear layers, and the LM head for the one next token.
  EXPECT_DOUBLE_EQ(one.flops, 126 * (1e12 + linear_flops_per_layer(m, 8192, 1)) +
                                  2.0 * double(m.d_model) * double(m.vocab));
  // Linear work splits over CP ranks; the attention time is the caller's.
  const ForwardCost two = forward_cost(m, 8192, 2, 8, 0.01, 1e12, hw, Precision::bf16, 2);
  EXPECT_LT(two.linear_s, 0.51 * one.linear_s);
  EXPECT_GT(one.utilization(hw, Precision::bf16, 8), 0);
}

}  // namespace
}  // namespace paralab::sim
