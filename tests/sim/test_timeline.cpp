// test_timeline.cpp: start and end times of hand-built schedules, computed
// by hand (all durations are binary fractions, so the sums are exact).
#include <gtest/gtest.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "sim/timeline.hpp"

namespace paralab::sim {
namespace {

constexpr Resource kCompute = Resource::compute;
constexpr Resource kComm = Resource::comm;

TEST(Timeline, ChainAcrossRanksAddsUp) {
  Timeline t(2);
  const TaskId a = t.add(0, kCompute, 1.0, {}, "a");
  const TaskId b = t.add(0, kComm, 0.5, {a}, "b");
  const TaskId c = t.add(1, kCompute, 0.25, {b}, "c");
  t.run();
  EXPECT_EQ(t.task(b).start_s, 1.0);
  EXPECT_EQ(t.task(c).start_s, 1.5);
  EXPECT_EQ(t.makespan_s(), 1.75);
  EXPECT_EQ(t.rank_finish_s(0), 1.5);
  EXPECT_EQ(t.rank_finish_s(1), 1.75);
}

TEST(Timeline, ForkJoinWaitsForTheSlowestBranch) {
  Timeline t(3);
  const TaskId root = t.add(0, kCompute, 1.0, {}, "root");
  const TaskId x = t.add(1, kCompute, 2.0, {root}, "x");  // [1, 3]
  const TaskId y = t.add(2, kCompute, 0.5, {root}, "y");  // [1, 1.5]
  const TaskId z = t.add(0, kComm, 0.75, {root}, "z");    // [1, 1.75]
  const TaskId join = t.add(0, kCompute, 0.25, {x, y, z}, "join");
  t.run();
  EXPECT_EQ(t.task(x).end_s, 3.0);
  EXPECT_EQ(t.task(y).end_s, 1.5);
  EXPECT_EQ(t.task(z).end_s, 1.75);
  EXPECT_EQ(t.task(join).start_s, 3.0);
  EXPECT_EQ(t.makespan_s(), 3.25);
}

TEST(Timeline, TwoStreamsOverlapAndEachRunsInIssueOrder) {
  Timeline t(1);
  const TaskId c1 = t.add(0, kCompute, 2.0, {}, "c1");
  const TaskId m1 = t.add(0, kComm, 1.0, {}, "m1");
  const TaskId m2 = t.add(0, kComm, 1.0, {}, "m2");       // waits for m1: same stream
  const TaskId c2 = t.add(0, kCompute, 1.0, {m1}, "c2");  // waits for c1, not only m1
  t.run();
  EXPECT_EQ(t.task(c1).start_s, 0.0);
  EXPECT_EQ(t.task(m1).start_s, 0.0);
  EXPECT_EQ(t.task(m2).start_s, 1.0);
  EXPECT_EQ(t.task(c2).start_s, 2.0);
  EXPECT_EQ(t.makespan_s(), 3.0);
  EXPECT_EQ(t.busy_s(0, kCompute), 3.0);
  EXPECT_EQ(t.busy_s(0, kComm), 2.0);
  EXPECT_EQ(t.exposed_comm_s(0), 0.0);  // comm [0, 2] lies inside compute [0, 3]
}

TEST(Timeline, ExposedCommCountsCommNotCoveredByCompute) {
  Timeline t(2);
  const Resource inter = t.add_resource("comm_inter", ResourceKind::comm);
  EXPECT_EQ(t.resource_name(inter), "comm_inter");
  EXPECT_EQ(t.resource_count(), 3);
  const TaskId p = t.add(1, kCompute, 0.5, {}, "p");  // rank 1: [0, 0.5]
  t.add(0, kCompute, 1.0, {}, "a");                   // rank 0 compute [0, 1]
  t.add(0, kComm, 1.5, {p}, "m");                     // rank 0 comm [0.5, 2]
  t.add(0, inter, 1.5, {}, "n");                      // rank 0 comm_inter [0, 1.5]
  t.run();
  // Comm union [0, 2] minus compute [0, 1]: 1 s exposed, although the two
  // comm resources are busy 3 s in total.
  EXPECT_EQ(t.exposed_comm_s(0), 1.0);
  EXPECT_EQ(t.busy_s(0, kComm) + t.busy_s(0, inter), 3.0);
  EXPECT_EQ(t.exposed_comm_s(1), 0.0);
  EXPECT_EQ(t.busy_s(1, kComm), 0.0);
}

// A ring pass on n ranks: at step i every rank computes on the block it
// holds (compute_s) while passing it on to the next rank (comm_s); step i's
// compute needs the block received in step i-1, and a rank can forward in
// step i only what its predecessor forwarded to it in step i-1. Built rank
// by rank, so the cross-rank dependencies are wired afterwards with add_dep.
struct Ring {
  Timeline timeline;
  std::vector<std::vector<TaskId>> compute, comm;  // [rank][step]
};

Ring ring_pass(int n, double compute_s, double comm_s) {
  Ring ring{Timeline(n), {}, {}};
  ring.compute.resize(n);
  ring.comm.resize(n);
  for (int r = 0; r < n; ++r)
    for (int i = 0; i < n; ++i) {
      std::vector<TaskId> deps;
      if (i > 0) deps.push_back(ring.comm[r][i - 1]);
      ring.compute[r].push_back(
          ring.timeline.add(r, kCompute, compute_s, deps, "attn " + std::to_string(i)));
      if (i < n - 1)  // n blocks need n-1 transfers
        ring.comm[r].push_back(
            ring.timeline.add(r, kComm, comm_s, {}, "sendrecv " + std::to_string(i)));
    }
  for (int r = 0; r < n; ++r)
    for (int i = 1; i < n - 1; ++i)
      ring.timeline.add_dep(ring.comm[r][i], ring.comm[(r + n - 1) % n][i - 1]);
  ring.timeline.run();
  return ring;
}

TEST(Timeline, RingBoundByCommunication) {
  // compute 0.25 < comm 0.75: every step waits for its block. Compute i runs
  // [0.75 i, 0.75 i + 0.25]; the last one starts after 3 transfers.
  // makespan = compute + (n-1) * comm = 0.25 + 3 * 0.75 = 2.5.
  const int n = 4;
  Ring ring = ring_pass(n, 0.25, 0.75);
  EXPECT_EQ(ring.timeline.makespan_s(), 2.5);
  for (int r = 0; r < n; ++r) {
    EXPECT_EQ(ring.timeline.task(ring.compute[r][3]).start_s, 2.25);
    EXPECT_EQ(ring.timeline.rank_finish_s(r), 2.5);
    // Comm is busy [0, 2.25]; compute hides 0.25 of each of the 3 transfers.
    EXPECT_EQ(ring.timeline.exposed_comm_s(r), 3 * (0.75 - 0.25));
    EXPECT_EQ(ring.timeline.busy_s(r, kComm), 3 * 0.75);
  }
}

TEST(Timeline, RingBoundByComputeHidesAllCommunication) {
  // compute 1 > comm 0.5: makespan = n * compute; every transfer overlaps.
  const int n = 4;
  Ring ring = ring_pass(n, 1.0, 0.5);
  EXPECT_EQ(ring.timeline.makespan_s(), 4.0);
  for (int r = 0; r < n; ++r) EXPECT_EQ(ring.timeline.exposed_comm_s(r), 0.0);
}

TEST(Timeline, CollectiveStartsAtTheLatestReadyTime) {
  Timeline t(3);
  const TaskId a = t.add(0, kCompute, 1.0, {}, "a");
  const TaskId b = t.add(1, kCompute, 3.0, {}, "b");
  const TaskId early = t.add(2, kComm, 0.5, {}, "early");  // rank 2 comm free at 0.5
  const std::vector<int> ranks{0, 1, 2};
  const auto members = t.add_collective(ranks, kComm, 0.5, {}, "allreduce");
  ASSERT_EQ(members.size(), 3u);
  t.add_dep(members[0], a);
  t.add_dep(members[1], b);
  const TaskId after = t.add(2, kComm, 0.25, {}, "after");
  t.run();
  for (TaskId m : members) {
    EXPECT_EQ(t.task(m).start_s, 3.0);
    EXPECT_EQ(t.task(m).end_s, 3.5);
    EXPECT_EQ(t.task(m).label, "allreduce");
  }
  EXPECT_EQ(t.task(early).end_s, 0.5);
  EXPECT_EQ(t.task(after).start_s, 3.5);
  // Rank 2 waits 2.5 s inside no task; its comm is busy 0.5 + 0.5 + 0.25.
  EXPECT_EQ(t.busy_s(2, kComm), 1.25);
  EXPECT_EQ(t.exposed_comm_s(2), 1.25);
}

TEST(Timeline, SharedDepsOfACollectiveApplyToEveryMember) {
  Timeline t(2);
  const TaskId a = t.add(1, kCompute, 2.0, {}, "a");
  const std::vector<int> ranks{0, 1};
  const auto members = t.add_collective(ranks, kComm, 1.0, {a}, "barrier");
  t.run();
  EXPECT_EQ(t.task(members[0]).start_s, 2.0);
  EXPECT_EQ(t.task(members[1]).start_s, 2.0);
  EXPECT_EQ(t.makespan_s(), 3.0);
}

TEST(Timeline, TraceListsEveryTaskByStartTime) {
  Timeline t(2);
  t.add(0, kCompute, 1.0, {}, "first");
  const TaskId second = t.add(1, kComm, 0.5, {0}, "second");
  t.add(1, kCompute, 0.25, {}, "zero");
  t.run();
  const auto trace = t.trace();
  ASSERT_EQ(trace.size(), 3u);
  EXPECT_EQ(trace[0].label, "first");
  EXPECT_EQ(trace[1].label, "zero");
  EXPECT_EQ(trace[2].label, "second");
  EXPECT_EQ(trace[2].id, second);
  EXPECT_EQ(trace[2].rank, 1);
  EXPECT_EQ(trace[2].resource, kComm);
  EXPECT_EQ(trace[2].start_s, 1.0);
  EXPECT_EQ(trace[2].end_s, 1.5);
  EXPECT_EQ(trace[2].duration_s, 0.5);
}

void expect_cycle_naming(Timeline& t, const std::vector<std::string>& labels) {
  try {
    t.run();
    FAIL() << "run() accepted a cycle";
  } catch (const std::logic_error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("cycle"), std::string::npos) << message;
    for (const auto& label : labels)
      EXPECT_NE(message.find("'" + label + "'"), std::string::npos) << message;
  }
}

TEST(Timeline, DeadlockedSendRecvIsACycle) {
  // Both ranks receive before they send: the classic MPI deadlock.
  Timeline t(2);
  const TaskId recv0 = t.add(0, kComm, 1.0, {}, "recv0");
  const TaskId send0 = t.add(0, kComm, 1.0, {}, "send0");
  t.add(1, kComm, 1.0, {send0}, "recv1");
  const TaskId send1 = t.add(1, kComm, 1.0, {}, "send1");
  t.add_dep(recv0, send1);
  expect_cycle_naming(t, {"recv0", "send0", "recv1", "send1"});
}

TEST(Timeline, CollectiveOrderMismatchIsACycle) {
  // Rank 0 enters the collective only after a task that waits for a task
  // rank 1 issues after the collective.
  Timeline t(2);
  const TaskId a = t.add(0, kComm, 1.0, {}, "a");
  const std::vector<int> ranks{0, 1};
  t.add_collective(ranks, kComm, 1.0, {}, "coll");
  const TaskId b = t.add(1, kComm, 1.0, {}, "b");
  t.add_dep(a, b);
  expect_cycle_naming(t, {"a", "coll", "b"});
}

TEST(Timeline, SelfDependencyIsACycle) {
  Timeline t(1);
  const TaskId a = t.add(0, kCompute, 1.0, {}, "a");
  t.add_dep(a, a);
  expect_cycle_naming(t, {"a"});
}

TEST(Timeline, BadInputThrows) {
  EXPECT_THROW(Timeline(0), std::invalid_argument);
  Timeline t(2);
  EXPECT_THROW(t.add(2, kCompute, 1.0), std::invalid_argument);                  // rank
  EXPECT_THROW(t.add(0, static_cast<Resource>(5), 1.0), std::invalid_argument);  // resource
  EXPECT_THROW(t.add(0, kCompute, -1.0), std::invalid_argument);                 // duration
  EXPECT_THROW(t.add(0, kCompute, 1.0, {7}), std::invalid_argument);             // bad dep id
  const TaskId a = t.add(0, kCompute, 1.0);
  EXPECT_THROW(t.add_dep(a, 9), std::invalid_argument);
  EXPECT_THROW(t.add_dep(9, a), std::invalid_argument);
  const std::vector<int> twice{1, 1};
  EXPECT_THROW(t.add_collective(twice, kComm, 1.0), std::invalid_argument);
  EXPECT_THROW(t.add_resource("comm", ResourceKind::comm), std::invalid_argument);
  EXPECT_THROW(t.makespan_s(), std::logic_error);  // before run()
  t.run();
  EXPECT_EQ(t.makespan_s(), 1.0);
  t.add(0, kCompute, 1.0);
  EXPECT_THROW(t.makespan_s(), std::logic_error);  // stale after adding
}

}  // namespace
}  // namespace paralab::sim
