#include <gtest/gtest.h>
#include <mpi.h>

#include <vector>

#include "core/errors.hpp"
#include "core/grid.hpp"
#include "mpi_test.hpp"

using paralab::GridDim;
using paralab::ProcessGrid;

using paralab::test::comm_rank;
using paralab::test::comm_size;

// The innermost dimension varies fastest over world ranks, every split
// has the right size, and a rank's position in a sub-communicator is its
// coordinate along that dimension. Grids: every factorisation of the world
// into two dimensions, plus one with unit dimensions around the world.
TEST(ProcessGrid, LayoutAndSubCommunicators) {
  const int n = comm_size();
  const int me = comm_rank();
  for (int inner = 1; inner <= n; ++inner) {
    if (n % inner != 0) continue;
    ProcessGrid grid(MPI_COMM_WORLD, {{"tp", inner}, {"dp", n / inner}});
    EXPECT_EQ(grid.coord("tp"), me % inner);
    EXPECT_EQ(grid.coord("dp"), me / inner);
    EXPECT_EQ(comm_size(grid.comm("tp")), inner);
    EXPECT_EQ(comm_size(grid.comm("dp")), n / inner);
    EXPECT_EQ(comm_rank(grid.comm("tp")), grid.coord("tp"));
    EXPECT_EQ(comm_rank(grid.comm("dp")), grid.coord("dp"));
    EXPECT_EQ(grid.rank_at({grid.coord("tp"), grid.coord("dp")}), me);
    // The tp group holds consecutive world ranks: sum of its ranks known.
    int sum = me;
    MPI_Allreduce(MPI_IN_PLACE, &sum, 1, MPI_INT, MPI_SUM, grid.comm("tp"));
    const int first = me - me % inner;
    EXPECT_EQ(sum, inner * first + inner * (inner - 1) / 2);
  }
  ProcessGrid wide(MPI_COMM_WORLD, {{"tp", 1}, {"cp", n}, {"pp", 1}, {"dp", 1}});
  EXPECT_EQ(wide.coord("cp"), me);
  EXPECT_EQ(comm_size(wide.comm("pp")), 1);
  auto both = wide.make_sub_comm({"tp", "cp"});
  EXPECT_EQ(comm_size(both.get()), n);
  EXPECT_EQ(wide.describe(), "tp=1 x cp=" + std::to_string(n) + " x pp=1 x dp=1");
}

TEST(ProcessGrid, FourDimensionsWhenTheWorldAllows) {
  const int n = comm_size();
  if (n != 4) GTEST_SKIP() << "needs 4 ranks";
  ProcessGrid grid(MPI_COMM_WORLD, {{"tp", 2}, {"cp", 1}, {"pp", 2}, {"dp", 1}});
  const int me = comm_rank();
  EXPECT_EQ(grid.coord("tp"), me % 2);
  EXPECT_EQ(grid.coord("pp"), me / 2);
  auto tp_pp = grid.make_sub_comm({"tp", "pp"});
  EXPECT_EQ(comm_size(tp_pp.get()), 4);
  auto cp_dp = grid.make_sub_comm({"cp", "dp"});
  EXPECT_EQ(comm_size(cp_dp.get()), 1);
}

TEST(ProcessGrid, RejectsAGridThatDoesNotDivideTheWorld) {
  const int n = comm_size();
  try {
    ProcessGrid grid(MPI_COMM_WORLD, {{"tp", n + 1}, {"dp", 1}});
    FAIL() << "no exception";
  } catch (const paralab::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("needs " + std::to_string(n + 1) + " ranks"),
              std::string::npos)
        << e.what();
  }
}

TEST(ProcessGrid, UnknownDimensionIsAUsageError) {
  ProcessGrid grid(MPI_COMM_WORLD, {{"dp", comm_size()}});
  EXPECT_THROW(grid.coord("tp"), paralab::UsageError);
}
