// timeline.cpp: the timeline's bookkeeping, its longest-path run and the
// queries over the result.
#include "sim/timeline.hpp"

#include <algorithm>
#include <cmath>
#include <deque>
#include <set>
#include <stdexcept>
#include <utility>

namespace paralab::sim {
namespace {

using Interval = std::pair<double, double>;

// Sorted, disjoint union of intervals (zero-length ones dropped).
std::vector<Interval> merge(std::vector<Interval> intervals) {
  std::sort(intervals.begin(), intervals.end());
  std::vector<Interval> merged;
  for (const auto& [start, end] : intervals) {
    if (end <= start) continue;
    if (!merged.empty() && start <= merged.back().second)
      merged.back().second = std::max(merged.back().second, end);
    else
      merged.emplace_back(start, end);
  }
  return merged;
}

double length(const std::vector<Interval>& intervals) {
  double total = 0;
  for (const auto& [start, end] : intervals) total += end - start;
  return total;
}

// Length of the intersection of two sorted, disjoint unions.
double overlap(const std::vector<Interval>& a, const std::vector<Interval>& b) {
  double total = 0;
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    const double lo = std::max(a[i].first, b[j].first);
    const double hi = std::min(a[i].second, b[j].second);
    if (hi > lo) total += hi - lo;
    // Advance whichever interval ends first; the other may overlap the next.
    (a[i].second < b[j].second) ? ++i : ++j;
  }
  return total;
}

}  // namespace

Timeline::Timeline(int ranks) : ranks_(ranks) {
  if (ranks < 1) throw std::invalid_argument("Timeline: need at least 1 rank");
  resources_ = {{"compute", ResourceKind::compute}, {"comm", ResourceKind::comm}};
  stream_last_.assign(static_cast<size_t>(ranks), std::vector<TaskId>(resources_.size(), kNone));
}

Resource Timeline::add_resource(std::string name, ResourceKind kind) {
  for (const auto& existing : resources_)
    if (existing.name == name)
      throw std::invalid_argument("Timeline: resource '" + name + "' already exists");
  resources_.push_back({std::move(name), kind});
  for (auto& streams : stream_last_) streams.push_back(kNone);
  return static_cast<Resource>(resources_.size() - 1);
}

const std::string& Timeline::resource_name(Resource resource) const {
  check_resource(resource);
  return resources_[static_cast<size_t>(resource)].name;
}

ResourceKind Timeline::resource_kind(Resource resource) const {
  check_resource(resource);
  return resources_[static_cast<size_t>(resource)].kind;
}

void Timeline::check_rank(int rank) const {
  if (rank < 0 || rank >= ranks_)
    throw std::invalid_argument("Timeline: rank " + std::to_string(rank) + " out of range [0, " +
                                std::to_string(ranks_) + ")");
}

void Timeline::check_resource(Resource resource) const {
  const int index = static_cast<int>(resource);
  if (index < 0 || index >= resource_count())
    throw std::invalid_argument("Timeline: unknown resource index " + std::to_string(index));
}

void Timeline::check_task(TaskId id, std::string_view what) const {
  if (id >= tasks_.size())
    throw std::invalid_argument("Timeline: " + std::string(what) + " " + std::to_string(id) +
                                " is not a task (there are " + std::to_string(tasks_.size()) + ")");
}

void Timeline::check_ran() const {
  if (!ran_) throw std::logic_error("Timeline: call run() before asking for results");
}

TaskId Timeline::push_task(int rank, Resource resource, double duration_s, std::vector<TaskId> deps,
                           std::string label, std::size_t group) {
  check_rank(rank);
  check_resource(resource);
  if (!(duration_s >= 0) || !std::isfinite(duration_s))
    throw std::invalid_argument("Timeline: task '" + label +
                                "' needs a finite duration >= 0, got " +
                                std::to_string(duration_s));
  for (TaskId dep : deps) check_task(dep, "dependency of '" + label + "'");
  const TaskId id = tasks_.size();
  TaskId& last = stream_last_[static_cast<size_t>(rank)][static_cast<size_t>(resource)];
  tasks_.push_back(Task{TaskRecord{id, rank, resource, std::move(label), duration_s, 0, 0},
                        std::move(deps), last, group});
  last = id;
  ran_ = false;
  return id;
}

TaskId Timeline::add(int rank, Resource resource, double duration_s, std::vector<TaskId> deps,
                     std::string label) {
  return push_task(rank, resource, duration_s, std::move(deps), std::move(label), kNone);
}

void Timeline::add_dep(TaskId task, TaskId dep) {
  check_task(task, "task");
  check_task(dep, "dependency");
  tasks_[task].deps.push_back(dep);
  ran_ = false;
}

std::vector<TaskId> Timeline::add_collective(std::span<const int> ranks, Resource resource,
                                             double duration_s, std::vector<TaskId> deps,
                                             std::string label) {
  if (ranks.empty())
    throw std::invalid_argument("Timeline: collective '" + label + "' has no ranks");
  std::set<int> seen;
  for (int rank : ranks) {
    check_rank(rank);
    if (!seen.insert(rank).second)
      throw std::invalid_argument("Timeline: collective '" + label + "' lists rank " +
                                  std::to_string(rank) + " twice");
  }
  const size_t group = groups_.size();
  groups_.emplace_back();
  for (int rank : ranks)
    groups_[group].push_back(push_task(rank, resource, duration_s, deps, label, group));
  return groups_[group];
}

void Timeline::join(std::span<const TaskId> tasks) {
  if (tasks.empty()) throw std::invalid_argument("Timeline: join needs tasks");
  std::set<int> seen;
  for (TaskId t : tasks) {
    check_task(t, "task to join");
    if (tasks_[t].group != kNone)
      throw std::invalid_argument("Timeline: " + describe(t) + " is already in a collective");
    if (!seen.insert(tasks_[t].record.rank).second)
      throw std::invalid_argument("Timeline: a collective has two tasks on rank " +
                                  std::to_string(tasks_[t].record.rank));
  }
  const size_t group = groups_.size();
  groups_.emplace_back(tasks.begin(), tasks.end());
  for (TaskId t : tasks) tasks_[t].group = group;
  ran_ = false;
}

std::vector<TaskId> Timeline::predecessors(TaskId id) const {
  std::vector<TaskId> preds = tasks_[id].deps;
  if (tasks_[id].stream_prev != kNone) preds.push_back(tasks_[id].stream_prev);
  return preds;
}

TaskId Timeline::node_of(TaskId id) const {
  return tasks_[id].group == kNone ? id : groups_[tasks_[id].group].front();
}

std::vector<TaskId> Timeline::node_members(TaskId rep) const {
  return tasks_[rep].group == kNone ? std::vector<TaskId>{rep} : groups_[tasks_[rep].group];
}

std::string Timeline::describe(TaskId id) const {
  const TaskRecord& r = tasks_[id].record;
  return "'" + r.label + "' (task " + std::to_string(id) + ", rank " + std::to_string(r.rank) +
         ", " + resources_[static_cast<size_t>(r.resource)].name + ")";
}

void Timeline::run() {
  // A collective's members move together: each group is one node of the
  // graph, represented by its first member; other tasks are their own node.
  const size_t n = tasks_.size();
  std::vector<TaskId> node(n);
  for (TaskId t = 0; t < n; ++t) node[t] = node_of(t);

  std::vector<size_t> remaining(n, 0);             // unfinished predecessor edges per node
  std::vector<std::vector<TaskId>> successors(n);  // task -> nodes waiting on it
  for (TaskId t = 0; t < n; ++t)
    for (TaskId pred : predecessors(t)) {
      ++remaining[node[t]];
      successors[pred].push_back(node[t]);
    }

  std::vector<double> ready_s(n, 0);
  std::deque<TaskId> queue;
  for (TaskId t = 0; t < n; ++t)
    if (node[t] == t && remaining[t] == 0) queue.push_back(t);
  size_t done = 0;
  while (!queue.empty()) {
    const TaskId rep = queue.front();
    queue.pop_front();
    for (TaskId m : node_members(rep)) {
      TaskRecord& r = tasks_[m].record;
      r.start_s = ready_s[rep];
      r.end_s = r.start_s + r.duration_s;
      ++done;
      for (TaskId succ : successors[m]) {
        ready_s[succ] = std::max(ready_s[succ], r.end_s);
        if (--remaining[succ] == 0) queue.push_back(succ);
      }
    }
  }
  if (done != n) report_cycle(remaining);
  ran_ = true;
}

void Timeline::report_cycle(const std::vector<std::size_t>& remaining) const {
  // Every unfinished node waits on some unfinished task; following those
  // waits from any unfinished node must come back to a node already seen.
  TaskId current = 0;
  while (remaining[node_of(current)] == 0) ++current;
  current = node_of(current);
  std::vector<TaskId> path;
  while (std::find(path.begin(), path.end(), current) == path.end()) {
    path.push_back(current);
    TaskId next = current;
    for (TaskId m : node_members(current))
      for (TaskId pred : predecessors(m))
        if (remaining[node_of(pred)] != 0) next = node_of(pred);
    current = next;
  }
  std::string message = "Timeline: dependency cycle (the schedule would deadlock): ";
  auto start = std::find(path.begin(), path.end(), current);
  for (auto it = start; it != path.end(); ++it) message += describe(*it) + " waits on ";
  message += describe(current);
  throw std::logic_error(message);
}

double Timeline::makespan_s() const {
  check_ran();
  double end_s = 0;
  for (const auto& t : tasks_) end_s = std::max(end_s, t.record.end_s);
  return end_s;
}

double Timeline::rank_finish_s(int rank) const {
  check_ran();
  check_rank(rank);
  double end_s = 0;
  for (const auto& t : tasks_)
    if (t.record.rank == rank) end_s = std::max(end_s, t.record.end_s);
  return end_s;
}

double Timeline::busy_s(int rank, Resource resource) const {
  check_ran();
  check_rank(rank);
  check_resource(resource);
  // One task at a time per resource, so durations never overlap: sum them.
  double total = 0;
  for (const auto& t : tasks_)
    if (t.record.rank == rank && t.record.resource == resource) total += t.record.duration_s;
  return total;
}

double Timeline::exposed_comm_s(int rank) const {
  check_ran();
  check_rank(rank);
  std::vector<Interval> comm, compute;
  for (const auto& t : tasks_) {
    if (t.record.rank != rank) continue;
    const bool is_comm = resource_kind(t.record.resource) == ResourceKind::comm;
    (is_comm ? comm : compute).emplace_back(t.record.start_s, t.record.end_s);
  }
  const auto comm_union = merge(std::move(comm));
  return length(comm_union) - overlap(comm_union, merge(std::move(compute)));
}

const TaskRecord& Timeline::task(TaskId id) const {
  check_ran();
  check_task(id, "task");
  return tasks_[id].record;
}

std::vector<TaskRecord> Timeline::trace() const {
  check_ran();
  std::vector<TaskRecord> records;
  records.reserve(tasks_.size());
  for (const auto& t : tasks_) records.push_back(t.record);
  std::stable_sort(records.begin(), records.end(),
                   [](const TaskRecord& a, const TaskRecord& b) { return a.start_s < b.start_s; });
  return records;
}

}  // namespace paralab::sim
