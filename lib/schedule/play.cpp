// The simulate executor; see play.hpp. Passes over the program: one
// timeline task per operation in each rank's issue order (so each stream
// keeps its order), receives matched to their sends, dependencies wired
// (explicit ones and the host's blocking waits), collectives joined; a
// first pass matches the collectives and prices them.
#include "schedule/play.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>
#include <tuple>

namespace paralab::schedule {
namespace {

using sim::Resource;
using sim::TaskId;
constexpr TaskId kNoTask = static_cast<TaskId>(-1);

[[noreturn]] void fail(const std::string& message) {
  throw std::invalid_argument("schedule: " + message);
}

std::string where(const Op& op, int rank, OpId id) {
  return "'" + op.label + "' (rank " + std::to_string(rank) + ", operation " + std::to_string(id) +
         ")";
}

class Player {
 public:
  Player(const Program& program, const sim::HardwareProfile& hw, const PlayOptions& options,
         sim::Timeline& timeline, std::vector<std::vector<TaskId>>& tasks)
      : p_(program),
        hw_(hw),
        options_(options),
        model_(sim::compute_model(hw, options.precision)),
        timeline_(timeline),
        tasks_(tasks),
        host_(timeline.add_resource("host", sim::ResourceKind::compute)) {}

  void run() {
    match_collectives();
    add_tasks();
    match_messages();
    wire_dependencies();
    join_collectives();
    timeline_.run();
  }

 private:
  double comm_seconds(int rank, const Op& op) const {
    if (op.fixed_seconds >= 0) return op.fixed_seconds;
    if (op.kind == OpKind::send)
      return sim::collective_time(hw_, sim::Collective::send_recv,
                                  sim::pair_group(hw_, p_.gpu(rank), p_.gpu(op.peer)), op.bytes)
          .seconds;
    std::set<int> nodes;
    const Group& g = p_.group(op.group);
    for (int r : g.ranks) nodes.insert(p_.gpu(r) / hw_.gpus_per_node);
    const sim::GroupShape shape{int(g.ranks.size()), int(nodes.size())};
    return sim::collective_time(hw_, op.collective, shape, op.bytes).seconds;
  }

  // Pass 1: a task per operation (receives get theirs in pass 2).
  void add_tasks() {
    for (int r = 0; r < p_.ranks(); ++r) {
      const std::vector<Op>& ops = p_.ops(r);
      std::vector<TaskId>& tasks = tasks_[r];
      std::vector<double> overlap_left(ops.size(), 0.0);  // per transfer
      for (OpId i = 0; i < ops.size(); ++i) {
        const Op& op = ops[i];
        switch (op.kind) {
          case OpKind::compute: {
            double t = compute_seconds(op.cost, model_);
            if (op.beside != kNoOp) {
              // While the transfer runs, the kernels beside it get 1 - slowdown
              // of the GPU; they share the transfer's time in issue order.
              const double slowdown = hw_.comm_compute_slowdown;
              const double covered = std::min(t, overlap_left[op.beside]);
              overlap_left[op.beside] -= covered;
              t += covered * slowdown / (1 - slowdown);
            }
            tasks.push_back(timeline_.add(r, Resource::compute, t, {}, op.label));
            break;
          }
          case OpKind::send:
          case OpKind::collective:
            overlap_left[i] = op.kind == OpKind::send ? comm_seconds(r, op) : collective_s_[r][i];
            tasks.push_back(timeline_.add(r, Resource::comm, overlap_left[i], {}, op.label));
            break;
          case OpKind::wait:
            tasks.push_back(timeline_.add(r, host_, 0, {}, op.label));
            break;
          case OpKind::recv:
            tasks.push_back(kNoTask);
            break;
        }
      }
    }
  }

  // Pass 2: the n-th receive from a peer with a tag takes the n-th such send.
  void match_messages() {
    std::map<std::tuple<int, int, int>, std::vector<OpId>> sends;  // (from, to, tag)
    for (int r = 0; r < p_.ranks(); ++r)
      for (OpId i = 0; i < p_.ops(r).size(); ++i)
        if (const Op& op = p_.op(r, i); op.kind == OpKind::send)
          sends[{r, op.peer, op.tag}].push_back(i);
    std::map<std::tuple<int, int, int>, size_t> taken;
    for (int r = 0; r < p_.ranks(); ++r)
      for (OpId i = 0; i < p_.ops(r).size(); ++i) {
        const Op& op = p_.op(r, i);
        if (op.kind != OpKind::recv) continue;
        const auto key = std::make_tuple(op.peer, r, op.tag);
        const std::vector<OpId>& candidates = sends[key];
        const size_t n = taken[key]++;
        if (n >= candidates.size())
          fail(where(op, r, i) + " has no matching send from rank " + std::to_string(op.peer) +
               " with tag " + std::to_string(op.tag));
        const Op& send = p_.op(op.peer, candidates[n]);
        if (send.bytes != op.bytes)
          fail(where(op, r, i) + " expects " + std::to_string(op.bytes) + " bytes, " +
               where(send, op.peer, candidates[n]) + " sends " + std::to_string(send.bytes));
        tasks_[r][i] = tasks_[op.peer][candidates[n]];
      }
    for (const auto& [key, candidates] : sends)
      if (taken[key] < candidates.size()) {
        const int from = std::get<0>(key);
        const OpId id = candidates[taken[key]];
        fail(where(p_.op(from, id), from, id) + " has no matching receive on rank " +
             std::to_string(std::get<1>(key)));
      }
  }

  // Pass 3: each operation waits for what it lists and for the host's last
  // blocking point (a wait; with compute_blocks_host, a compute operation).
  // A receive's dependencies hold back its send's transfer: the rendezvous.
  void wire_dependencies() {
    for (int r = 0; r < p_.ranks(); ++r) {
      TaskId host_blocked_until = kNoTask;
      for (OpId i = 0; i < p_.ops(r).size(); ++i) {
        const Op& op = p_.op(r, i);
        const TaskId task = tasks_[r][i];
        for (OpId dep : op.after) timeline_.add_dep(task, tasks_[r][dep]);
        if (host_blocked_until != kNoTask) timeline_.add_dep(task, host_blocked_until);
        if (op.kind == OpKind::wait || (op.kind == OpKind::compute && options_.compute_blocks_host))
          host_blocked_until = task;
      }
    }
  }

  // Pass 0: the n-th collective of a group on each of its ranks is one
  // collective; each gets its duration (an alltoallv's from every member's sizes).
  void match_collectives() {
    collective_s_.resize(static_cast<size_t>(p_.ranks()));
    for (int r = 0; r < p_.ranks(); ++r) collective_s_[r].assign(p_.ops(r).size(), 0.0);
    for (int g = 0; g < p_.group_count(); ++g) {
      const Group& group = p_.group(g);
      std::vector<std::vector<OpId>> issued(group.ranks.size());  // per member
      for (size_t m = 0; m < group.ranks.size(); ++m)
        for (OpId i = 0; i < p_.ops(group.ranks[m]).size(); ++i)
          if (const Op& op = p_.op(group.ranks[m], i);
              op.kind == OpKind::collective && op.group == g)
            issued[m].push_back(i);
      for (size_t m = 1; m < issued.size(); ++m)
        if (issued[m].size() != issued[0].size())
          fail("group '" + group.name + "': rank " + std::to_string(group.ranks[m]) + " issues " +
               std::to_string(issued[m].size()) + " collectives, rank " +
               std::to_string(group.ranks[0]) + " " + std::to_string(issued[0].size()));
      for (size_t n = 0; n < issued[0].size(); ++n) {
        std::vector<std::pair<int, OpId>> members;
        for (size_t m = 0; m < issued.size(); ++m)
          members.emplace_back(group.ranks[m], issued[m][n]);
        check_instance(group, members);
        const double seconds = instance_seconds(members);
        for (const auto& [rank, op] : members) collective_s_[rank][op] = seconds;
        instances_.push_back(std::move(members));
      }
    }
  }

  void check_instance(const Group& group, const std::vector<std::pair<int, OpId>>& members) const {
    const auto [r0, i0] = members.front();
    const Op& first = p_.op(r0, i0);
    for (const auto& [rank, id] : members) {
      const Op& op = p_.op(rank, id);
      const bool uneven = !op.peer_bytes.empty();
      if (op.collective != first.collective || uneven != !first.peer_bytes.empty() ||
          (!uneven && op.bytes != first.bytes) || op.fixed_seconds != first.fixed_seconds)
        fail("group '" + group.name + "': " + where(op, rank, id) + " meets " +
             where(first, r0, i0) + ", a different collective or size");
    }
  }

  double instance_seconds(const std::vector<std::pair<int, OpId>>& members) const {
    const auto [r0, i0] = members.front();
    const Op& first = p_.op(r0, i0);
    if (first.peer_bytes.empty() || first.fixed_seconds >= 0) return comm_seconds(r0, first);
    std::vector<std::vector<double>> bytes;
    std::vector<int> gpus;
    for (const auto& [rank, id] : members) {
      bytes.push_back(p_.op(rank, id).peer_bytes);
      gpus.push_back(p_.gpu(rank));
    }
    return sim::alltoallv_time(hw_, bytes, gpus);
  }

  // Pass 4: each matched collective's tasks start together.
  void join_collectives() {
    for (const auto& members : instances_) {
      std::vector<TaskId> tasks;
      for (const auto& [rank, op] : members) tasks.push_back(tasks_[rank][op]);
      timeline_.join(tasks);
    }
  }

  const Program& p_;
  const sim::HardwareProfile& hw_;
  const PlayOptions& options_;
  sim::ComputeModel model_;
  sim::Timeline& timeline_;
  std::vector<std::vector<TaskId>>& tasks_;
  Resource host_;  // zero-length tasks that mark where a rank's host waits
  std::vector<std::vector<double>> collective_s_;             // [rank][op]
  std::vector<std::vector<std::pair<int, OpId>>> instances_;  // each collective's (rank, op)
};

}  // namespace

double compute_seconds(const ComputeCost& cost, const sim::ComputeModel& model) {
  const double more_calls = std::max(0, cost.calls - 1) * model.kernel_overhead_s;
  switch (cost.work) {
    case Work::attention:
      return more_calls + model.attention_s(cost.flops, cost.shape, cost.bytes);
    case Work::gemm:
      return more_calls + model.gemm_s(cost.flops, cost.bytes);
    case Work::memory:
      return more_calls + model.memory_s(cost.bytes);
    case Work::fixed:
      return cost.seconds;
  }
  return 0;
}

const sim::TaskRecord& Played::record(int rank, OpId op) const {
  return timeline_.task(tasks_.at(static_cast<size_t>(rank)).at(op));
}

Played play(const Program& program, const sim::HardwareProfile& hardware,
            const PlayOptions& options) {
  Played played(program.ranks());
  played.tasks_.resize(static_cast<size_t>(program.ranks()));
  Player(program, hardware, options, played.timeline_, played.tasks_).run();
  return played;
}

}  // namespace paralab::schedule
