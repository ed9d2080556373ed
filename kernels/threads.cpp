#include "kernels/threads.hpp"

#include <omp.h>
#include <sched.h>

#include <algorithm>
#include <thread>

extern "C" void openblas_set_num_threads(int);

namespace paralab::kernels {

int default_threads(int local_ranks) {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int share = std::max(1, cores / std::max(1, local_ranks));
  // A rank that mpirun or Slurm bound to some cores owns those: more threads
  // than that would only take turns on them.
  cpu_set_t mask;
  if (sched_getaffinity(0, sizeof mask, &mask) == 0) {
    const int owned = CPU_COUNT(&mask);
    if (owned > 0 && owned < cores) return std::min(share, owned);
  }
  return share;
}

void set_threads(int threads) {
  threads = std::max(1, threads);
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
}

int threads() {
  return omp_get_max_threads();
}

}  // namespace paralab::kernels
