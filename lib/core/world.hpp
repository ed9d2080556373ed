// world.hpp: the MPI world of one run (RAII init and finalize), rank-0
// printing, aborting with a message, and agreement on rank-local failures.
#pragma once

#include <mpi.h>

#include <string>
#include <vector>

#include "core/errors.hpp"

namespace paralab {

class World {
 public:
  // Initialises MPI (thread level FUNNELED) unless already initialised.
  World(int& argc, char**& argv);
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  MPI_Comm comm() const { return MPI_COMM_WORLD; }
  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_root() const { return rank_ == 0; }
  // Rank and rank count among the processes on this host.
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }

  // Host names of all ranks, unique and sorted (collective).
  std::vector<std::string> hosts() const;

  // printf on rank 0 only, flushed at once so rows appear as they finish.
  void printf(const char* format, ...) const __attribute__((format(printf, 2, 3)));

  void barrier() const { MPI_Barrier(comm()); }

 private:
  int rank_ = 0;
  int size_ = 1;
  int local_rank_ = 0;
  int local_size_ = 1;
  bool owns_mpi_ = false;
};

// Prints "paralab: rank R: message" to stderr and aborts every rank.
[[noreturn]] void abort_run(const std::string& message, ExitCode code = ExitCode::runtime);

// Collective: every rank says whether its own part went well. If any rank
// failed, every rank throws the same Error (scope all_ranks) carrying the
// message and exit code of the lowest failing rank, so rank 0 can print it
// once and all ranks exit alike.
void agree(MPI_Comm comm, bool ok, const std::string& message_if_failed,
           ExitCode code = ExitCode::runtime);

// Same, for an exception thrown on some ranks: runs `body`, and if it threw
// anywhere, rethrows everywhere as one all_ranks Error. A paralab::Error keeps
// its exit code (a UsageError stays a usage error); others get `code`.
template <class Body>
void agree_on(MPI_Comm comm, Body&& body, ExitCode code = ExitCode::runtime) {
  std::string message;
  bool ok = true;
  try {
    body();
  } catch (const Error& e) {
    ok = false;
    message = e.what();
    code = e.code();
  } catch (const std::exception& e) {
    ok = false;
    message = e.what();
  }
  agree(comm, ok, message, code);
}

}  // namespace paralab
