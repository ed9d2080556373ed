// The synthetic click logs and the metrics: samples are pure functions of
// their coordinates, the popularity follows the Zipf law, dense features
// are N(0, 1), the click rate is the requested one and the teacher's labels
// carry signal; AUC against a brute-force pair count, log loss against its
// formula.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <vector>

#include "core/errors.hpp"
#include "dlrm/data.hpp"
#include "dlrm/metrics.hpp"
#include "dlrm/train.hpp"
#include "dlrm_test_support.hpp"

namespace paralab::dlrm::test {
namespace {

DataConfig small_data(uint64_t seed = 4) {
  DataConfig d;
  d.seed = seed;
  d.calibration_samples = 1024;
  return d;
}

TEST(DlrmData, SamplesArePureFunctionsOfTheirIndex) {
  DLRM_SINGLE_PROCESS();
  const DlrmConfig c = small_config();
  SyntheticClicks data(c, small_data());
  const Batch whole = data.make_batch(Split::train, 5, 0, 20);
  const Batch part = data.make_batch(Split::train, 5, 7, 6);
  check_batch(c, whole);
  for (int b = 0; b < 6; ++b) {
    EXPECT_EQ(part.labels[static_cast<size_t>(b)], whole.labels[static_cast<size_t>(b) + 7]);
    EXPECT_EQ(part.label_logits[static_cast<size_t>(b)],
              whole.label_logits[static_cast<size_t>(b) + 7]);
    for (int f = 0; f < c.dense_features; ++f)
      EXPECT_EQ(part.dense[static_cast<size_t>(b * c.dense_features + f)],
                whole.dense[static_cast<size_t>((b + 7) * c.dense_features + f)]);
    for (int t = 0; t < c.tables(); ++t) {
      const int pool = c.pooling[static_cast<size_t>(t)];
      EXPECT_EQ(part.tables[static_cast<size_t>(t)].offsets[static_cast<size_t>(b)], b * pool);
      for (int j = 0; j < pool; ++j)
        EXPECT_EQ(
            part.tables[static_cast<size_t>(t)].indices[static_cast<size_t>(b * pool + j)],
            whole.tables[static_cast<size_t>(t)].indices[static_cast<size_t>((b + 7) * pool + j)]);
    }
  }
  // Another generator with the same seed makes the same; other batches,
  // splits and seeds differ.
  SyntheticClicks again(c, small_data());
  EXPECT_EQ(again.make_batch(Split::train, 5, 0, 20).dense, whole.dense);
  EXPECT_NE(data.make_batch(Split::train, 6, 0, 20).dense, whole.dense);
  EXPECT_NE(data.make_batch(Split::eval, 5, 0, 20).dense, whole.dense);
  SyntheticClicks other(c, small_data(5));
  EXPECT_NE(other.make_batch(Split::train, 5, 0, 20).dense, whole.dense);
}

TEST(DlrmData, ZipfPopularity) {
  DLRM_SINGLE_PROCESS();
  DlrmConfig c = small_config();
  c.table_rows = {1000};
  c.pooling = {8};
  DataConfig dc = small_data();
  dc.zipf_exponent = 1.05;
  SyntheticClicks data(c, dc);
  const int n = 25000, draws = n * 8;
  const Batch b = data.make_batch(Split::train, 0, 0, n);
  std::vector<int> count(1000, 0);
  for (int32_t r : b.tables[0].indices) ++count[static_cast<size_t>(r)];
  // The hottest ranks, one by one, within 5 sigma of the binomial count.
  for (int64_t q : {0, 1, 2, 5, 10, 50}) {
    const double p = data.rank_probability(0, q);
    const double expect = p * draws, sigma = std::sqrt(draws * p * (1 - p));
    EXPECT_NEAR(count[static_cast<size_t>(data.row_of_rank(0, q))], expect, 5 * sigma)
        << "rank " << q;
  }
  // The tail (ranks 500..999) as one bucket.
  double p_tail = 0;
  int tail = 0;
  for (int64_t q = 500; q < 1000; ++q) {
    p_tail += data.rank_probability(0, q);
    tail += count[static_cast<size_t>(data.row_of_rank(0, q))];
  }
  EXPECT_NEAR(tail, p_tail * draws, 5 * std::sqrt(draws * p_tail));
  // The permutation scatters the hot rows: the 10 hottest are not rows 0..9.
  int low = 0;
  for (int64_t q = 0; q < 10; ++q) low += data.row_of_rank(0, q) < 10;
  EXPECT_LT(low, 10);
  dc.scatter_hot_rows = false;
  SyntheticClicks plain(c, dc);
  EXPECT_EQ(plain.row_of_rank(0, 3), 3);
}

TEST(DlrmData, DenseFeaturesAndClickRate) {
  DLRM_SINGLE_PROCESS();
  const DlrmConfig c = small_config();
  SyntheticClicks data(c, small_data());
  const int n = 8000;
  const Batch b = data.make_batch(Split::eval, 0, 0, n);
  double s = 0, sq = 0;
  for (float x : b.dense) {
    s += x;
    sq += double{x} * x;
  }
  const double m = s / static_cast<double>(b.dense.size());
  EXPECT_NEAR(m, 0.0, 0.02);
  EXPECT_NEAR(sq / static_cast<double>(b.dense.size()) - m * m, 1.0, 0.03);
  double clicks = 0;
  for (float y : b.labels) {
    EXPECT_TRUE(y == 0.0f || y == 1.0f);
    clicks += y;
  }
  EXPECT_NEAR(clicks / n, 0.25, 0.02);
  // The teacher's own scores rank the labels well; threshold labels are
  // perfectly ranked by them.
  EXPECT_GT(auc(b.label_logits, b.labels), 0.8);
  DataConfig th = small_data();
  th.labels = LabelMode::threshold;
  th.click_rate = 0.4;
  SyntheticClicks thresholded(c, th);
  const Batch bt = thresholded.make_batch(Split::eval, 0, 0, n);
  EXPECT_DOUBLE_EQ(auc(bt.label_logits, bt.labels), 1.0);
  double clicks_t = 0;
  for (float y : bt.labels) clicks_t += y;
  EXPECT_NEAR(clicks_t / n, 0.4, 0.03);
}

TEST(DlrmData, ConfigValidation) {
  DLRM_SINGLE_PROCESS();
  DataConfig d;
  d.click_rate = 1.0;
  EXPECT_THROW(SyntheticClicks(small_config(), d), UsageError);
  d = DataConfig{};
  d.zipf_exponent = 0;
  EXPECT_THROW(SyntheticClicks(small_config(), d), UsageError);
}

double brute_force_auc(const std::vector<float>& s, const std::vector<float>& y) {
  double good = 0, pairs = 0;
  for (size_t i = 0; i < s.size(); ++i)
    for (size_t j = 0; j < s.size(); ++j)
      if (y[i] == 1 && y[j] == 0) {
        pairs += 1;
        good += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
      }
  return good / pairs;
}

TEST(DlrmMetrics, AucEqualsPairCount) {
  DLRM_SINGLE_PROCESS();
  std::mt19937_64 rng(3);
  for (int trial = 0; trial < 20; ++trial) {
    const size_t n = 5 + rng() % 300;
    std::vector<float> s(n), y(n);
    for (size_t i = 0; i < n; ++i) {
      s[i] = static_cast<float>(rng() % (trial % 2 ? 7 : 1000)) * 0.1f;  // many ties when odd
      y[i] = static_cast<float>(rng() % 3 == 0);
    }
    y[0] = 1;
    y[1] = 0;
    EXPECT_NEAR(auc(s, y), brute_force_auc(s, y), 1e-12) << "trial " << trial;
  }
  EXPECT_DOUBLE_EQ(auc(std::vector<float>{1, 2, 3, 4}, std::vector<float>{0, 0, 1, 1}), 1.0);
  EXPECT_DOUBLE_EQ(auc(std::vector<float>{1, 2, 3, 4}, std::vector<float>{1, 1, 0, 0}), 0.0);
  EXPECT_DOUBLE_EQ(auc(std::vector<float>{2, 2, 2, 2}, std::vector<float>{1, 0, 1, 0}), 0.5);
  EXPECT_TRUE(std::isnan(auc(std::vector<float>{1, 2}, std::vector<float>{1, 1})));
}

TEST(DlrmMetrics, LogLoss) {
  DLRM_SINGLE_PROCESS();
  const std::vector<float> z = {-2, 0.5f, 3}, y = {0, 1, 0};
  double expect = 0;
  for (size_t i = 0; i < 3; ++i) {
    const double p = 1 / (1 + std::exp(-double{z[i]}));
    expect -= y[i] * std::log(p) + (1 - y[i]) * std::log(1 - p);
  }
  EXPECT_NEAR(log_loss(z, y), expect / 3, 1e-12);
  EXPECT_NEAR(log_loss(std::vector<float>{0}, std::vector<float>{1}), std::log(2.0), 1e-12);
}

}  // namespace
}  // namespace paralab::dlrm::test
