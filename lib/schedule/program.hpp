// program.hpp: a distributed algorithm's per-rank program, written once by
// the algorithm's planner and run by two executors: measure mode binds each
// operation to a kernel or a Communicator call and runs it for real;
// simulate mode plays the same program on a sim::Timeline (play.hpp).
//
// What a program means (both executors follow it):
// - Each rank issues its operations in order from one host thread.
// - Compute operations run one after another on the rank's compute stream.
//   Sends and collectives run one after another on its comm stream. Issuing
//   either does not block the host (a CUDA launch, an MPI_Isend); where a
//   later operation needs an earlier one's result, it lists it in `after`.
// - A send's transfer starts once the sender has issued it and the receiver
//   has issued the matching receive (same peers, same tag, in order): a
//   rendezvous, as large MPI and NCCL messages behave. A receive is complete
//   when that transfer ends.
// - A collective starts on all its group's ranks at once, when the last of
//   them has issued it; collectives of one group match in issue order.
// - `wait` blocks the host until the operations it lists are complete: every
//   operation issued after it starts after them.
// - A compute operation may name a transfer in flight beside it (`beside`):
//   the simulator slows it by the profile's comm_compute_slowdown for as
//   long as the transfer lasts (kernels beside one transfer share its time
//   in issue order).
//
// Operations carry the executor's own reference (`role`, `step`, `item`, e.g.
// "attention", the ring step and the kernel call within it), so the measure executor finds
// the data an operation works on without a second copy of the control flow.
#pragma once

#include <cstddef>
#include <limits>
#include <string>
#include <vector>

#include "sim/collectives.hpp"
#include "sim/compute.hpp"

namespace paralab::schedule {

using OpId = std::size_t;  // index into one rank's operations
inline constexpr OpId kNoOp = std::numeric_limits<OpId>::max();

enum class OpKind { compute, send, recv, collective, wait };

// How the simulator prices a compute operation (sim/compute.hpp).
enum class Work {
  attention,  // flops and bytes at the occupancy of `shape`
  gemm,       // a roofline of flops and bytes
  memory,     // bytes at memory bandwidth
  fixed,      // `seconds`, priced by the planner (e.g. a measured constant)
};

struct ComputeCost {
  Work work = Work::fixed;
  double flops = 0;
  double bytes = 0;
  double seconds = 0;
  sim::AttentionShape shape;
  int calls = 1;  // kernel calls the operation makes: each pays the kernel overhead
};

inline ComputeCost attention_cost(double flops, sim::AttentionShape shape, double bytes) {
  ComputeCost c;
  c.work = Work::attention;
  c.flops = flops;
  c.shape = shape;
  c.bytes = bytes;
  return c;
}
inline ComputeCost gemm_cost(double flops, double bytes, int calls = 1) {
  ComputeCost c;
  c.work = Work::gemm;
  c.flops = flops;
  c.bytes = bytes;
  c.calls = calls;
  return c;
}
inline ComputeCost memory_cost(double bytes, int calls = 1) {
  ComputeCost c;
  c.work = Work::memory;
  c.bytes = bytes;
  c.calls = calls;
  return c;
}
inline ComputeCost fixed_cost(double seconds) {
  ComputeCost c;
  c.seconds = seconds;
  return c;
}

// The executor's reference of an operation, -1 where unused: what the
// operation is to the algorithm (its own enumeration), its step and the
// item within the step.
struct OpRef {
  int role = -1;
  int step = -1;
  int item = -1;
};

struct Op {
  OpKind kind = OpKind::compute;
  std::string label;
  std::vector<OpId> after;  // operations of the same rank this one needs complete
  OpRef ref;
  ComputeCost cost;     // compute
  OpId beside = kNoOp;  // compute: a send or collective in flight beside it
  int peer = -1;        // send, recv
  int tag = 0;          // send, recv
  double bytes = 0;     // send, recv, collective (sim/collectives.hpp's convention)
  int group = -1;       // collective
  sim::Collective collective = sim::Collective::all_reduce;
  // An all-to-all with uneven sizes (alltoallv): bytes to each group member,
  // in the group's order; empty for every other collective.
  std::vector<double> peer_bytes;
  // A send or collective the planner priced itself (seconds; < 0: the
  // player prices it from its bytes and the profile).
  double fixed_seconds = -1;
};

struct Group {
  std::vector<int> ranks;  // distinct
  std::string name;
};

class Program {
 public:
  explicit Program(int ranks);

  int ranks() const { return static_cast<int>(ops_.size()); }
  // Rank r runs on GPU gpu_of_rank[r] (the default: GPU r), GPUs packed
  // node by node; the simulator reads which node each message crosses to.
  void place(std::vector<int> gpu_of_rank);
  int gpu(int rank) const { return gpus_[static_cast<size_t>(rank)]; }

  // A group of ranks that runs collectives together; returns its index.
  int add_group(std::vector<int> ranks, std::string name);
  const Group& group(int index) const;
  int group_count() const { return static_cast<int>(groups_.size()); }

  // Operations, appended to `rank`'s list; each returns its OpId there.
  // Every one checks its arguments (ranks, peers, groups, earlier OpIds) and
  // throws std::invalid_argument naming the operation.
  OpId compute(int rank, std::string label, ComputeCost cost, std::vector<OpId> after = {},
               OpRef ref = {}, OpId beside = kNoOp);
  OpId send(int rank, int peer, double bytes, int tag, std::vector<OpId> after = {}, OpRef ref = {},
            std::string label = "send");
  OpId recv(int rank, int peer, double bytes, int tag, std::vector<OpId> after = {}, OpRef ref = {},
            std::string label = "recv");
  OpId collective(int rank, int group, sim::Collective kind, double bytes,
                  std::vector<OpId> after = {}, OpRef ref = {}, std::string label = "");
  // An all-to-all with uneven sizes: `peer_bytes[i]` to the group's i-th
  // rank (its own entry costs nothing); priced by sim::alltoallv_time.
  OpId alltoallv(int rank, int group, std::vector<double> peer_bytes, std::vector<OpId> after = {},
                 OpRef ref = {}, std::string label = "alltoallv");
  OpId wait(int rank, std::vector<OpId> ops, OpRef ref = {}, std::string label = "wait");

  // Prices a send or collective the planner knows better (a link of its own,
  // a representative rank standing for a larger group): the player then
  // takes `seconds` as it is. A collective's members must agree.
  void set_fixed_seconds(int rank, OpId op, double seconds);

  const std::vector<Op>& ops(int rank) const;
  const Op& op(int rank, OpId id) const { return ops(rank).at(id); }

 private:
  OpId push(int rank, Op op);
  void check_rank(int rank, const std::string& what) const;

  std::vector<std::vector<Op>> ops_;  // [rank]
  std::vector<int> gpus_;
  std::vector<Group> groups_;
};

}  // namespace paralab::schedule
