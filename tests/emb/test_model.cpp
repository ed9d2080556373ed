// DLRM on lib/emb's tables (model.hpp, train.hpp) against lib/dlrm's: fp32
// rows equal the plain FP32 model bit for bit at any cache fraction (1, a
// small one, none), with SGD and row-wise Adagrad; low-precision formats
// train close to it.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "dlrm/data.hpp"
#include "dlrm/model.hpp"
#include "emb/train.hpp"

namespace paralab::emb {
namespace {

dlrm::DlrmConfig small_model() {
  dlrm::DlrmConfig c;
  c.dense_features = 4;
  c.bottom_layers = {8, 4};
  c.top_layers = {8, 1};
  c.embedding_dim = 4;
  c.table_rows = {50, 300, 7};
  c.pooling = {1, 3, 2};
  return c;
}

RunConfig small_run(dlrm::EmbeddingOptimizer optimizer) {
  RunConfig r;
  r.steps = 12;
  r.batch = 32;
  r.eval_every = 6;
  r.eval_batches = 2;
  r.opt.embedding = optimizer;
  r.opt.embedding_lr = optimizer == dlrm::EmbeddingOptimizer::sgd ? 0.5f : 0.05f;
  return r;
}

void expect_same_tables(const dlrm::Dlrm& ref, const MixedDlrm& mixed) {
  const int d = ref.config().embedding_dim;
  std::vector<float> row(static_cast<size_t>(d));
  for (int t = 0; t < ref.config().tables(); ++t)
    for (int64_t r = 0; r < ref.config().table_rows[static_cast<size_t>(t)]; ++r) {
      mixed.table(t).read_row(r, row.data());
      for (int j = 0; j < d; ++j)
        ASSERT_EQ(row[static_cast<size_t>(j)],
                  ref.table(t).weights()[static_cast<size_t>(r * d + j)])
            << "table " << t << " row " << r;
    }
}

TEST(EmbModel, Fp32RowsEqualPlainDlrmBitForBit) {
  const auto config = small_model();
  dlrm::DataConfig data_config;
  for (auto optimizer :
       {dlrm::EmbeddingOptimizer::sgd, dlrm::EmbeddingOptimizer::rowwise_adagrad}) {
    const RunConfig run = small_run(optimizer);
    dlrm::SyntheticClicks data(config, data_config);
    dlrm::Dlrm ref(config, 7);
    const RunResult want = run_reference(ref, synthetic_batches(data), run, {});
    for (double fraction : {1.0, 0.05, 0.0}) {
      for (bool prefetch : {true, false}) {
        TableOptions o;
        o.cache = {fraction, 4, fraction == 0.05 ? Policy::lfu : Policy::lru};
        o.rounding = Rounding::stochastic;  // fp32 never rounds
        MixedDlrm mixed(config, 7, o, optimizer != dlrm::EmbeddingOptimizer::sgd);
        RunConfig r = run;
        r.prefetch = prefetch;
        const RunResult got = run_mixed(mixed, synthetic_batches(data), r, {});
        EXPECT_EQ(got.loss, want.loss) << "fraction " << fraction;
        EXPECT_EQ(got.eval_auc, want.eval_auc);
        EXPECT_EQ(got.eval_logloss, want.eval_logloss);
        EXPECT_EQ(got.lookups, want.lookups);
        EXPECT_EQ(got.updated_rows, want.updated_rows);
        expect_same_tables(ref, mixed);
      }
    }
  }
}

// Prefetching moves where admission is timed, not what it does: an int8 run
// with stochastic rounding gives the same losses and hit rates either way.
TEST(EmbModel, PrefetchDoesNotChangeTheNumerics) {
  const auto config = small_model();
  dlrm::SyntheticClicks data(config, {});
  TableOptions o;
  o.format = Format::int8;
  o.rounding = Rounding::stochastic;
  o.cache = {0.1, 2, Policy::lfu};
  RunResult runs[2];
  for (int prefetch = 0; prefetch < 2; ++prefetch) {
    MixedDlrm mixed(config, 5, o, false);
    RunConfig run = small_run(dlrm::EmbeddingOptimizer::sgd);
    run.prefetch = prefetch == 1;
    runs[prefetch] = run_mixed(mixed, synthetic_batches(data), run, {});
  }
  EXPECT_EQ(runs[0].loss, runs[1].loss);
  EXPECT_EQ(runs[0].hit_rate, runs[1].hit_rate);
  EXPECT_EQ(runs[0].eval_auc, runs[1].eval_auc);
}

TEST(EmbModel, HitRatesAreRecordedPerTableAndStep) {
  const auto config = small_model();
  dlrm::SyntheticClicks data(config, {});
  TableOptions o;
  o.format = Format::int8;
  o.cache = {0.2, 4, Policy::lru};
  MixedDlrm mixed(config, 3, o, false);
  const RunResult r =
      run_mixed(mixed, synthetic_batches(data), small_run(dlrm::EmbeddingOptimizer::sgd), {});
  ASSERT_EQ(r.hit_rate.size(), 3u);
  for (const auto& h : r.hit_rate) {
    ASSERT_EQ(h.size(), 12u);
    EXPECT_EQ(h[0], 0.0);  // a cold cache
    for (double v : h) EXPECT_TRUE(v >= 0 && v <= 1);
  }
  // Zipf lookups into a cache of a fifth of the rows: later steps hit.
  EXPECT_GT(r.hit_rate[1].back(), 0.2);
  EXPECT_EQ(r.cache_totals[1].lookups, 12 * 32 * 3);
}

TEST(EmbModel, LowPrecisionTrainsCloseToFp32) {
  const auto config = small_model();
  dlrm::DataConfig data_config;
  RunConfig run = small_run(dlrm::EmbeddingOptimizer::sgd);
  run.steps = 40;
  run.eval_every = 40;
  run.eval_batches = 8;
  dlrm::SyntheticClicks data(config, data_config);
  dlrm::Dlrm ref(config, 7);
  const RunResult want = run_reference(ref, synthetic_batches(data), run, {});
  for (Format f : {Format::fp16, Format::bf16, Format::int8, Format::int4}) {
    TableOptions o;
    o.format = f;
    o.rounding = Rounding::stochastic;
    o.cache = {0.05, 4, Policy::lru};
    MixedDlrm mixed(config, 7, o, false);
    const RunResult got = run_mixed(mixed, synthetic_batches(data), run, {});
    EXPECT_NEAR(got.eval_logloss.back(), want.eval_logloss.back(), 0.05) << to_string(f);
    EXPECT_TRUE(std::isfinite(got.loss.back()));
    EXPECT_LT(mixed.total_memory().storage, fp32_table_bytes(config, false)) << to_string(f);
  }
}

}  // namespace
}  // namespace paralab::emb
