// program.hpp: a ring schedule (schedule.hpp) as a schedule::Program: the
// operations every rank issues, in order, for both executors. run_ring
// (ring_attention.cpp) walks its rank's operations and binds each to a
// kernel or a Communicator call; simulate_ring (simulate.hpp) plays the
// whole program on the timeline. So the ring's control flow (transfers
// posted before the step's kernels and waited for after them, double
// buffering, pass-Q's all-to-all and final merge, all-gather's collective)
// is written here once.
#pragma once

#include "ring/schedule.hpp"
#include "schedule/program.hpp"

namespace paralab::ring {

// What each operation is to the ring (schedule::OpRef::role).
enum class RingRole : int {
  ring_send,    // step k's block to the next rank
  ring_recv,    // step k's block from the previous rank, into the other buffer
  attention,    // kernel call `item` of step k
  merge,        // its LSE merge into the accumulators
  step_wait,    // the end of step k: both transfers complete (all-gather: the gathered blocks)
  all_gather,   // all-gather: every rank's K/V block
  all_to_all,   // pass-Q: the partials back to their owners
  final_merge,  // pass-Q: each query row's N partials merged
};

RingRole role_of(const schedule::Op& op);

// Bytes of one element on the wire.
struct WireTypes {
  int element_bytes = 2;          // Q, K and V
  int partial_element_bytes = 4;  // pass-Q's returned O (its LSE is FP32)
};

// The program of `schedule` on its ranks, placed on GPUs 0..ranks-1.
schedule::Program ring_program(const RingSchedule& schedule, const WireTypes& wire);

// Bytes an attention call and an LSE merge move through memory, what the
// program's compute operations are priced by.
double attention_call_bytes(const RingSchedule& s, const AttentionCall& call, int element_bytes);
double merge_bytes(double rows, double D);

}  // namespace paralab::ring
