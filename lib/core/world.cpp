#include "core/world.hpp"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <set>

namespace paralab {

World::World(int& argc, char**& argv) {
  int initialised = 0;
  MPI_Initialized(&initialised);
  if (!initialised) {
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    owns_mpi_ = true;
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node);
  MPI_Comm_rank(node, &local_rank_);
  MPI_Comm_size(node, &local_size_);
  MPI_Comm_free(&node);
}

World::~World() {
  if (owns_mpi_) {
    int finalised = 0;
    MPI_Finalized(&finalised);
    if (!finalised) MPI_Finalize();
  }
}

std::vector<std::string> World::hosts() const {
  char name[MPI_MAX_PROCESSOR_NAME] = {};
  int length = 0;
  MPI_Get_processor_name(name, &length);
  std::vector<char> all(static_cast<size_t>(size_) * MPI_MAX_PROCESSOR_NAME);
  MPI_Allgather(name, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, all.data(), MPI_MAX_PROCESSOR_NAME,
                MPI_CHAR, comm());
  std::set<std::string> unique;
  for (int r = 0; r < size_; ++r)
    unique.emplace(&all[static_cast<size_t>(r) * MPI_MAX_PROCESSOR_NAME]);
  return {unique.begin(), unique.end()};
}

void World::printf(const char* format, ...) const {
  if (rank_ != 0) return;
  va_list args;
  va_start(args, format);
  std::vfprintf(stdout, format, args);
  va_end(args);
  std::fflush(stdout);
}

void abort_run(const std::string& message, ExitCode code) {
  int rank = 0;
  int initialised = 0;
  MPI_Initialized(&initialised);
  if (initialised) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  std::fprintf(stderr, "paralab: rank %d: error: %s\n", rank, message.c_str());
  std::fflush(stderr);
  if (initialised) MPI_Abort(MPI_COMM_WORLD, static_cast<int>(code));
  std::exit(static_cast<int>(code));
}

void agree(MPI_Comm comm, bool ok, const std::string& message_if_failed, ExitCode code) {
  int rank = 0;
  int size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  int first_failed = ok ? size : rank;
  MPI_Allreduce(MPI_IN_PLACE, &first_failed, 1, MPI_INT, MPI_MIN, comm);
  if (first_failed == size) return;
  // The lowest failing rank shares its exit code and message so that rank 0 prints it.
  int header[2] = {static_cast<int>(code), static_cast<int>(message_if_failed.size())};
  MPI_Bcast(header, 2, MPI_INT, first_failed, comm);
  code = static_cast<ExitCode>(header[0]);
  const int length = header[1];
  std::string message = rank == first_failed ? message_if_failed : std::string(length, '\0');
  MPI_Bcast(message.data(), length, MPI_CHAR, first_failed, comm);
  if (first_failed != 0) message = "rank " + std::to_string(first_failed) + ": " + message;
  throw Error(code, Scope::all_ranks, message);
}

}  // namespace paralab
