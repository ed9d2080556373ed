// The campaign (lib/pvf/campaign.hpp) on a synthetic target whose verdict is
// a fixed function of the faults: trial seeds, the stopping rule, the split of
// trials over ranks, and resuming from a checkpoint.
#include <gtest/gtest.h>

#include <bit>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "core/errors.hpp"
#include "pvf/campaign.hpp"

namespace paralab::pvf {
namespace {

// Incorrect when the fault touches the top half of the stored word of an
// element divisible by 3; NaN/Inf for element % 10 == 1 (any bit).
class FakeTarget : public Target {
 public:
  int components() const override { return 2; }
  std::string component_name(int c) const override { return c ? "big" : "small"; }
  uint64_t elements(int c) const override { return c ? 1000 : 30; }
  void prepare(DType dtype) override {
    ++prepares;
    width = storage_bits(dtype);
  }
  Outcome inject(int, std::span<const ElementFault> faults) override {
    Outcome o = Outcome::correct;
    for (const auto& f : faults) {
      const uint32_t bits = f.op.flip | f.op.set | f.op.clear;
      if (f.element % 10 == 1) return Outcome::nan_inf;
      if (f.element % 3 == 0 && (bits >> (width / 2)) != 0) o = Outcome::incorrect;
    }
    return o;
  }
  int prepares = 0;
  int width = 32;
};

std::vector<Cell> cells() {
  return make_cells({0, 1}, {FaultModel{}, parse_fault_model("burst:3")},
                    {DType::fp32, DType::int8},
                    {BitClass::sign, BitClass::exponent, BitClass::high, BitClass::any});
}

const SumFn identity = [](std::span<int64_t>) {};

std::string temp_path(const char* name) {
  return (std::filesystem::temp_directory_path() / name).string() + std::to_string(::getpid());
}

TEST(PvfCampaign, CellsAreTypeMajorWithTheClassesEachTypeHas) {
  const auto c = cells();
  // fp32: sign, exponent, any; int8: sign, high, any; x 2 components x 2 faults.
  ASSERT_EQ(c.size(), 24u);
  EXPECT_EQ(c[0].dtype, DType::fp32);
  EXPECT_EQ(c[12].dtype, DType::int8);
  EXPECT_EQ(c[13].bits, BitClass::high);
  EXPECT_THROW(make_cells({0}, {FaultModel{}}, {DType::int8}, {BitClass::exponent}), UsageError);
}

TEST(PvfCampaign, CountsAreAFunctionOfTheSeed) {
  FakeTarget t1, t2, t3;
  CampaignConfig config;
  config.max_trials = 300;
  config.round = 50;
  const auto a = run_campaign(t1, cells(), config, identity, {});
  const auto b = run_campaign(t2, cells(), config, identity, {});
  config.seed = 2;
  const auto c = run_campaign(t3, cells(), config, identity, {});
  ASSERT_TRUE(a.complete);
  int64_t differ = 0;
  for (size_t i = 0; i < a.counts.size(); ++i) {
    EXPECT_EQ(a.counts[i].trials, 300);
    EXPECT_EQ(a.counts[i].incorrect, b.counts[i].incorrect);
    EXPECT_EQ(a.counts[i].nan_inf, b.counts[i].nan_inf);
    differ += a.counts[i].incorrect != c.counts[i].incorrect;
  }
  EXPECT_GT(differ, 0);
  EXPECT_EQ(t1.prepares, 2);  // once per type
  // The fake's rule: small, sign, fp32: element % 10 == 1 in 3/30 of trials.
  EXPECT_NEAR(a.counts[0].nan_inf / 300.0, 0.1, 0.06);
  EXPECT_GT(a.counts[0].incorrect, 0);
}

// Rank r runs the trials t % ranks == r: without early stopping the ranks'
// local counts add up to the one-process counts.
TEST(PvfCampaign, RanksPartitionTheTrials) {
  CampaignConfig config;
  config.max_trials = 200;
  config.round = 64;
  FakeTarget serial_target;
  const auto serial = run_campaign(serial_target, cells(), config, identity, {});
  std::vector<CellCounts> total(serial.counts.size());
  int64_t injections = 0;
  for (int r = 0; r < 3; ++r) {
    FakeTarget t;
    config.rank = r;
    config.ranks = 3;
    const auto part = run_campaign(t, cells(), config, identity, {});
    injections += part.local_injections;
    for (size_t i = 0; i < total.size(); ++i) {
      total[i].incorrect += part.counts[i].incorrect;
      total[i].nan_inf += part.counts[i].nan_inf;
    }
  }
  EXPECT_EQ(injections, serial.local_injections);
  for (size_t i = 0; i < total.size(); ++i) {
    EXPECT_EQ(total[i].incorrect, serial.counts[i].incorrect) << i;
    EXPECT_EQ(total[i].nan_inf, serial.counts[i].nan_inf) << i;
  }
}

TEST(PvfCampaign, StopsOnWholeRoundsOnceTheIntervalIsNarrow) {
  FakeTarget t;
  CampaignConfig config;
  config.max_trials = 5000;
  config.round = 40;
  config.ci_width = 0.1;
  const auto r = run_campaign(t, cells(), config, identity, {});
  for (const CellCounts& k : r.counts) {
    EXPECT_EQ(k.trials % 40, 0);
    EXPECT_LT(wilson(k.failures(), k.trials).width(), 0.1);
    EXPECT_LT(k.trials, 5000);
  }
}

TEST(PvfCampaign, ResumeGivesTheUninterruptedCounts) {
  CampaignConfig config;
  config.max_trials = 256;
  config.round = 32;
  config.ci_width = 0.12;
  FakeTarget whole;
  const auto full = run_campaign(whole, cells(), config, identity, {});

  config.checkpoint = temp_path("pvf_resume_test.ckpt");
  config.fingerprint = fingerprint("fake campaign");
  config.stop_after_rounds = 7;
  std::vector<CellCounts> start;
  int pieces = 0;
  for (bool complete = false; !complete; ++pieces) {
    FakeTarget t;  // a fresh process each time
    if (pieces > 0) start = read_checkpoint(config.checkpoint, config.fingerprint, cells().size());
    const auto part = run_campaign(t, cells(), config, identity, {}, start);
    complete = part.complete;
    if (complete) start = part.counts;
  }
  EXPECT_GT(pieces, 3);
  for (size_t i = 0; i < full.counts.size(); ++i) {
    EXPECT_EQ(start[i].trials, full.counts[i].trials) << i;
    EXPECT_EQ(start[i].incorrect, full.counts[i].incorrect) << i;
    EXPECT_EQ(start[i].nan_inf, full.counts[i].nan_inf) << i;
    EXPECT_TRUE(start[i].done);
  }
  // A checkpoint of another campaign, or of another shape, is refused.
  EXPECT_THROW(read_checkpoint(config.checkpoint, config.fingerprint + 1, cells().size()),
               UsageError);
  EXPECT_THROW(read_checkpoint(config.checkpoint, config.fingerprint, cells().size() + 1),
               UsageError);
  std::ofstream(config.checkpoint) << "paralab-pvf-checkpoint 1\nfingerprint zz\n";
  EXPECT_THROW(read_checkpoint(config.checkpoint, config.fingerprint, cells().size()), UsageError);
  std::filesystem::remove(config.checkpoint);
  EXPECT_THROW(read_checkpoint(config.checkpoint, config.fingerprint, cells().size()), UsageError);
}

}  // namespace
}  // namespace paralab::pvf
