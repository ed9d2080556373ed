// play.hpp: the simulate executor: plays any program (program.hpp) on a
// sim::Timeline with a hardware profile's costs. Compute operations are
// priced by sim::ComputeModel, sends by collective_time's send_recv between
// the two ranks' GPUs, collectives by collective_time over the nodes their
// group's GPUs span.
#pragma once

#include <vector>

#include "schedule/program.hpp"
#include "sim/hardware.hpp"
#include "sim/timeline.hpp"

namespace paralab::schedule {

struct PlayOptions {
  sim::Precision precision = sim::Precision::bf16;  // the compute operations' input type
  // true for the CPU executors, where kernels run on the host thread: every
  // operation issued after a compute operation starts after it. false for
  // GPUs, where a launch returns at once.
  bool compute_blocks_host = false;
};

class Played {
 public:
  double start_s(int rank, OpId op) const { return record(rank, op).start_s; }
  double end_s(int rank, OpId op) const { return record(rank, op).end_s; }
  double duration_s(int rank, OpId op) const { return record(rank, op).duration_s; }
  double makespan_s() const { return timeline_.makespan_s(); }
  double rank_finish_s(int rank) const { return timeline_.rank_finish_s(rank); }
  const sim::Timeline& timeline() const { return timeline_; }

 private:
  friend Played play(const Program&, const sim::HardwareProfile&, const PlayOptions&);
  explicit Played(int ranks) : timeline_(ranks) {}
  const sim::TaskRecord& record(int rank, OpId op) const;

  sim::Timeline timeline_;
  std::vector<std::vector<sim::TaskId>> tasks_;  // [rank][op]; a recv shares its send's task
};

// Throws std::invalid_argument for a program whose messages or collectives
// do not match (a receive without its send, different sizes, a group whose
// ranks issue different numbers or kinds of collectives), and
// std::logic_error naming the operations for one that would deadlock.
Played play(const Program& program, const sim::HardwareProfile& hardware,
            const PlayOptions& options = {});

// What one compute operation costs alone (no contention): its work on the
// model, plus a kernel overhead for each call after the first (fixed: as given).
double compute_seconds(const ComputeCost& cost, const sim::ComputeModel& model);

}  // namespace paralab::schedule
