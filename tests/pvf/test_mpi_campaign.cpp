// The DLRM campaign under MPI (run at 1, 2 and 3 ranks): every rank trains
// the same model (one thread), the ranks split each round's trials and sum
// the counts, and the totals equal a one-process campaign on the same model,
// with early stopping on; a campaign stopped and resumed at this rank count
// ends with the same counts too. The same for a small transformer campaign.
#include <gtest/gtest.h>
#include <mpi.h>

#include <filesystem>

#include "pvf/campaign.hpp"
#include "pvf_test_support.hpp"

namespace paralab::pvf {
namespace {

const SumFn mpi_sum = [](std::span<int64_t> v) {
  MPI_Allreduce(MPI_IN_PLACE, v.data(), static_cast<int>(v.size()), MPI_INT64_T, MPI_SUM,
                MPI_COMM_WORLD);
};

std::vector<Cell> cells() {
  return make_cells({kEmbedding, kBottomWeight, kTopWeight, kTopBias},
                    {FaultModel{}, parse_fault_model("ber:1e-4")}, {DType::fp32, DType::int8},
                    {BitClass::exponent, BitClass::high, BitClass::any});
}

CampaignConfig config() {
  CampaignConfig c;
  c.seed = 21;
  c.max_trials = 96;
  c.round = 16;
  c.ci_width = 0.2;  // some cells stop early, some run to max_trials
  MPI_Comm_rank(MPI_COMM_WORLD, &c.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &c.ranks);
  return c;
}

void expect_equal(const std::vector<CellCounts>& a, const std::vector<CellCounts>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].trials, b[i].trials) << "cell " << i;
    EXPECT_EQ(a[i].incorrect, b[i].incorrect) << "cell " << i;
    EXPECT_EQ(a[i].nan_inf, b[i].nan_inf) << "cell " << i;
  }
}

TEST(PvfMpi, CountsDoNotDependOnTheRankCount) {
  test::SmallDlrm s(30);
  const CampaignResult spread = run_campaign(*s.target, cells(), config(), mpi_sum, {});
  CampaignConfig one = config();
  one.rank = 0;
  one.ranks = 1;
  const CampaignResult serial =
      run_campaign(*s.target, cells(), one, [](std::span<int64_t>) {}, {});
  expect_equal(spread.counts, serial.counts);
  int64_t stopped_early = 0, failures = 0;
  for (const auto& k : serial.counts) {
    stopped_early += k.trials < 96;
    failures += k.failures();
  }
  EXPECT_GT(stopped_early, 0);
  EXPECT_GT(failures, 0);
}

TEST(PvfMpi, ResumedCampaignEndsWithTheSameCounts) {
  test::SmallDlrm s(30);
  const CampaignResult whole = run_campaign(*s.target, cells(), config(), mpi_sum, {});
  CampaignConfig c = config();
  c.checkpoint = (std::filesystem::temp_directory_path() /
                  ("pvf_mpi_resume_np" + std::to_string(c.ranks) + ".ckpt"))
                     .string();
  c.fingerprint = 42;
  c.stop_after_rounds = 5;
  const CampaignResult first = run_campaign(*s.target, cells(), c, mpi_sum, {});
  ASSERT_FALSE(first.complete);
  MPI_Barrier(MPI_COMM_WORLD);  // rank 0 wrote the checkpoint
  c.stop_after_rounds = 0;
  const auto start = read_checkpoint(c.checkpoint, c.fingerprint, cells().size());
  const CampaignResult rest = run_campaign(*s.target, cells(), c, mpi_sum, {}, start);
  ASSERT_TRUE(rest.complete);
  expect_equal(rest.counts, whole.counts);
  MPI_Barrier(MPI_COMM_WORLD);
  if (c.rank == 0) std::filesystem::remove(c.checkpoint);
}

// The transformer target: every rank trains the same small transformer (one
// thread), and the spread campaign's counts equal a one-process campaign's.
TEST(PvfMpi, TransformerCountsDoNotDependOnTheRankCount) {
  test::SmallTransformer s(30);
  const std::vector<Cell> cells =
      make_cells({0, 1, 4, 5, 6, 7}, {FaultModel{}, parse_fault_model("ber:1e-4")},
                 {DType::fp32, DType::bf16, DType::int8},
                 {BitClass::exponent, BitClass::mantissa, BitClass::high, BitClass::low});
  CampaignConfig c = config();
  c.max_trials = 48;
  const CampaignResult spread = run_campaign(*s.target, cells, c, mpi_sum, {});
  c.rank = 0;
  c.ranks = 1;
  const CampaignResult serial = run_campaign(*s.target, cells, c, [](std::span<int64_t>) {}, {});
  expect_equal(spread.counts, serial.counts);
  int64_t failures = 0, correct = 0;
  for (const auto& k : serial.counts) {
    failures += k.failures();
    correct += k.trials - k.failures();
  }
  EXPECT_GT(failures, 0);
  EXPECT_GT(correct, 0);
}

}  // namespace
}  // namespace paralab::pvf
