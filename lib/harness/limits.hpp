// limits.hpp: measured limits that apps report their throughput against, so
// that every bandwidth or FLOP rate comes with "what fraction of possible".
#pragma once

#include <mpi.h>

#include <cstddef>

namespace paralab {

struct CopyLimit {
  size_t bytes = 0;              // buffer size copied
  double GBps_per_rank = 0;      // mean over ranks of each rank's median (1e9 bytes/s)
  double GBps_slowest_rank = 0;  // the smallest rank median
};

// Host memory copy bandwidth of one rank while every rank of `comm` copies at
// the same time: what MPI's shared-memory transport moves data with on one
// node. Collective. Each rank copies `bytes` (default 128 MiB, beyond the
// caches) `repeats` times after one untimed copy.
CopyLimit measure_copy_limit(MPI_Comm comm, size_t bytes = size_t{128} << 20, int repeats = 5);

}  // namespace paralab
