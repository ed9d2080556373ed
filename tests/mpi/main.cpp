// GoogleTest under MPI: every rank runs every test; rank 0 prints the
// report, the others their failures, and the process exits non-zero if any
// rank failed.
#include <gtest/gtest.h>
#include <mpi.h>

#include "core/world.hpp"
#include "gtest_mpi.hpp"

int main(int argc, char** argv) {
  paralab::World world(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  paralab::test::print_failures_from_every_rank(world.rank());
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_MAX, world.comm());
  return failed;
}
