// GoogleTest under MPI for the DLRM engine: every rank runs every test (the
// single-process ones skip themselves above one rank); only rank 0 prints,
// and the process exits non-zero if any rank failed. Each rank's kernels use
// its share of the host's cores.
#include <gtest/gtest.h>
#include <mpi.h>

#include "core/world.hpp"
#include "kernels/threads.hpp"

int main(int argc, char** argv) {
  paralab::World world(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  paralab::kernels::set_threads(paralab::kernels::default_threads(world.local_size()));
  if (!world.is_root()) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_MAX, world.comm());
  return failed;
}
