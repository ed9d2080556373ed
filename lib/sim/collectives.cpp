// Collective and point-to-point costs; see collectives.hpp. Every constant in
// the NCCL part is NCCL's (src/graph/tuning.cc at NVIDIA/nccl b6475625; env
// defaults from NCCL's documentation), in microseconds and GB/s as there.
#include "sim/collectives.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "sim/links.hpp"

namespace paralab::sim {
namespace {

enum Protocol { LL, LL128, Simple, kProtocols };
constexpr const char* kProtocolNames[kProtocols] = {"LL", "LL128", "Simple"};

// baseLat: the fixed cost of one collective call, per algorithm and protocol.
constexpr double kRingBaseLatUs[kProtocols] = {6.6, 14.0, 8.4};
constexpr double kTreeBaseLatUs[kProtocols] = {6.8, 14.0, 0};
// hwLat: the cost of one hop, NVLink (inside a node) and network (between nodes).
constexpr double kRingNvlinkLatUs[kProtocols] = {.6, 1.9, 3.4};
constexpr double kTreeNvlinkLatUs[kProtocols] = {.6, 1.25, 28};
constexpr double kRingNetLatUs[kProtocols] = {2.7, 4.0, 14.0};
constexpr double kTreeNetLatUs[kProtocols] = {5.0, 8.5, 28};
// Posting one network operation from an Intel host's proxy thread (getNetOverhead), x3 for Simple.
constexpr double kNetOverheadUs = 1.0;
// LL's bandwidth ceiling: Hopper inside a node; Intel hosts on 2 and on more nodes (llMaxBws).
constexpr double kLlMaxBwSingleNode = 87.7, kLlMaxBwTwoNodes = 39.0, kLlMaxBwMoreNodes = 20.4;
// NCCL_P2P_LL_THRESHOLD's default: point-to-point messages up to this use LL.
constexpr double kP2pLlThresholdBytes = 16384;

constexpr double kUs = 1e-6;
constexpr double kGBps = 1e9;

void validate(Collective kind, GroupShape g, double bytes) {
  if (g.ranks < 1) throw std::invalid_argument("collective_time: need at least 1 rank");
  if (g.nodes < 1 || g.nodes > g.ranks)
    throw std::invalid_argument("collective_time: " + std::to_string(g.ranks) +
                                " ranks cannot span " + std::to_string(g.nodes) + " nodes");
  if (!(bytes >= 0)) throw std::invalid_argument("collective_time: bytes must be >= 0");
  if (kind == Collective::send_recv && g.ranks != 2)
    throw std::invalid_argument("collective_time: a send-recv is between 2 ranks");
}

// The link a group's traffic is limited by: the network once it spans nodes.
const LinkModel& bottleneck(const HardwareProfile& hw, GroupShape g) {
  return g.nodes > 1 ? hw.inter_node : hw.intra_node;
}

CollectiveTime alpha_beta_time(const HardwareProfile& hw, Collective kind, GroupShape g,
                               double bytes) {
  const LinkModel& link = bottleneck(hw, g);
  double seconds = 0;
  switch (kind) {
    case Collective::send_recv:
      seconds = sendrecv_s(link, bytes);
      break;
    case Collective::all_reduce:
      seconds = ring_allreduce_s(link, g.ranks, bytes);
      break;
    case Collective::all_gather:
      seconds = ring_allgather_s(link, g.ranks, bytes);
      break;
    case Collective::reduce_scatter:
      seconds = ring_reduce_scatter_s(link, g.ranks, bytes);
      break;
    case Collective::all_to_all:
      seconds = alltoall_s(link, g.ranks, bytes);
      break;
  }
  return {seconds, "alpha-beta", ""};
}

double ll_max_bw(GroupShape g) {
  return g.nodes == 1 ? kLlMaxBwSingleNode : g.nodes == 2 ? kLlMaxBwTwoNodes : kLlMaxBwMoreNodes;
}

// The per-hop latency inside a node of a ring on more than one node: at least
// the proxy's cost of posting the network operation.
double ring_intra_lat_us(GroupShape g, int p) {
  double lat = kRingNvlinkLatUs[p];
  if (g.nodes > 1) lat = std::max(lat, kNetOverheadUs * (p == Simple ? 3 : 1));
  return lat;
}

// One ring collective on protocol p: NCCL's latency and algorithm bandwidth.
double ring_time_s(Collective kind, GroupShape g, int p, double link_gbps, double bytes) {
  const bool all_reduce = kind == Collective::all_reduce;
  const int steps = all_reduce ? 2 * (g.ranks - 1) : g.ranks - 1;
  const int inter_steps = all_reduce ? (g.nodes > 1 ? 2 * g.nodes : 0) : g.nodes - 1;
  const double ppn = double(g.ranks) / g.nodes;
  double bus = link_gbps;
  if (p == LL) bus = std::min(ll_max_bw(g), bus * (g.nodes > 1 || all_reduce ? 1.0 / 4 : 1.0 / 3));
  if (p == LL128) bus *= ppn < 2 ? 0.7 : 0.92;
  const double alg_bw = bus * g.ranks / steps;
  // NCCL counts 2 nodes' worth of network steps per all-reduce, which can
  // exceed the steps of a ring with one rank per node; no hop is negative.
  double lat = kRingBaseLatUs[p] + std::max(0, steps - inter_steps) * ring_intra_lat_us(g, p) +
               inter_steps * kRingNetLatUs[p];
  // "Plateau effect of ring" (ncclTopoGetAlgoTime).
  if (all_reduce && p == Simple && g.nodes > 1 && bytes >= g.ranks / 16.0 * 65536) lat *= 1.9;
  return lat * kUs + bytes / (alg_bw * kGBps);
}

// NCCL's tree all-reduce on protocol p (a chain inside each node, a binary
// tree between nodes).
double tree_time_s(GroupShape g, int p, double link_gbps, double bytes) {
  double bus = link_gbps * 0.92;
  if (p == LL) bus = std::min(bus / 3.8, ll_max_bw(g));
  if (p == LL128) bus *= g.nodes == 1 ? 7.0 / 9 : 120.0 / 128;
  const double alg_bw = bus * 0.5;
  const double ppn = double(g.ranks) / g.nodes;
  const double lat = kTreeBaseLatUs[p] + 2 * ((ppn - 1) * kTreeNvlinkLatUs[p] +
                                              std::log2(double(g.nodes)) * kTreeNetLatUs[p]);
  return lat * kUs + bytes / (alg_bw * kGBps);
}

// A point-to-point message is a single ring hop: LL up to the threshold, Simple above.
int p2p_protocol(double bytes) {
  return bytes <= kP2pLlThresholdBytes ? LL : Simple;
}

double p2p_latency_s(bool inter_node, int p) {
  const double hop =
      inter_node ? kRingNetLatUs[p] + kNetOverheadUs * (p == Simple ? 3 : 1) : kRingNvlinkLatUs[p];
  return (kRingBaseLatUs[p] + hop) * kUs;
}

// Bytes per second one message moves over `link` on protocol p (LL carries
// 8-byte lines of 4 data bytes and a flag, and is capped as for collectives).
double p2p_bandwidth(const LinkModel& link, bool inter_node, int p) {
  const double gbps = link.bandwidth_bytes_per_s() / kGBps;
  if (p != LL) return gbps * kGBps;
  const GroupShape g{2, inter_node ? 2 : 1};
  return std::min(ll_max_bw(g), gbps / (inter_node ? 4 : 3)) * kGBps;
}

CollectiveTime nccl_time(const HardwareProfile& hw, Collective kind, GroupShape g, double bytes) {
  const bool inter = g.nodes > 1;
  if (kind == Collective::send_recv) {
    const int p = p2p_protocol(bytes);
    const double t = p2p_latency_s(inter, p) + bytes / p2p_bandwidth(bottleneck(hw, g), inter, p);
    return {t, "p2p", kProtocolNames[p]};
  }
  if (kind == Collective::all_to_all) {
    // NCCL's grouped send/recv to every peer at once: the farthest peer's
    // latency, then the traffic to the peers inside the node and to those
    // outside it, each over its own link, concurrently.
    const double ppn = std::ceil(double(g.ranks) / g.nodes);  // the fullest node
    const double per_peer = bytes / g.ranks;
    const int p = p2p_protocol(per_peer);
    const double intra = (ppn - 1) * per_peer / p2p_bandwidth(hw.intra_node, false, p);
    const double outside =
        inter ? (g.ranks - ppn) * per_peer / p2p_bandwidth(hw.inter_node, true, p) : 0;
    return {p2p_latency_s(inter, p) + std::max(intra, outside), "p2p", kProtocolNames[p]};
  }
  const double link_gbps = bottleneck(hw, g).bandwidth_bytes_per_s() / kGBps;
  CollectiveTime best{std::numeric_limits<double>::infinity(), "", ""};
  for (int p = 0; p < kProtocols; ++p) {
    const double ring = ring_time_s(kind, g, p, link_gbps, bytes);
    if (ring < best.seconds) best = {ring, "ring", kProtocolNames[p]};
    if (kind == Collective::all_reduce) {
      const double tree = tree_time_s(g, p, link_gbps, bytes);
      if (tree < best.seconds) best = {tree, "tree", kProtocolNames[p]};
    }
  }
  return best;
}

}  // namespace

std::string_view collective_name(Collective kind) {
  switch (kind) {
    case Collective::send_recv:
      return "send-recv";
    case Collective::all_reduce:
      return "all-reduce";
    case Collective::all_gather:
      return "all-gather";
    case Collective::reduce_scatter:
      return "reduce-scatter";
    case Collective::all_to_all:
      return "all-to-all";
  }
  return "?";
}

namespace {

// One member's grouped send/recv on NCCL (see nccl_time's all_to_all).
double nccl_alltoallv_member_s(const HardwareProfile& hw, const std::vector<std::vector<double>>& b,
                               const std::vector<int>& gpus, size_t i) {
  double intra_out = 0, intra_in = 0, inter_out = 0, inter_in = 0, largest = 0;
  bool crosses = false;
  for (size_t j = 0; j < b.size(); ++j) {
    if (j == i) continue;
    const bool inter = pair_group(hw, gpus[i], gpus[j]).nodes > 1;
    crosses |= inter;
    (inter ? inter_out : intra_out) += b[i][j];
    (inter ? inter_in : intra_in) += b[j][i];
    largest = std::max({largest, b[i][j], b[j][i]});
  }
  const int p = p2p_protocol(largest);
  const double intra = std::max(intra_out, intra_in) / p2p_bandwidth(hw.intra_node, false, p);
  const double outside =
      crosses ? std::max(inter_out, inter_in) / p2p_bandwidth(hw.inter_node, true, p) : 0;
  return p2p_latency_s(crosses, p) + std::max(intra, outside);
}

// One member's n-1 pairwise steps on alpha-beta links.
double pairwise_alltoallv_member_s(const HardwareProfile& hw,
                                   const std::vector<std::vector<double>>& b,
                                   const std::vector<int>& gpus, size_t i) {
  const size_t n = b.size();
  double t = 0;
  for (size_t k = 1; k < n; ++k) {
    const size_t to = (i + k) % n, from = (i + n - k) % n;
    t += std::max(hw.link_between(gpus[i], gpus[to]).time(b[i][to]),
                  hw.link_between(gpus[from], gpus[i]).time(b[from][i]));
  }
  return t;
}

}  // namespace

double alltoallv_time(const HardwareProfile& hw, const std::vector<std::vector<double>>& send_bytes,
                      const std::vector<int>& gpus) {
  const size_t n = send_bytes.size();
  if (gpus.size() != n)
    throw std::invalid_argument("alltoallv_time: " + std::to_string(n) + " rows for " +
                                std::to_string(gpus.size()) + " GPUs");
  for (const auto& row : send_bytes) {
    if (row.size() != n) throw std::invalid_argument("alltoallv_time: the matrix is not square");
    for (double b : row)
      if (!(b >= 0)) throw std::invalid_argument("alltoallv_time: bytes must be >= 0");
  }
  double slowest = 0;
  for (size_t i = 0; i < n && n > 1; ++i)
    slowest = std::max(slowest, hw.comm_library == "nccl"
                                    ? nccl_alltoallv_member_s(hw, send_bytes, gpus, i)
                                    : pairwise_alltoallv_member_s(hw, send_bytes, gpus, i));
  return slowest;
}

GroupShape strided_group(const HardwareProfile& hw, int ranks, int stride) {
  if (ranks < 1 || stride < 1)
    throw std::invalid_argument("strided_group: ranks and stride must be positive");
  const int last_gpu = (ranks - 1) * stride;
  return {ranks, std::min(last_gpu / hw.gpus_per_node + 1, ranks)};
}

GroupShape pair_group(const HardwareProfile& hw, int gpu_a, int gpu_b) {
  return {2, gpu_a / hw.gpus_per_node == gpu_b / hw.gpus_per_node ? 1 : 2};
}

CollectiveTime collective_time(const HardwareProfile& hw, Collective kind, GroupShape group,
                               double bytes) {
  validate(kind, group, bytes);
  if (group.ranks == 1) return {0, "none", ""};  // one rank: nothing moves
  if (hw.comm_library == "nccl") return nccl_time(hw, kind, group, bytes);
  return alpha_beta_time(hw, kind, group, bytes);
}

}  // namespace paralab::sim
