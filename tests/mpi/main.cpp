// GoogleTest under MPI, the main of every MPI test binary (mpi_tests,
// dlrm_tests, parallel_tests): every rank runs every test (a test that needs
// fewer ranks splits the world or skips itself); rank 0 prints the report,
// the others their failures, and the process exits non-zero if any rank
// failed. Each rank's kernels use its share of the host's cores.
#include <gtest/gtest.h>
#include <mpi.h>

#include "core/world.hpp"
#include "gtest_mpi.hpp"
#include "kernels/threads.hpp"

int main(int argc, char** argv) {
  paralab::World world(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  paralab::kernels::set_threads(paralab::kernels::default_threads(world.local_size()));
  paralab::test::print_failures_from_every_rank(world.rank());
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_MAX, world.comm());
  return failed;
}
