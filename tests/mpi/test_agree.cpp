#include <gtest/gtest.h>
#include <mpi.h>

#include "core/errors.hpp"
#include "core/world.hpp"
#include "mpi_test.hpp"

using paralab::test::comm_rank;
using paralab::test::comm_size;

TEST(Agree, SilentWhenAllRanksSucceed) {
  EXPECT_NO_THROW(paralab::agree(MPI_COMM_WORLD, true, "unused"));
}

// The last rank fails alone; every rank must throw the same all-ranks error
// carrying that rank's message.
TEST(Agree, EveryRankThrowsTheFailingRanksMessage) {
  const int last = comm_size() - 1;
  try {
    paralab::agree(MPI_COMM_WORLD, comm_rank() != last, "disk full on the last rank",
                   paralab::ExitCode::runtime);
    FAIL() << "no exception";
  } catch (const paralab::Error& e) {
    EXPECT_EQ(e.scope(), paralab::Scope::all_ranks);
    EXPECT_EQ(e.code(), paralab::ExitCode::runtime);
    EXPECT_NE(std::string(e.what()).find("disk full on the last rank"), std::string::npos);
    if (last != 0) {
      EXPECT_NE(std::string(e.what()).find("rank " + std::to_string(last)), std::string::npos);
    }
  }
}

TEST(Agree, LowestFailingRankWins) {
  try {
    paralab::agree_on(MPI_COMM_WORLD, [] {
      throw std::runtime_error("failure of rank " + std::to_string(comm_rank()));
    });
    FAIL() << "no exception";
  } catch (const paralab::Error& e) {
    EXPECT_STREQ(e.what(), "failure of rank 0");
  }
}

TEST(Agree, KeepsTheExitCodeOfAParalabError) {
  try {
    paralab::agree_on(MPI_COMM_WORLD, [] {
      if (comm_rank() == comm_size() - 1) throw paralab::UsageError("bad option on one rank");
    });
    FAIL() << "no exception";
  } catch (const paralab::Error& e) {
    EXPECT_EQ(e.code(), paralab::ExitCode::usage);
    EXPECT_NE(std::string(e.what()).find("bad option on one rank"), std::string::npos);
  }
}
