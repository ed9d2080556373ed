// Building a program: every operation's arguments are checked as it is added,
// so a planner's mistake fails where it is made, not in the player.
#include "schedule/program.hpp"

#include <algorithm>
#include <cmath>
#include <set>
#include <stdexcept>
#include <utility>

namespace paralab::schedule {
namespace {

[[noreturn]] void fail(const std::string& message) {
  throw std::invalid_argument("schedule: " + message);
}

Op make_op(OpKind kind, std::string label, std::vector<OpId> after, OpRef ref) {
  Op op;
  op.kind = kind;
  op.label = std::move(label);
  op.after = std::move(after);
  op.ref = ref;
  return op;
}

}  // namespace

Program::Program(int ranks) {
  if (ranks < 1) fail("a program needs at least 1 rank");
  ops_.resize(static_cast<size_t>(ranks));
  for (int r = 0; r < ranks; ++r) gpus_.push_back(r);
}

void Program::check_rank(int rank, const std::string& what) const {
  if (rank < 0 || rank >= ranks())
    fail(what + ": rank " + std::to_string(rank) + " is not in [0, " + std::to_string(ranks()) +
         ")");
}

void Program::place(std::vector<int> gpu_of_rank) {
  if (gpu_of_rank.size() != ops_.size())
    fail("place: " + std::to_string(gpu_of_rank.size()) + " GPUs for " + std::to_string(ranks()) +
         " ranks");
  if (std::set<int>(gpu_of_rank.begin(), gpu_of_rank.end()).size() != gpu_of_rank.size() ||
      *std::min_element(gpu_of_rank.begin(), gpu_of_rank.end()) < 0)
    fail("place: GPUs must be distinct and non-negative");
  gpus_ = std::move(gpu_of_rank);
}

int Program::add_group(std::vector<int> ranks, std::string name) {
  if (ranks.empty()) fail("group '" + name + "' has no ranks");
  for (int r : ranks) check_rank(r, "group '" + name + "'");
  if (std::set<int>(ranks.begin(), ranks.end()).size() != ranks.size())
    fail("group '" + name + "' lists a rank twice");
  groups_.push_back({std::move(ranks), std::move(name)});
  return group_count() - 1;
}

const Group& Program::group(int index) const {
  if (index < 0 || index >= group_count()) fail("no group " + std::to_string(index));
  return groups_[static_cast<size_t>(index)];
}

const std::vector<Op>& Program::ops(int rank) const {
  check_rank(rank, "ops");
  return ops_[static_cast<size_t>(rank)];
}

OpId Program::push(int rank, Op op) {
  check_rank(rank, op.label);
  const OpId id = ops_[static_cast<size_t>(rank)].size();
  auto check_earlier = [&](OpId dep, const char* what) {
    if (dep >= id)
      fail(op.label + " on rank " + std::to_string(rank) + ": " + what + " " + std::to_string(dep) +
           " is not an earlier operation");
  };
  for (OpId dep : op.after) check_earlier(dep, "dependency");
  if (op.beside != kNoOp) {
    check_earlier(op.beside, "'beside'");
    const OpKind kind = ops_[static_cast<size_t>(rank)][op.beside].kind;
    if (kind != OpKind::send && kind != OpKind::collective)
      fail(op.label + ": 'beside' must name a send or a collective");
  }
  if (!(op.bytes >= 0) || !std::isfinite(op.bytes)) fail(op.label + ": bytes must be >= 0");
  ops_[static_cast<size_t>(rank)].push_back(std::move(op));
  return id;
}

OpId Program::compute(int rank, std::string label, ComputeCost cost, std::vector<OpId> after,
                      OpRef ref, OpId beside) {
  for (double v : {cost.flops, cost.bytes, cost.seconds})
    if (!(v >= 0) || !std::isfinite(v)) fail(label + ": costs must be finite and >= 0");
  if (cost.calls < 1) fail(label + ": an operation makes at least one kernel call");
  Op op = make_op(OpKind::compute, std::move(label), std::move(after), ref);
  op.cost = cost;
  op.beside = beside;
  return push(rank, std::move(op));
}

OpId Program::send(int rank, int peer, double bytes, int tag, std::vector<OpId> after, OpRef ref,
                   std::string label) {
  check_rank(peer, label + "'s peer");
  if (peer == rank) fail(label + ": rank " + std::to_string(rank) + " sends to itself");
  Op op = make_op(OpKind::send, std::move(label), std::move(after), ref);
  op.peer = peer;
  op.tag = tag;
  op.bytes = bytes;
  return push(rank, std::move(op));
}

OpId Program::recv(int rank, int peer, double bytes, int tag, std::vector<OpId> after, OpRef ref,
                   std::string label) {
  check_rank(peer, label + "'s peer");
  if (peer == rank) fail(label + ": rank " + std::to_string(rank) + " receives from itself");
  Op op = make_op(OpKind::recv, std::move(label), std::move(after), ref);
  op.peer = peer;
  op.tag = tag;
  op.bytes = bytes;
  return push(rank, std::move(op));
}

OpId Program::collective(int rank, int group_index, sim::Collective kind, double bytes,
                         std::vector<OpId> after, OpRef ref, std::string label) {
  const Group& g = group(group_index);
  if (label.empty()) label = std::string(sim::collective_name(kind));
  if (kind == sim::Collective::send_recv) fail(label + ": a send-recv is a send and a recv");
  if (std::find(g.ranks.begin(), g.ranks.end(), rank) == g.ranks.end())
    fail(label + ": rank " + std::to_string(rank) + " is not in group '" + g.name + "'");
  Op op = make_op(OpKind::collective, std::move(label), std::move(after), ref);
  op.group = group_index;
  op.collective = kind;
  op.bytes = bytes;
  return push(rank, std::move(op));
}

OpId Program::alltoallv(int rank, int group_index, std::vector<double> peer_bytes,
                        std::vector<OpId> after, OpRef ref, std::string label) {
  const Group& g = group(group_index);
  if (peer_bytes.size() != g.ranks.size())
    fail(label + ": " + std::to_string(peer_bytes.size()) + " sizes for group '" + g.name +
         "' of " + std::to_string(g.ranks.size()) + " ranks");
  double total = 0;
  for (double b : peer_bytes) {
    if (!(b >= 0) || !std::isfinite(b)) fail(label + ": bytes must be >= 0");
    total += b;
  }
  const OpId id = collective(rank, group_index, sim::Collective::all_to_all, total,
                             std::move(after), ref, std::move(label));
  ops_[static_cast<size_t>(rank)][id].peer_bytes = std::move(peer_bytes);
  return id;
}

void Program::set_fixed_seconds(int rank, OpId id, double seconds) {
  check_rank(rank, "set_fixed_seconds");
  if (id >= ops(rank).size()) fail("set_fixed_seconds: no operation " + std::to_string(id));
  Op& op = ops_[static_cast<size_t>(rank)][id];
  if (op.kind != OpKind::send && op.kind != OpKind::collective)
    fail(op.label + ": only a send or a collective takes a fixed time");
  if (!(seconds >= 0) || !std::isfinite(seconds)) fail(op.label + ": seconds must be >= 0");
  op.fixed_seconds = seconds;
}

OpId Program::wait(int rank, std::vector<OpId> ops, OpRef ref, std::string label) {
  return push(rank, make_op(OpKind::wait, std::move(label), std::move(ops), ref));
}

}  // namespace paralab::schedule
