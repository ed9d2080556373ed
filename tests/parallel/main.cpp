// GoogleTest under MPI for the 4D engine (lib/parallel): every rank runs every
// test (a test that needs fewer ranks splits the world and the others wait);
// rank 0 prints the report and the others their failures, and the process
// exits non-zero if any rank failed. Each rank's kernels use its share of the
// host's cores.
#include <gtest/gtest.h>
#include <mpi.h>

#include "core/world.hpp"
#include "kernels/threads.hpp"
#include "mpi/gtest_mpi.hpp"

int main(int argc, char** argv) {
  paralab::World world(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  paralab::kernels::set_threads(paralab::kernels::default_threads(world.local_size()));
  paralab::test::print_failures_from_every_rank(world.rank());
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_MAX, world.comm());
  return failed;
}
