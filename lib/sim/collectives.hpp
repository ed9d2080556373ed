// collectives.hpp: the time of one collective or point-to-point message on a
// hardware profile, by the profile's comm_library:
//
// - "alpha-beta": the ring formulas of sim/links.hpp over the slowest link the
//   group spans (what a profile calibrated from comm_bench's MPI runs measures).
// - "nccl": NCCL's own cost model (src/graph/tuning.cc, NVIDIA/nccl at commit
//   b6475625, the 2.19 series): for each algorithm (ring; tree for all-reduce)
//   and protocol (LL, LL128, Simple) a latency from per-protocol base and
//   per-hop latencies (NVLink hops inside a node, network hops between nodes)
//   and a bandwidth from the link's with the protocol's efficiency; the
//   cheapest pair wins, as NCCL's tuner picks. Point-to-point messages (NCCL
//   has no tuner for them) are one ring hop, LL up to NCCL_P2P_LL_THRESHOLD
//   (16 KiB) and Simple above; all-to-all is NCCL's grouped send/recv to
//   every peer at once. What is left out is listed in docs/sim.md.
//
// `bytes` follows comm_bench and NCCL: the largest buffer one rank holds (the
// all-reduce vector; the whole gathered buffer of an all-gather or
// reduce-scatter; one rank's send buffer of an all-to-all; the message of a
// send-recv).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "sim/hardware.hpp"

namespace paralab::sim {

enum class Collective { send_recv, all_reduce, all_gather, reduce_scatter, all_to_all };
std::string_view collective_name(Collective kind);

// A group of GPUs: `ranks` of them spread as evenly as they go over `nodes` nodes
// (send_recv: ranks 2, nodes 2 when the peers are on different nodes).
struct GroupShape {
  int ranks = 1;
  int nodes = 1;
};

// `ranks` GPUs spaced `stride` apart on GPUs packed node by node (rank r on
// GPU r * stride): they span nodes from the first GPU's to the last one's.
GroupShape strided_group(const HardwareProfile& hardware, int ranks, int stride = 1);

// The two GPUs of a point-to-point message: one node or two.
GroupShape pair_group(const HardwareProfile& hardware, int gpu_a, int gpu_b);

struct CollectiveTime {
  double seconds = 0;
  std::string algorithm;  // "ring", "tree", "p2p" or "alpha-beta"
  std::string protocol;   // "LL", "LL128" or "Simple" (nccl), "" otherwise
};

// Throws std::invalid_argument for ranks < 1, nodes outside [1, ranks],
// negative bytes, or a send_recv group that is not 2 ranks.
CollectiveTime collective_time(const HardwareProfile& hardware, Collective kind, GroupShape group,
                               double bytes);

// An all-to-all with uneven sizes: send_bytes[i][j] from group member i to
// member j (the diagonal costs nothing), member i on GPU gpus[i], GPUs
// packed node by node. Every member finishes when the slowest does (the
// ranks synchronise in the exchange).
// - "alpha-beta": n-1 pairwise exchange steps in sequence (step k: send to
//   i+k, receive from i-k, as MPI's pairwise algorithm), each as long as the
//   larger of its two messages over their links; with even sizes exactly
//   the uniform all_to_all.
// - "nccl": grouped send/recv to every peer at once (as the uniform
//   all_to_all): the farthest peer's latency, then the bytes to and from the
//   peers inside the node and outside it, each over its own link, concurrently.
// Throws std::invalid_argument for a matrix that is not square or does not
// match `gpus`, or negative sizes.
double alltoallv_time(const HardwareProfile& hardware,
                      const std::vector<std::vector<double>>& send_bytes,
                      const std::vector<int>& gpus);

}  // namespace paralab::sim
