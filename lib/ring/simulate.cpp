// Simulate mode of ring attention: the ring's program (program.hpp) played
// by the schedule layer's player; this file only reads the per-step report
// back out of the played operations.
#include "ring/simulate.hpp"

#include <algorithm>

#include "ring/program.hpp"
#include "schedule/play.hpp"

namespace paralab::ring {
namespace {

using schedule::OpId;

SimulatedRank rank_report(const schedule::Program& program, const schedule::Played& played, int r,
                          size_t steps) {
  SimulatedRank rank;
  rank.step_attention_s.assign(steps, 0);
  rank.step_merge_s.assign(steps, 0);
  rank.step_transfer_s.assign(steps, 0);
  rank.step_wait_s.assign(steps, 0);
  double busy_until = 0;  // the end of the rank's last compute so far
  for (OpId i = 0; i < program.ops(r).size(); ++i) {
    const schedule::Op& op = program.op(r, i);
    const double seconds = played.duration_s(r, i);
    const auto step = static_cast<size_t>(std::max(op.ref.step, 0));
    switch (role_of(op)) {
      case RingRole::attention:
        rank.step_attention_s[step] += seconds;
        rank.attention_s += seconds;
        break;
      case RingRole::merge:
      case RingRole::final_merge:
        if (role_of(op) == RingRole::merge) rank.step_merge_s[step] += seconds;
        rank.merge_s += seconds;
        break;
      case RingRole::ring_send:
      case RingRole::all_gather:
        rank.step_transfer_s[step] = seconds;
        break;
      case RingRole::step_wait: {
        // What the rank waits for its transfers after its own compute.
        const double wait = std::max(0.0, played.end_s(r, i) - busy_until);
        rank.step_wait_s[step] += wait;
        rank.comm_wait_s += wait;
        break;
      }
      case RingRole::all_to_all:
        rank.all2all_s = played.end_s(r, i) - busy_until;
        break;
      case RingRole::ring_recv:
        break;
    }
    if (op.kind == schedule::OpKind::compute || op.kind == schedule::OpKind::wait ||
        role_of(op) == RingRole::all_to_all)
      busy_until = std::max(busy_until, played.end_s(r, i));
  }
  rank.finish_s = played.rank_finish_s(r);
  return rank;
}

}  // namespace

SimulatedRing simulate_ring(const RingSchedule& schedule, const SimulationSetup& setup) {
  schedule::Program program =
      ring_program(schedule, {setup.element_bytes, setup.partial_element_bytes});
  std::vector<int> gpus;
  for (int r = 0; r < schedule.ranks; ++r) gpus.push_back(r * setup.gpu_stride);
  program.place(gpus);
  // CPU profiles (no SMs) model the CPU executor, whose host thread runs the kernels.
  const schedule::PlayOptions options{setup.precision, setup.hardware.sm_count == 0};
  const schedule::Played played = schedule::play(program, setup.hardware, options);

  SimulatedRing out;
  out.latency_s = played.makespan_s();
  for (int r = 0; r < schedule.ranks; ++r)
    out.ranks.push_back(rank_report(program, played, r, schedule.steps[r].size()));
  out.trace = played.timeline().trace();
  return out;
}

}  // namespace paralab::ring
