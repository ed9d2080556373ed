// gtest_mpi.hpp: GoogleTest output under MPI. Rank 0 prints the usual
// report; the other ranks print only their failed assertions, prefixed with
// their rank, so a failure on rank 3 is not lost behind rank 0's "PASSED".
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

namespace paralab::test {

class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  // The test's name is kept here: OnTestPartResult runs under GoogleTest's
  // UnitTest mutex, so calling current_test_info() there deadlocks.
  void OnTestStart(const ::testing::TestInfo& test) override {
    test_ = std::string(test.test_suite_name()) + "." + test.name();
  }
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stderr, "[rank %d] %s: %s:%d\n%s\n", rank_, test_.c_str(),
                 result.file_name() ? result.file_name() : "?", result.line_number(),
                 result.message());
  }

 private:
  int rank_;
  std::string test_ = "?";
};

// Call after InitGoogleTest: keeps rank 0's printer, gives the others the
// failure printer.
inline void print_failures_from_every_rank(int rank) {
  if (rank == 0) return;
  auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
  delete listeners.Release(listeners.default_result_printer());
  listeners.Append(new RankFailurePrinter(rank));
}

}  // namespace paralab::test
