// timeline.hpp: a discrete-event timeline of tasks on the resources of ranks.
//
// Each rank has the same set of resources ("compute" and "comm" by default;
// add more, e.g. a second comm stream). A resource runs one task at a time
// in the order tasks were added to it, as a CUDA stream does: a task starts
// when its resource has finished the task added before it and all its
// dependencies have finished. Dependencies may cross ranks (a receive that
// waits for the peer's send is a dependency on that send). A synchronising
// collective is a group of tasks, one per participant, that all start at the
// latest of their ready times.
//
// Because resources never reorder their tasks, run() is a longest-path pass
// over the dependency graph in topological order; it reports cycles (a
// schedule that would deadlock) with the tasks on the cycle.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace paralab::sim {

using TaskId = std::size_t;

// An index into the timeline's resources; compute and comm always exist.
enum class Resource : int { compute = 0, comm = 1 };

// Whether a resource's busy time counts as computation or communication in
// exposed_comm_s().
enum class ResourceKind { compute, comm };

struct TaskRecord {
  TaskId id = 0;
  int rank = 0;
  Resource resource = Resource::compute;
  std::string label;
  double duration_s = 0;
  double start_s = 0;  // valid after run()
  double end_s = 0;    // valid after run()
};

class Timeline {
 public:
  explicit Timeline(int ranks);

  // Another resource on every rank, e.g. add_resource("comm_inter", ResourceKind::comm).
  Resource add_resource(std::string name, ResourceKind kind);
  int ranks() const { return ranks_; }
  int resource_count() const { return static_cast<int>(resources_.size()); }
  const std::string& resource_name(Resource resource) const;
  ResourceKind resource_kind(Resource resource) const;

  // A task on `rank`'s `resource`, issued after the tasks already there.
  // Throws std::invalid_argument for a bad rank or resource, a negative or
  // non-finite duration, or a dependency that is not an existing task.
  TaskId add(int rank, Resource resource, double duration_s, std::vector<TaskId> deps = {},
             std::string label = "");

  // A dependency added after both tasks exist: lets a schedule be built rank
  // by rank and wired afterwards (rank 0's receive before rank N-1's send).
  void add_dep(TaskId task, TaskId dep);

  // A synchronising collective: one task per rank in `ranks` (distinct), each
  // on `resource` with `duration_s` and the shared `deps`; all of them start
  // at the latest of their ready times. Returns the tasks in `ranks` order.
  std::vector<TaskId> add_collective(std::span<const int> ranks, Resource resource,
                                     double duration_s, std::vector<TaskId> deps = {},
                                     std::string label = "");

  // Makes tasks already added, on distinct ranks and in no collective yet, a
  // synchronising collective: they start together at the latest of their
  // ready times. Lets a program add each rank's part in that rank's order.
  void join(std::span<const TaskId> tasks);

  // Computes every task's start and end. Throws std::logic_error naming the
  // tasks of a dependency cycle. Adding tasks afterwards needs another run().
  void run();

  // Results of run(); calling them before run() throws std::logic_error.
  double makespan_s() const;
  double rank_finish_s(int rank) const;
  double busy_s(int rank, Resource resource) const;
  // Time during which some comm-kind resource of `rank` is busy and no
  // compute-kind resource of it is: communication that overlap did not hide.
  double exposed_comm_s(int rank) const;
  const TaskRecord& task(TaskId id) const;
  // Every task, sorted by start time (then id), for plotting.
  std::vector<TaskRecord> trace() const;
  std::size_t task_count() const { return tasks_.size(); }

 private:
  struct ResourceInfo {
    std::string name;
    ResourceKind kind;
  };
  struct Task {
    TaskRecord record;
    std::vector<TaskId> deps;  // explicit dependencies
    TaskId stream_prev;        // previous task on the same rank and resource, or kNone
    std::size_t group;         // collective group index, or kNone
  };
  static constexpr std::size_t kNone = static_cast<std::size_t>(-1);

  void check_rank(int rank) const;
  void check_resource(Resource resource) const;
  void check_task(TaskId id, std::string_view what) const;
  void check_ran() const;
  std::size_t stream_index(int rank, Resource resource) const;
  TaskId push_task(int rank, Resource resource, double duration_s, std::vector<TaskId> deps,
                   std::string label, std::size_t group);
  std::vector<TaskId> predecessors(TaskId id) const;
  // run() treats a collective as one node, named by its first member.
  TaskId node_of(TaskId id) const;
  std::vector<TaskId> node_members(TaskId rep) const;
  [[noreturn]] void report_cycle(const std::vector<std::size_t>& remaining_preds) const;
  std::string describe(TaskId id) const;

  int ranks_;
  std::vector<ResourceInfo> resources_;
  std::vector<Task> tasks_;
  std::vector<std::vector<TaskId>> groups_;  // members of each collective
  // Last task per (rank, resource) stream; resized as resources are added.
  std::vector<std::vector<TaskId>> stream_last_;
  bool ran_ = false;
};

}  // namespace paralab::sim
