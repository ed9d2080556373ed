// mpi_test.hpp: small helpers shared by the MPI test programs.
#pragma once

#include <mpi.h>

namespace paralab::test {

inline int comm_size(MPI_Comm comm = MPI_COMM_WORLD) {
  int n = 0;
  MPI_Comm_size(comm, &n);
  return n;
}

inline int comm_rank(MPI_Comm comm = MPI_COMM_WORLD) {
  int r = 0;
  MPI_Comm_rank(comm, &r);
  return r;
}

}  // namespace paralab::test
