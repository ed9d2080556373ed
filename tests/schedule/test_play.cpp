// The schedule player's arithmetic on small hand-made programs, on a profile
// whose costs are round numbers: every expected time is worked out by hand
// in the comments.
#include <gtest/gtest.h>

#include "schedule/play.hpp"
#include "schedule/program.hpp"
#include "sim/hardware.hpp"

namespace paralab::schedule {
namespace {

// 1 GB/s memory, 1 TFLOP/s GEMMs, no kernel overhead; links: 1 us + 1 ns/byte
// inside a node of 2 GPUs, 10 us + 10 ns/byte between nodes.
sim::HardwareProfile round_profile() {
  sim::HardwareProfile hw;
  hw.name = "round";
  hw.bf16_peak_flops = hw.fp32_peak_flops = 1e12;
  hw.attention_efficiency = hw.gemm_efficiency = 1;
  hw.memory_bytes_per_s = 1e9;
  hw.kernel_overhead_s = 0;
  hw.gpus_per_node = 2;
  hw.intra_node = {"intra", 1e-6, 1e-9};
  hw.inter_node = {"inter", 10e-6, 10e-9};
  return hw;
}

ComputeCost fixed(double seconds) {
  return fixed_cost(seconds);
}

TEST(Play, ComputeOperationsArePricedByTheirWork) {
  Program p(1);
  const OpId gemm = p.compute(0, "gemm", gemm_cost(2e9, 1e3));
  const OpId copy = p.compute(0, "copy", memory_cost(3e6));
  const OpId thin = p.compute(0, "thin gemm", gemm_cost(1e3, 5e6));
  const Played played = play(p, round_profile());
  EXPECT_DOUBLE_EQ(played.duration_s(0, gemm), 2e-3);  // 2e9 FLOP / 1e12
  EXPECT_DOUBLE_EQ(played.duration_s(0, copy), 3e-3);  // 3e6 B / 1e9
  EXPECT_DOUBLE_EQ(played.duration_s(0, thin), 5e-3);  // bound by its bytes
  EXPECT_DOUBLE_EQ(played.end_s(0, thin), 10e-3);      // one stream: one after another
}

TEST(Play, ATransferWaitsForBothEndsToIssueIt) {
  Program p(2);
  p.compute(0, "before send", fixed(5e-6));
  const OpId late = p.compute(1, "before recv", fixed(20e-6));
  // Rank 0's send needs nothing; rank 1 issues its receive after its compute.
  const OpId send = p.send(0, 1, 1000, 7);
  const OpId recv = p.recv(1, 0, 1000, 7, {late});
  const OpId use = p.compute(1, "use", fixed(1e-6), {recv});
  const Played played = play(p, round_profile());
  EXPECT_DOUBLE_EQ(played.start_s(0, send), 20e-6);           // the receiver was late
  EXPECT_DOUBLE_EQ(played.duration_s(0, send), 1e-6 + 1e-6);  // GPUs 0, 1: one node
  EXPECT_DOUBLE_EQ(played.end_s(1, recv), played.end_s(0, send));
  EXPECT_DOUBLE_EQ(played.start_s(1, use), 22e-6);
}

TEST(Play, PlacementDecidesTheLink) {
  Program p(2);
  p.place({0, 3});  // GPU 3 is on the second node
  const OpId send = p.send(0, 1, 1000, 0);
  p.recv(1, 0, 1000, 0);
  EXPECT_DOUBLE_EQ(play(p, round_profile()).duration_s(0, send), 10e-6 + 10e-6);
}

TEST(Play, WaitBlocksTheHostButComputeDoesNotOnGpus) {
  Program p(2);
  const OpId long_kernel = p.compute(0, "long", fixed(100e-6));
  const OpId send = p.send(0, 1, 0, 0);  // issued while the kernel runs
  p.recv(1, 0, 0, 0);
  const OpId wait = p.wait(0, {send});
  const OpId after_wait = p.send(0, 1, 0, 1);
  p.recv(1, 0, 0, 1);
  const Played gpu = play(p, round_profile());
  EXPECT_DOUBLE_EQ(gpu.start_s(0, send), 0);
  EXPECT_DOUBLE_EQ(gpu.end_s(0, wait), 1e-6);  // a zero-byte message: the link's alpha
  EXPECT_DOUBLE_EQ(gpu.start_s(0, after_wait), 1e-6);
  // On a CPU executor the host runs the kernel: the send goes out after it.
  const Played cpu = play(p, round_profile(), {.compute_blocks_host = true});
  EXPECT_DOUBLE_EQ(cpu.start_s(0, send), 100e-6);
  EXPECT_DOUBLE_EQ(cpu.end_s(0, long_kernel), 100e-6);
}

TEST(Play, CollectivesStartTogetherOverTheNodesTheirGroupSpans) {
  Program p(4);
  const int all = p.add_group({0, 1, 2, 3}, "world");
  const int node0 = p.add_group({0, 1}, "node 0");
  p.compute(2, "late", fixed(50e-6));
  std::vector<OpId> big, small;
  for (int r = 0; r < 4; ++r) {
    const OpId late = r == 2 ? OpId{0} : kNoOp;
    big.push_back(p.collective(r, all, sim::Collective::all_reduce, 4000,
                               late == kNoOp ? std::vector<OpId>{} : std::vector<OpId>{late}));
  }
  for (int r = 0; r < 2; ++r)
    small.push_back(p.collective(r, node0, sim::Collective::all_gather, 2000));
  const Played played = play(p, round_profile());
  // Ring all-reduce over 4 ranks on the inter-node link: 2 (n-1) alpha + 2 (n-1)/n bytes beta.
  const double allreduce = 6 * 10e-6 + 1.5 * 4000 * 10e-9;
  for (int r = 0; r < 4; ++r) {
    EXPECT_DOUBLE_EQ(played.start_s(r, big[r]), 50e-6) << r;
    EXPECT_DOUBLE_EQ(played.duration_s(r, big[r]), allreduce) << r;
  }
  // The node's all-gather follows on the comm stream, inside the node: (n-1) (alpha + bytes/n
  // beta).
  EXPECT_DOUBLE_EQ(played.start_s(0, small[0]), 50e-6 + allreduce);
  EXPECT_DOUBLE_EQ(played.duration_s(0, small[0]), 1e-6 + 1000 * 1e-9);
}

TEST(Play, AnAlltoallvLastsAsLongAsItsSlowestMember) {
  Program p(3);
  const int all = p.add_group({0, 1, 2}, "world");
  // Rank 0 sends 1000 bytes to each peer; the others send nothing.
  const std::vector<std::vector<double>> bytes{{0, 1000, 1000}, {0, 0, 0}, {0, 0, 0}};
  std::vector<OpId> ops;
  for (int r = 0; r < 3; ++r) ops.push_back(p.alltoallv(r, all, bytes[r]));
  const Played played = play(p, round_profile());
  // Rank 0's pairwise steps, each as long as its longer message: step 1 sends
  // 1000 bytes to GPU 1 (one node: 1 + 1 us) and receives nothing from GPU 2
  // (the other node: 10 us); step 2 sends 1000 bytes to GPU 2 (10 + 10 us)
  // and receives nothing from GPU 1 (1 us). Everyone waits for rank 0.
  const double slowest = 10e-6 + (10e-6 + 10e-6);
  for (int r = 0; r < 3; ++r) EXPECT_DOUBLE_EQ(played.duration_s(r, ops[r]), slowest) << r;
  EXPECT_DOUBLE_EQ(sim::alltoallv_time(round_profile(), bytes, {0, 1, 2}), slowest);
}

TEST(Play, TransfersBesideAKernelSlowIt) {
  sim::HardwareProfile hw = round_profile();
  hw.comm_compute_slowdown = 0.5;
  Program p(2);
  const OpId send = p.send(0, 1, 9000, 0);  // 1 us + 9 us
  p.recv(1, 0, 9000, 0);
  const OpId kernel = p.compute(0, "attention", fixed(4e-6), {}, {}, send);
  const OpId next = p.compute(0, "attention", fixed(10e-6), {}, {}, send);
  const Played played = play(p, hw);
  // 4 us of kernel all beside the 10 us transfer: it gets half the GPU.
  EXPECT_DOUBLE_EQ(played.duration_s(0, kernel), 8e-6);
  // The next kernel shares the 6 us of transfer left; its other 4 us run at full speed.
  EXPECT_DOUBLE_EQ(played.duration_s(0, next), 10e-6 + 6e-6);
}

TEST(Play, ARingOfSendRecvPairsDoesNotDeadlock) {
  // Every rank issues its send and receive before waiting: the transfers run at once.
  const int n = 3;
  Program p(n);
  std::vector<OpId> waits;
  for (int r = 0; r < n; ++r) {
    const OpId s = p.send(r, (r + 1) % n, 1000, 0);
    const OpId rv = p.recv(r, (r + n - 1) % n, 1000, 0);
    waits.push_back(p.wait(r, {s, rv}));
  }
  const Played played = play(p, round_profile());
  EXPECT_DOUBLE_EQ(played.end_s(0, waits[0]), 20e-6);  // rank 1 -> 2 crosses nodes: 10 + 10 us
  EXPECT_DOUBLE_EQ(played.end_s(1, waits[1]), 20e-6);
  EXPECT_DOUBLE_EQ(played.makespan_s(), 20e-6);
}

TEST(Play, ReceivingBeforeSendingInACircleDeadlocks) {
  Program p(2);
  for (int r = 0; r < 2; ++r) {
    const OpId rv = p.recv(r, 1 - r, 8, 0);
    p.wait(r, {rv});
    p.send(r, 1 - r, 8, 0);
  }
  EXPECT_THROW(play(p, round_profile()), std::logic_error);
}

TEST(Play, MismatchedProgramsAreRefused) {
  const sim::HardwareProfile hw = round_profile();
  {
    Program p(2);
    p.send(0, 1, 8, 0);
    EXPECT_THROW(play(p, hw), std::invalid_argument);  // no receive
  }
  {
    Program p(2);
    p.send(0, 1, 8, 0);
    p.recv(1, 0, 16, 0);
    EXPECT_THROW(play(p, hw), std::invalid_argument);  // sizes differ
  }
  {
    Program p(2);
    const int g = p.add_group({0, 1}, "pair");
    p.collective(0, g, sim::Collective::all_reduce, 8);
    EXPECT_THROW(play(p, hw), std::invalid_argument);  // rank 1 never joins
  }
  {
    Program p(2);
    const int g = p.add_group({0, 1}, "pair");
    p.alltoallv(0, g, {0, 8});
    p.collective(1, g, sim::Collective::all_to_all, 8);
    EXPECT_THROW(play(p, hw), std::invalid_argument);  // uneven meets even
  }
  {
    Program p(2);
    const int g = p.add_group({0, 1}, "pair");
    EXPECT_THROW(p.alltoallv(0, g, {8}), std::invalid_argument);  // one size for two ranks
    p.collective(0, g, sim::Collective::all_reduce, 8);
    p.collective(1, g, sim::Collective::all_gather, 8);
    EXPECT_THROW(play(p, hw), std::invalid_argument);  // different collectives
  }
}

TEST(Program, RefusesBadOperations) {
  Program p(2);
  EXPECT_THROW(p.send(0, 0, 8, 0), std::invalid_argument);                // to itself
  EXPECT_THROW(p.send(0, 2, 8, 0), std::invalid_argument);                // no rank 2
  EXPECT_THROW(p.compute(0, "x", fixed(1), {0}), std::invalid_argument);  // not earlier
  EXPECT_THROW(p.compute(0, "x", fixed(-1)), std::invalid_argument);
  const OpId c = p.compute(0, "x", fixed(1));
  EXPECT_THROW(p.compute(0, "y", fixed(1), {}, {}, c), std::invalid_argument);  // beside a kernel
  const int g = p.add_group({1}, "one");
  EXPECT_THROW(p.collective(0, g, sim::Collective::all_reduce, 8), std::invalid_argument);
  EXPECT_THROW(p.add_group({0, 0}, "twice"), std::invalid_argument);
  EXPECT_THROW(p.place({0, 0}), std::invalid_argument);
  EXPECT_THROW(Program(0), std::invalid_argument);
}

}  // namespace
}  // namespace paralab::schedule
