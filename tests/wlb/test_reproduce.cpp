// The reproduction driver (lib/wlb/reproduce): small runs of the paper's
// configurations.
#include <gtest/gtest.h>

#include "core/errors.hpp"
#include "wlb/reproduce.hpp"

namespace paralab::wlb {
namespace {

ReproductionOptions small(std::string config, uint64_t seed = 1) {
  ReproductionOptions o;
  o.configs = {std::move(config)};
  o.steps = 4;
  o.seed = seed;
  return o;
}

TEST(Reproduce, WlbBeatsPlainOnALongTailedDistribution) {
  const ReproductionTable table = reproduce_paper(small("7B-128K"));
  ASSERT_EQ(table.rows.size(), 3u);
  const ReproductionRow& plain = table.rows[0];
  const ReproductionRow& wlb = table.rows[2];
  EXPECT_EQ(plain.packing, "plain");
  EXPECT_EQ(table.rows[1].packing, "fixed");
  EXPECT_EQ(wlb.packing, "wlb");
  EXPECT_DOUBLE_EQ(plain.speedup, 1);
  EXPECT_GT(wlb.speedup, 1.05);
  EXPECT_LT(wlb.imbalance, plain.imbalance);
  EXPECT_LT(wlb.latency_imbalance, plain.latency_imbalance);
  EXPECT_DOUBLE_EQ(table.mean_speedup, wlb.speedup);
  EXPECT_DOUBLE_EQ(table.mean_speedup_128k, wlb.speedup);
  EXPECT_DOUBLE_EQ(table.mean_speedup_64k, 0);
  EXPECT_DOUBLE_EQ(table.mean_mfu_ratio, wlb.mfu / plain.mfu);
  EXPECT_DOUBLE_EQ(table.mean_mfu_ratio_64k, 0);
  for (const ReproductionRow& row : table.rows) {
    EXPECT_GT(row.steps, 0);
    EXPECT_GT(row.mfu, 0);
    EXPECT_LT(row.mfu, 1);
    EXPECT_NEAR(row.tokens_per_s * row.mean_step_s * row.steps, double(row.tokens),
                1e-6 * double(row.tokens));
  }
}

TEST(Reproduce, PlainBaselineCutsAtTheContextAndFillsEverySequence) {
  // Load 1 (the default): plain packing concatenates and cuts, so it trains
  // a full step every iteration; keeping documents whole leaves sequences
  // partly empty and raises the imbalance.
  ReproductionOptions o = small("7B-64K");
  o.steps = 8;
  ASSERT_DOUBLE_EQ(o.load, 1.0);
  const ReproductionTable split = reproduce_paper(o);
  EXPECT_DOUBLE_EQ(split.rows[0].fill, 1.0);
  EXPECT_NEAR(split.rows[0].mean_delay, 0, 0.5);
  o.plain_split_documents = false;
  const ReproductionTable whole = reproduce_paper(o);
  EXPECT_LT(whole.rows[0].fill, 0.95);
  EXPECT_GT(whole.rows[0].imbalance, split.rows[0].imbalance);
  // The other packings do not depend on plain's variant.
  EXPECT_DOUBLE_EQ(whole.rows[2].mean_step_s, split.rows[2].mean_step_s);
}

TEST(Reproduce, DeterministicBySeed) {
  const ReproductionTable a = reproduce_paper(small("550M-64K", 7));
  const ReproductionTable b = reproduce_paper(small("550M-64K", 7));
  const ReproductionTable c = reproduce_paper(small("550M-64K", 8));
  ASSERT_EQ(a.rows.size(), b.rows.size());
  bool differs = false;
  for (size_t i = 0; i < a.rows.size(); ++i) {
    EXPECT_EQ(a.rows[i].tokens, b.rows[i].tokens);
    EXPECT_DOUBLE_EQ(a.rows[i].mean_step_s, b.rows[i].mean_step_s);
    EXPECT_DOUBLE_EQ(a.rows[i].imbalance, b.rows[i].imbalance);
    differs |= a.rows[i].mean_step_s != c.rows[i].mean_step_s;
  }
  EXPECT_TRUE(differs) << "another seed drew the same documents";
}

TEST(Reproduce, ImbalanceTableHasThePapersRows) {
  ReproductionOptions o = small("7B-128K");
  o.steps = 8;
  const ImbalanceTable table = reproduce_imbalance(o);
  ASSERT_EQ(table.rows.size(), 9u);
  EXPECT_EQ(table.config, "7B-128K");
  EXPECT_EQ(table.rows[0].packing, "plain");
  EXPECT_DOUBLE_EQ(table.rows[0].paper, 1.44);
  EXPECT_EQ(table.rows[4].parameter, 8);
  EXPECT_DOUBLE_EQ(table.rows[6].paper, 1.05);
  // Balancing over more global batches lowers the imbalance of plain packing.
  EXPECT_LT(table.rows[2].imbalance, table.rows[0].imbalance);
  EXPECT_LT(table.rows[4].imbalance, table.rows[1].imbalance);
  // Outlier queues lower WLB's imbalance and delay tokens.
  EXPECT_LT(table.rows[6].imbalance, table.rows[0].imbalance);
  EXPECT_GT(table.rows[6].mean_delay, table.rows[0].mean_delay);
  // The ninth row: plain with whole documents, no paper figure, more imbalanced.
  EXPECT_EQ(table.rows[8].packing, "plain-whole");
  EXPECT_DOUBLE_EQ(table.rows[8].paper, 0);
  EXPECT_GT(table.rows[8].imbalance, table.rows[0].imbalance);
}

TEST(Reproduce, OnePackingOfAnyGridMatchesTheTable) {
  const ReproductionOptions o = small("7B-128K");
  const ReproductionTable table = reproduce_paper(o);
  const ReproductionRow wlb =
      simulate_packing(find_paper_config("7B-128K"),
                       {packing::PackingKind::wlb, 1, o.wlb_queues, o.wlb_sharding}, o);
  EXPECT_DOUBLE_EQ(wlb.mean_step_s, table.rows[2].mean_step_s);
  EXPECT_EQ(wlb.tokens, table.rows[2].tokens);
  ASSERT_EQ(wlb.step_seconds.size(), size_t(wlb.steps));
  EXPECT_EQ(wlb.step_tokens.size(), size_t(wlb.steps));
  EXPECT_EQ(wlb.step_imbalance.size(), size_t(wlb.steps));
  // A grid of its own: 7B at 32K on tp2 cp2 pp2 dp2 with 3 micro-batches per replica.
  PaperConfig own{"7B-32K", "7B", 32 * 1024, {2, 2, 2, 2}, 3};
  const ReproductionRow plain = simulate_packing(own, {}, o);
  EXPECT_EQ(plain.micro_batches, 6);
  EXPECT_GT(plain.tokens_per_s, 0);
  own.grid.pp = 5;  // does not divide 32 layers
  EXPECT_THROW(simulate_packing(own, {}, o), UsageError);
}

TEST(Reproduce, BadOptionsAreUsageErrors) {
  ReproductionOptions o = small("7B-128K");
  o.steps = 0;
  EXPECT_THROW(reproduce_paper(o), UsageError);
  o = small("7B-512K");
  EXPECT_THROW(reproduce_paper(o), UsageError);
  o = small("7B-128K");
  o.profile = "a100-nowhere";
  EXPECT_THROW(reproduce_paper(o), UsageError);
  o = small("7B-128K");
  o.wlb_max_length_factor = 0.5;
  EXPECT_THROW(reproduce_paper(o), UsageError);
  o = small("7B-128K");
  o.lengths = "zipf:s=2";
  EXPECT_THROW(reproduce_paper(o), UsageError);
}

}  // namespace
}  // namespace paralab::wlb
