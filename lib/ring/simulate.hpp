// simulate.hpp: plays a ring schedule (schedule.hpp) on the lib/sim timeline,
// the simulate-mode twin of run_ring: every rank's steps in the same order,
// each step's forward transfer posted before its kernel calls and waited for
// after them, pass-Q's all-to-all and final merge, all-gather's collective.
//
// Costs: each kernel call is attention_s (a roofline of its FLOPs at the
// occupancy its shape allows and of its memory traffic) and its LSE merge
// memory_s (read the accumulator and the partial, write the accumulator); a
// ring transfer is one send-recv and the all-to-all and all-gather are
// collectives of sim/collectives.hpp over the GPUs the ring spans (the
// profile's comm_library: alpha-beta lines or NCCL's protocol model). While a
// step's transfer is in flight its attention runs slower by the profile's
// comm_compute_slowdown. A transfer starts once the sender has posted it and
// the receiver has posted its receive (finished the previous step):
// rendezvous, as large MPI and NCCL messages behave.
#pragma once

#include <vector>

#include "ring/schedule.hpp"
#include "sim/compute.hpp"
#include "sim/hardware.hpp"
#include "sim/timeline.hpp"

namespace paralab::ring {

struct SimulationSetup {
  sim::HardwareProfile hardware;
  sim::Precision precision = sim::Precision::bf16;  // the kernels' input precision
  int element_bytes = 2;                            // of Q, K, V on the wire
  // Ring rank r runs on GPU r * gpu_stride: 1 packs ranks onto nodes; a
  // stride of gpus_per_node puts one CP rank per node (TP inside the node).
  int gpu_stride = 1;
  int partial_element_bytes = 4;  // of pass-Q's returned partial outputs O (LSE stays FP32)
};

// Seconds per rank, the simulate-mode twin of the measured breakdown.
struct SimulatedRank {
  double attention_s = 0;  // kernel calls
  double merge_s = 0;      // LSE merges (per call and pass-Q's final one)
  double comm_wait_s = 0;  // waiting for ring transfers (all-gather: the collective)
  double all2all_s = 0;    // pass-Q's all-to-all, including waiting for its slowest rank
  double finish_s = 0;     // when the rank is done
  // Per ring step (all-gather: its one step): the transfer the rank sends
  // (0 on the last step), the time it then waits for its transfers after its
  // compute, the attention and merge kernels.
  std::vector<double> step_transfer_s, step_wait_s, step_attention_s, step_merge_s;
};

struct SimulatedRing {
  double latency_s = 0;  // the slowest rank
  std::vector<SimulatedRank> ranks;
  std::vector<sim::TaskRecord> trace;
};

SimulatedRing simulate_ring(const RingSchedule& schedule, const SimulationSetup& setup);

}  // namespace paralab::ring
