#include "kernels/threads.hpp"

#include <omp.h>

#include <algorithm>
#include <thread>

extern "C" void openblas_set_num_threads(int);

namespace paralab::kernels {

int default_threads(int local_ranks) {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, cores / std::max(1, local_ranks));
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
