// The whole DLRM: configuration checks, the Criteo Kaggle preset,
// deterministic init, the model's gradients against finite differences of
// its loss, and the optimizers against hand computations (sparse SGD, and
// row-wise Adagrad with duplicate indices over two steps).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/errors.hpp"
#include "dlrm/data.hpp"
#include "dlrm/metrics.hpp"
#include "dlrm/model.hpp"
#include "dlrm_test_support.hpp"

namespace paralab::dlrm::test {
namespace {

void expect_usage_error(const DlrmConfig& c, const std::string& fragment) {
  try {
    c.validate();
    ADD_FAILURE() << "no error, expected one with '" << fragment << "'";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(DlrmModel, ConfigValidation) {
  DLRM_SINGLE_PROCESS();
  small_config().validate();
  DlrmConfig c = small_config();
  c.bottom_layers.back() = 5;
  expect_usage_error(c, "must equal the embedding dimension");
  c = small_config();
  c.top_layers.back() = 2;
  expect_usage_error(c, "one logit");
  c = small_config();
  c.pooling.pop_back();
  expect_usage_error(c, "4 pooling factors for 5 tables");
  c = small_config();
  c.table_rows[2] = 0;
  expect_usage_error(c, "table 2 has 0 rows");
  c = small_config();
  c.pooling[1] = 0;
  expect_usage_error(c, "pooling factor 0");
  c = small_config();
  c.table_rows.clear();
  c.pooling.clear();
  expect_usage_error(c, "at least one embedding table");
  c = small_config();
  c.dense_features = 0;
  expect_usage_error(c, "dense features");
  OptimizerConfig o;
  o.adagrad_eps = 0;
  EXPECT_THROW(o.validate(), UsageError);
}

TEST(DlrmModel, CriteoKagglePreset) {
  DLRM_SINGLE_PROCESS();
  const DlrmConfig c = criteo_kaggle(64);
  EXPECT_EQ(c.tables(), 26);
  EXPECT_EQ(c.dense_features, 13);
  EXPECT_EQ(c.bottom_layers, (std::vector<int>{512, 256, 64, 64}));
  EXPECT_EQ(c.top_layers, (std::vector<int>{512, 256, 1}));
  EXPECT_EQ(c.interaction_width(), 64 + 27 * 26 / 2);
  int64_t largest = 0;
  for (int64_t r : c.table_rows) largest = std::max(largest, r);
  EXPECT_EQ(largest, 100'000);
  EXPECT_EQ(c.table_rows[8], 3);
  const DlrmConfig uncapped = criteo_kaggle(16, 0, 1.0);
  EXPECT_EQ(uncapped.table_rows[2], 10131227);
  const DlrmConfig scaled = criteo_kaggle(16, 0, 0.01);
  EXPECT_EQ(scaled.table_rows[2], 101313);  // ceil(10131227 / 100)
  EXPECT_EQ(scaled.table_rows[8], 1);       // ceil(0.03)
  EXPECT_THROW(criteo_kaggle(0), UsageError);
  EXPECT_THROW(criteo_kaggle(16, 100, -1.0), UsageError);
}

TEST(DlrmModel, DeterministicInit) {
  DLRM_SINGLE_PROCESS();
  Dlrm a(small_config(), 5), b(small_config(), 5), c(small_config(), 6);
  auto params = [](Dlrm& m) {
    std::vector<float> v(m.bottom().parameters().begin(), m.bottom().parameters().end());
    v.insert(v.end(), m.top().parameters().begin(), m.top().parameters().end());
    for (int t = 0; t < m.config().tables(); ++t)
      v.insert(v.end(), m.table(t).weights().begin(), m.table(t).weights().end());
    return v;
  };
  EXPECT_EQ(params(a), params(b));
  EXPECT_NE(params(a), params(c));
  EXPECT_EQ(params(a).size(), a.parameter_count());
}

// A batch of the small config with every table used, duplicates included.
Batch small_batch(const DlrmConfig& c, int n, uint64_t seed) {
  DataConfig dc;
  dc.seed = seed;
  dc.calibration_samples = 64;
  SyntheticClicks data(c, dc);
  return data.make_batch(Split::train, 0, 0, n);
}

TEST(DlrmModel, GradientsMatchFiniteDifferences) {
  DLRM_SINGLE_PROCESS();
  DlrmConfig c = small_config();
  c.embedding_init_scale = 0.5f;  // embeddings large enough to matter
  Dlrm model(c, 17);
  const Batch batch = small_batch(c, 6, 3);
  auto loss = [&] {
    std::vector<float> z(static_cast<size_t>(batch.size));
    model.forward(batch, z);
    return bce_with_logits(z.data(), batch.labels.data(), batch.size, nullptr);
  };
  model.forward_backward(batch);
  const std::vector<float> gb(model.bottom().gradients().begin(), model.bottom().gradients().end());
  const std::vector<float> gt(model.top().gradients().begin(), model.top().gradients().end());
  // A step of 1e-3: ReLU kinks of the whole model lie closer than 1e-2.
  const float h = 1e-3f;
  expect_gradient("bottom", model.bottom().parameters(), gb, pick(gb.size(), 40, 1), loss, h);
  expect_gradient("top", model.top().parameters(), gt, pick(gt.size(), 40, 2), loss, h);
  for (int t = 0; t < c.tables(); ++t) {
    EmbeddingShard& table = model.table(t);
    std::vector<float> dense(table.weights().size(), 0.0f);
    table.scatter(model.table_gradient(t), dense.data());
    // Every touched element and a few untouched ones.
    std::vector<size_t> idx;
    for (int32_t r : model.table_gradient(t).rows)
      for (int j = 0; j < c.embedding_dim; ++j)
        idx.push_back(static_cast<size_t>(r) * c.embedding_dim + static_cast<size_t>(j));
    if (idx.size() > 30) idx.resize(30);
    for (size_t i : pick(dense.size(), 3, 9)) idx.push_back(i);
    expect_gradient(("table " + std::to_string(t)).c_str(), table.weights(), dense, idx, loss, h);
  }
}

TEST(DlrmModel, SparseSgdTouchesOnlyLookedUpRows) {
  DLRM_SINGLE_PROCESS();
  const DlrmConfig c = small_config();
  Dlrm model(c, 23);
  const Batch batch = small_batch(c, 4, 8);
  const std::vector<float> before(model.table(2).weights().begin(), model.table(2).weights().end());
  OptimizerConfig opt;
  opt.embedding_lr = 0.5f;
  model.forward_backward(batch);
  std::vector<float> dense(before.size(), 0.0f);
  model.table(2).scatter(model.table_gradient(2), dense.data());
  model.apply(opt, 0.25f);
  const auto after = model.table(2).weights();
  for (size_t i = 0; i < before.size(); ++i)
    EXPECT_FLOAT_EQ(after[i], before[i] - 0.5f * 0.25f * dense[i]) << i;
  std::vector<bool> looked_up(static_cast<size_t>(c.table_rows[2]), false);
  for (int32_t r : batch.tables[2].indices) looked_up[static_cast<size_t>(r)] = true;
  for (size_t r = 0; r < looked_up.size(); ++r) {
    if (looked_up[r]) continue;
    for (int j = 0; j < c.embedding_dim; ++j)
      EXPECT_EQ(after[r * c.embedding_dim + j], before[r * c.embedding_dim + j]);
  }
}

// Row-wise Adagrad by hand: a table of 4 rows, d = 2; bag 0 = {1, 1, 3},
// bag 1 = {1}; dout = [[1, 2], [3, -4]], scale 0.5, lr 0.1, eps 1e-8.
// Row 1: g = 2 * [1, 2] + [3, -4] = [5, 0], scaled [2.5, 0]: s = 6.25 / 2 =
// 3.125; w -= 0.1 * [2.5, 0] / (sqrt(3.125) + eps). Row 3: g = [1, 2] ->
// [0.5, 1], s = 1.25 / 2 = 0.625. Rows 0 and 2 untouched. The second step
// (same gradient) adds the same to s: s = 6.25 and 1.25.
TEST(DlrmModel, RowwiseAdagradByHand) {
  DLRM_SINGLE_PROCESS();
  EmbeddingShard table(0, 4, 2, 0, 4, 0, 2, 1, 0.3f);
  const std::vector<float> w0(table.weights().begin(), table.weights().end());
  Lookups l;
  l.indices = {1, 1, 3, 1};
  l.offsets = {0, 3, 4};
  const std::vector<float> dout = {1, 2, 3, -4};
  SparseGrad g;
  std::vector<float> sums;
  auto step = [&] {
    table.begin_backward(g);
    table.backward(l, 0, 2, dout.data(), 2, g);
    table.row_square_sums(g, 0.5f, sums);
    table.rowwise_adagrad(g, 0.1f, 1e-8f, 0.5f, sums.data());
  };
  step();
  ASSERT_EQ(g.rows, (std::vector<int32_t>{1, 3}));
  EXPECT_FLOAT_EQ(table.adagrad_state()[1], 3.125f);
  EXPECT_FLOAT_EQ(table.adagrad_state()[3], 0.625f);
  EXPECT_EQ(table.adagrad_state()[0], 0.0f);
  EXPECT_EQ(table.adagrad_state()[2], 0.0f);
  const double d1 = std::sqrt(3.125) + 1e-8, d3 = std::sqrt(0.625) + 1e-8;
  EXPECT_NEAR(table.weights()[2], w0[2] - 0.1 * 2.5 / d1, 1e-6);
  EXPECT_NEAR(table.weights()[3], w0[3], 1e-7);
  EXPECT_NEAR(table.weights()[6], w0[6] - 0.1 * 0.5 / d3, 1e-6);
  EXPECT_NEAR(table.weights()[7], w0[7] - 0.1 * 1.0 / d3, 1e-6);
  for (int i : {0, 1, 4, 5})
    EXPECT_EQ(table.weights()[static_cast<size_t>(i)], w0[static_cast<size_t>(i)]);
  step();
  EXPECT_FLOAT_EQ(table.adagrad_state()[1], 6.25f);
  EXPECT_FLOAT_EQ(table.adagrad_state()[3], 1.25f);
  EXPECT_NEAR(table.weights()[2], w0[2] - 0.1 * 2.5 / d1 - 0.1 * 2.5 / (2.5 + 1e-8), 1e-6);
  EXPECT_NEAR(table.weights()[7], w0[7] - 0.1 / d3 - 0.1 / (std::sqrt(1.25) + 1e-8), 1e-6);
  // The dense path (a replicated table) gives the same from the same gradient.
  EmbeddingShard dense_table(0, 4, 2, 0, 4, 0, 2, 1, 0.3f);
  std::vector<float> dense(8, 0.0f);
  table.scatter(g, dense.data());
  dense_table.rowwise_adagrad_dense(dense.data(), 0.1f, 1e-8f, 0.5f);
  dense_table.rowwise_adagrad_dense(dense.data(), 0.1f, 1e-8f, 0.5f);
  for (size_t i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(dense_table.weights()[i], table.weights()[i]);
  for (size_t i = 0; i < 4; ++i)
    EXPECT_FLOAT_EQ(dense_table.adagrad_state()[i], table.adagrad_state()[i]);
}

}  // namespace
}  // namespace paralab::dlrm::test
