#include "harness/limits.hpp"

#include <cstring>
#include <vector>

#include "core/device.hpp"
#include "core/stats.hpp"
#include "core/timer.hpp"

namespace paralab {

CopyLimit measure_copy_limit(MPI_Comm comm, size_t bytes, int repeats) {
  Buffer source(Device::cpu, bytes);
  Buffer target(Device::cpu, bytes);
  std::memset(source.data(), 1, bytes);  // touch every page before timing
  std::memcpy(target.data(), source.data(), bytes);
  std::vector<double> rates;
  for (int i = 0; i < repeats; ++i) {
    MPI_Barrier(comm);
    Stopwatch watch;
    std::memcpy(target.data(), source.data(), bytes);
    rates.push_back(static_cast<double>(bytes) / watch.seconds() / 1e9);
  }
  CopyLimit limit{bytes, summarize(rates).median, 0};
  MPI_Allreduce(&limit.GBps_per_rank, &limit.GBps_slowest_rank, 1, MPI_DOUBLE, MPI_MIN, comm);
  MPI_Allreduce(MPI_IN_PLACE, &limit.GBps_per_rank, 1, MPI_DOUBLE, MPI_SUM, comm);
  int size = 1;
  MPI_Comm_size(comm, &size);
  limit.GBps_per_rank /= size;
  return limit;
}

}  // namespace paralab
