// The ring's operations, rank by rank; see program.hpp.
#include "ring/program.hpp"

#include <numeric>

namespace paralab::ring {
namespace {

using schedule::kNoOp;
using schedule::OpId;
using schedule::Program;

constexpr double kFloatBytes = 4;

schedule::OpRef ref(RingRole role, int step = -1, int item = -1) {
  return {static_cast<int>(role), step, item};
}

class Lowering {
 public:
  Lowering(const RingSchedule& s, const WireTypes& wire) : s_(s), wire_(wire), program_(s.ranks) {
    std::vector<int> all(s.ranks);
    std::iota(all.begin(), all.end(), 0);
    world_ = program_.add_group(all, "ring");
  }

  Program lower() {
    for (int r = 0; r < s_.ranks; ++r) {
      last_compute_ = kNoOp;
      if (s_.algorithm == Algorithm::all_gather)
        lower_all_gather(r);
      else
        lower_ring(r);
      if (s_.algorithm == Algorithm::pass_q) lower_all2all_and_merge(r);
    }
    return std::move(program_);
  }

 private:
  double block_bytes() const { return double(s_.block_elements) * wire_.element_bytes; }

  // The step's kernel calls on the compute stream, each attention call
  // followed by its merge; `beside` is the step's transfer in flight.
  void add_calls(int r, int step, OpId beside) {
    const std::vector<AttentionCall>& calls = s_.steps[r][step].calls;
    for (size_t i = 0; i < calls.size(); ++i) {
      const AttentionCall& call = calls[i];
      const sim::AttentionShape shape{double(call.q.length), int(s_.H), int(s_.H_kv),
                                      double(call.kv.length)};
      const int item = static_cast<int>(i);
      program_.compute(r, "attention",
                       schedule::attention_cost(
                           call.flops, shape, attention_call_bytes(s_, call, wire_.element_bytes)),
                       {}, ref(RingRole::attention, step, item), beside);
      last_compute_ = program_.compute(
          r, "merge", schedule::memory_cost(merge_bytes(double(call.q.length) * s_.H, s_.D)), {},
          ref(RingRole::merge, step, item));
    }
  }

  // Step k: post the block in hand to the next rank and the receive of the
  // previous rank's block into the other buffer (free once step k-1's calls
  // have read it), run the calls, wait for both transfers.
  void lower_ring(int r) {
    const int n = s_.ranks, next = (r + 1) % n, prev = (r + n - 1) % n;
    for (int k = 0; k < static_cast<int>(s_.steps[r].size()); ++k) {
      OpId send = kNoOp, recv = kNoOp;
      if (s_.steps[r][k].forwards) {
        send = program_.send(r, next, block_bytes(), k, {}, ref(RingRole::ring_send, k),
                             "ring transfer");
        std::vector<OpId> buffer_free;
        if (last_compute_ != kNoOp) buffer_free.push_back(last_compute_);
        recv = program_.recv(r, prev, block_bytes(), k, buffer_free, ref(RingRole::ring_recv, k),
                             "ring receive");
      }
      add_calls(r, k, send);
      if (send != kNoOp) program_.wait(r, {send, recv}, ref(RingRole::step_wait, k));
    }
  }

  void lower_all_gather(int r) {
    const OpId gather =
        program_.collective(r, world_, sim::Collective::all_gather, block_bytes() * s_.ranks, {},
                            ref(RingRole::all_gather, 0), "all-gather");
    program_.wait(r, {gather}, ref(RingRole::step_wait, 0));
    add_calls(r, 0, kNoOp);
  }

  void lower_all2all_and_merge(int r) {
    // A slot holds O (D values a row, in the partial type) and the LSE (FP32).
    const double slot_rows = double(s_.all2all_slot_floats) / double(s_.D + 1);
    const double slot_bytes = slot_rows * (s_.D * wire_.partial_element_bytes + kFloatBytes);
    std::vector<OpId> partials_done;
    if (last_compute_ != kNoOp) partials_done.push_back(last_compute_);
    const OpId all2all =
        program_.collective(r, world_, sim::Collective::all_to_all, slot_bytes * s_.ranks,
                            partials_done, ref(RingRole::all_to_all), "all-to-all");
    // Reads N partials and the accumulator, writes the accumulator.
    const double rows = double(s_.final_merge_rows[r]);
    program_.compute(r, "final merge",
                     schedule::memory_cost(merge_bytes(rows, s_.D) * (s_.ranks + 1) / 3.0),
                     {all2all}, ref(RingRole::final_merge));
  }

  const RingSchedule& s_;
  WireTypes wire_;
  Program program_;
  int world_ = 0;
  OpId last_compute_ = kNoOp;
};

}  // namespace

RingRole role_of(const schedule::Op& op) {
  return static_cast<RingRole>(op.ref.role);
}

// Q, K and V read in the input type, O and LSE written in FP32.
double attention_call_bytes(const RingSchedule& s, const AttentionCall& call, int element_bytes) {
  const double e = element_bytes;
  return double(call.kv.length) * s.H_kv * s.D * 2 * e +
         double(call.q.length) * s.H * (s.D * e + (s.D + 1) * kFloatBytes);
}

// An LSE merge reads the accumulator and the partial (O and LSE) and writes
// the accumulator back.
double merge_bytes(double rows, double D) {
  return 3 * rows * (D + 1) * kFloatBytes;
}

Program ring_program(const RingSchedule& schedule, const WireTypes& wire) {
  return Lowering(schedule, wire).lower();
}

}  // namespace paralab::ring
