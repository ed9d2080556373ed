// Simulate mode of ring attention: a schedule on the lib/sim timeline; see
// simulate.hpp for what is modelled.
#include "ring/simulate.hpp"

#include <algorithm>
#include <numeric>

#include "sim/collectives.hpp"

namespace paralab::ring {
namespace {

using sim::Resource;
using sim::TaskId;

constexpr double kFloatBytes = 4;

// An LSE merge reads the accumulator and the partial (O and LSE) and writes
// the accumulator back.
double merge_bytes(double rows, double D) {
  return 3 * rows * (D + 1) * kFloatBytes;
}

struct StepTasks {
  TaskId attention, merge, end;  // end: the step's wait, zero length, after the compute
  double transfer_s = 0;         // the step's outgoing transfer
};

class Player {
 public:
  Player(const RingSchedule& s, const SimulationSetup& setup)
      : s_(s),
        setup_(setup),
        model_(sim::compute_model(setup.hardware, setup.precision)),
        timeline_(s.ranks),
        steps_(s.ranks),
        sends_(s.ranks) {}

  SimulatedRing play() {
    if (s_.algorithm == Algorithm::all_gather)
      play_all_gather();
    else
      play_ring();
    if (s_.algorithm == Algorithm::pass_q) play_all2all_and_merge();
    timeline_.run();
    return results();
  }

 private:
  int next(int r) const { return (r + 1) % s_.ranks; }
  int prev(int r) const { return (r + s_.ranks - 1) % s_.ranks; }
  double block_bytes() const { return double(s_.block_elements) * setup_.element_bytes; }

  // Memory a call moves: Q, K and V read in the input type, O and LSE
  // written in FP32.
  double attention_bytes(const AttentionCall& call) const {
    const double e = setup_.element_bytes;
    return double(call.kv.length) * s_.H_kv * s_.D * 2 * e +
           double(call.q.length) * s_.H * (s_.D * e + (s_.D + 1) * kFloatBytes);
  }

  // The step's kernel calls on the compute stream: attention, then merges.
  // `transfer_s` is the transfer in flight beside them (contention).
  StepTasks add_compute(int r, const PlannedStep& step, std::vector<TaskId> deps,
                        double transfer_s = 0) {
    double attention = 0, merge = 0;
    for (const AttentionCall& call : step.calls) {
      const sim::AttentionShape shape{double(call.q.length), int(s_.H), int(s_.H_kv),
                                      double(call.kv.length)};
      attention += model_.attention_s(call.flops, shape, attention_bytes(call));
      merge += model_.memory_s(merge_bytes(double(call.q.length) * s_.H, double(s_.D)));
    }
    // While the transfer runs, the kernels get 1 - slowdown of the GPU.
    const double slowdown = setup_.hardware.comm_compute_slowdown;
    attention += std::min(attention, transfer_s) * slowdown / (1 - slowdown);
    const TaskId a = timeline_.add(r, Resource::compute, attention, std::move(deps), "attention");
    const TaskId m = timeline_.add(r, Resource::compute, merge, {}, "merge");
    return {a, m, m};
  }

  double transfer_s(int from, int to, double bytes) const {
    const sim::GroupShape pair =
        sim::pair_group(setup_.hardware, from * setup_.gpu_stride, to * setup_.gpu_stride);
    return sim::collective_time(setup_.hardware, sim::Collective::send_recv, pair, bytes).seconds;
  }

  double collective_s(sim::Collective kind, double bytes) const {
    const sim::GroupShape ring = sim::strided_group(setup_.hardware, s_.ranks, setup_.gpu_stride);
    return sim::collective_time(setup_.hardware, kind, ring, bytes).seconds;
  }

  // Ring step k on every rank: transfers first (each needs both ends to have
  // finished step k-1), then the compute on the block that arrived in step
  // k-1, then the wait for this step's transfers in and out.
  void play_ring() {
    const int n = s_.ranks;
    for (int k = 0; k < n; ++k) {
      std::vector<double> durations(n, 0.0);
      for (int r = 0; r < n; ++r) {
        if (!s_.steps[r][k].forwards) continue;
        std::vector<TaskId> deps;
        if (k > 0) deps = {steps_[r][k - 1].end, steps_[next(r)][k - 1].end};
        durations[r] = transfer_s(r, next(r), block_bytes());
        sends_[r].push_back(timeline_.add(r, Resource::comm, durations[r], deps, "ring transfer"));
      }
      for (int r = 0; r < n; ++r) {
        std::vector<TaskId> deps;
        if (k > 0) deps = {sends_[prev(r)][k - 1]};  // the block in hand has arrived
        steps_[r].push_back(add_compute(r, s_.steps[r][k], deps, durations[r]));
      }
      for (int r = 0; r < n; ++r) {
        if (!s_.steps[r][k].forwards) continue;
        steps_[r][k].transfer_s = durations[r];
        steps_[r][k].end =
            timeline_.add(r, Resource::compute, 0, {sends_[r][k], sends_[prev(r)][k]}, "wait");
      }
    }
  }

  void play_all_gather() {
    std::vector<int> all(s_.ranks);
    std::iota(all.begin(), all.end(), 0);
    const double bytes = block_bytes() * s_.ranks;
    const double gather_s = collective_s(sim::Collective::all_gather, bytes);
    gather_ = timeline_.add_collective(all, Resource::comm, gather_s, {}, "all-gather");
    for (int r = 0; r < s_.ranks; ++r) {
      steps_[r].push_back(add_compute(r, s_.steps[r][0], {gather_[r]}));
      steps_[r].back().transfer_s = gather_s;
    }
  }

  void play_all2all_and_merge() {
    std::vector<int> all(s_.ranks);
    std::iota(all.begin(), all.end(), 0);
    std::vector<TaskId> ready;
    for (int r = 0; r < s_.ranks; ++r) ready.push_back(steps_[r].back().end);
    // A slot holds O (D values a row, in the partial type) and the LSE (FP32).
    const double slot_rows = double(s_.all2all_slot_floats) / double(s_.D + 1);
    const double slot_bytes = slot_rows * (s_.D * setup_.partial_element_bytes + kFloatBytes);
    all2all_ = timeline_.add_collective(
        all, Resource::comm, collective_s(sim::Collective::all_to_all, slot_bytes * s_.ranks),
        ready, "all-to-all");
    for (int r = 0; r < s_.ranks; ++r) {
      const double rows = double(s_.final_merge_rows[r]);
      final_merge_.push_back(timeline_.add(
          r, Resource::compute, model_.memory_s(merge_bytes(rows, s_.D) * (s_.ranks + 1) / 3.0),
          {all2all_[r]}, "final merge"));
    }
  }

  SimulatedRing results() const {
    SimulatedRing out;
    out.latency_s = timeline_.makespan_s();
    for (int r = 0; r < s_.ranks; ++r) {
      SimulatedRank rank;
      for (const StepTasks& step : steps_[r]) {
        const double wait = step.end == step.merge ? 0
                                                   : timeline_.task(step.end).start_s -
                                                         timeline_.task(step.merge).end_s;
        rank.step_attention_s.push_back(timeline_.task(step.attention).duration_s);
        rank.step_merge_s.push_back(timeline_.task(step.merge).duration_s);
        rank.step_transfer_s.push_back(step.transfer_s);
        rank.step_wait_s.push_back(wait);
        rank.attention_s += rank.step_attention_s.back();
        rank.merge_s += rank.step_merge_s.back();
        rank.comm_wait_s += wait;
      }
      if (!gather_.empty()) {
        rank.comm_wait_s += timeline_.task(gather_[r]).end_s;
        rank.step_wait_s.back() += timeline_.task(gather_[r]).end_s;
      }
      if (!all2all_.empty()) {
        rank.all2all_s =
            timeline_.task(all2all_[r]).end_s - timeline_.task(steps_[r].back().end).end_s;
        rank.merge_s += timeline_.task(final_merge_[r]).duration_s;
      }
      rank.finish_s = timeline_.rank_finish_s(r);
      out.ranks.push_back(rank);
    }
    out.trace = timeline_.trace();
    return out;
  }

  const RingSchedule& s_;
  const SimulationSetup& setup_;
  sim::ComputeModel model_;
  sim::Timeline timeline_;
  std::vector<std::vector<StepTasks>> steps_;  // [rank][step]
  std::vector<std::vector<TaskId>> sends_;     // [rank][step]: the transfer to the next rank
  std::vector<TaskId> gather_, all2all_, final_merge_;
};

}  // namespace

SimulatedRing simulate_ring(const RingSchedule& schedule, const SimulationSetup& setup) {
  return Player(schedule, setup).play();
}

}  // namespace paralab::ring
