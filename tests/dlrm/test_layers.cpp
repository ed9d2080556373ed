// Every DLRM layer's backward against central finite differences of its
// forward: the MLP (both activation placements), the dot interaction, the
// embedding bag on whole tables and on row/column shards (empty bags and
// duplicate indices), and BCE with logits (also at extreme logits). The
// objective is sum(r * output) for a fixed random r, so backward runs with
// d(output) = r.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "dlrm/layers.hpp"
#include "dlrm_test_support.hpp"

namespace paralab::dlrm::test {
namespace {

void check_mlp(bool relu_last, uint64_t seed) {
  const int n = 4, in = 5;
  Mlp mlp(in, {7, 3}, relu_last, seed, kBottomTensor);
  std::vector<float> x = random_vector(static_cast<size_t>(n) * in, seed + 1);
  const std::vector<float> r = random_vector(static_cast<size_t>(n) * 3, seed + 2);
  Mlp::Saved saved;
  auto f = [&] {
    const float* y = mlp.forward(x.data(), n, saved);
    return dot(r, std::span<const float>(y, static_cast<size_t>(n) * 3));
  };
  f();
  mlp.zero_gradients();
  std::vector<float> dx(x.size());
  mlp.backward(x.data(), saved, r.data(), dx.data());
  const std::vector<float> g(mlp.gradients().begin(), mlp.gradients().end());
  expect_gradient("mlp.dx", x, dx, pick(x.size(), 20, 3), f);
  expect_gradient("mlp.dparams", mlp.parameters(), g, pick(g.size(), 200, 4), f);
  // Gradients accumulate over calls.
  mlp.backward(x.data(), saved, r.data(), nullptr);
  for (size_t i = 0; i < g.size(); ++i) EXPECT_FLOAT_EQ(mlp.gradients()[i], 2 * g[i]);
}

TEST(DlrmLayers, MlpReluEverywhere) {
  DLRM_SINGLE_PROCESS();
  check_mlp(true, 11);
}

TEST(DlrmLayers, MlpLinearLast) {
  DLRM_SINGLE_PROCESS();
  check_mlp(false, 21);
}

TEST(DlrmLayers, MlpForwardMatchesFormula) {
  DLRM_SINGLE_PROCESS();
  Mlp mlp(3, {2}, false, 5, kTopTensor);
  const std::vector<float> x = {0.5f, -1.0f, 2.0f};
  Mlp::Saved saved;
  const float* y = mlp.forward(x.data(), 1, saved);
  for (int o = 0; o < 2; ++o) {
    double s = mlp.bias(0)[o];
    for (int i = 0; i < 3; ++i) s += double{mlp.weight(0)[o * 3 + i]} * x[static_cast<size_t>(i)];
    EXPECT_NEAR(y[o], s, 1e-6);
  }
}

TEST(DlrmLayers, Interaction) {
  DLRM_SINGLE_PROCESS();
  const int n = 3, F = 4, d = 5;
  const int width = d + interaction_pairs(F);
  EXPECT_EQ(interaction_pairs(F), 6);
  std::vector<float> t = random_vector(static_cast<size_t>(n) * F * d, 31);
  const std::vector<float> r = random_vector(static_cast<size_t>(n) * width, 32);
  std::vector<float> out(static_cast<size_t>(n) * width), dt(t.size());
  auto f = [&] {
    interaction_forward(t.data(), n, F, d, out.data());
    return dot(r, out);
  };
  f();
  // Layout: sample 1's pair (i = 2, j = 1) is entry d + 1 + 1.
  double z = 0;
  for (int e = 0; e < d; ++e) z += double{t[(1 * F + 2) * d + e]} * t[(1 * F + 1) * d + e];
  EXPECT_NEAR(out[static_cast<size_t>(1) * width + d + 2], z, 1e-6);
  EXPECT_EQ(out[static_cast<size_t>(2) * width + 3], t[static_cast<size_t>(2) * F * d + 3]);
  interaction_backward(t.data(), r.data(), n, F, d, dt.data());
  expect_gradient("interaction.dt", t, dt, pick(t.size(), 60, 33), f);
}

// Bags of a table of 10 rows: bag 1 is empty, bag 2 has row 4 twice.
Lookups test_lookups() {
  Lookups l;
  l.indices = {1, 9, 4, 4, 7, 0, 3, 8, 5};
  l.offsets = {0, 2, 2, 5, 9};
  return l;
}

void check_embedding(int64_t r0, int64_t r1, int c0, int c1) {
  const int dim = 4;
  EmbeddingShard shard(2, 10, dim, r0, r1, c0, c1, 7, 0.5f);
  const Lookups l = test_lookups();
  const int n = l.bags(), cols = c1 - c0;
  const std::vector<float> r = random_vector(static_cast<size_t>(n) * cols, 41);
  std::vector<float> out(r.size());
  auto f = [&] {
    shard.forward(l, 0, n, out.data(), static_cast<size_t>(cols));
    return dot(r, out);
  };
  f();
  // Pooled sums by hand, for the rows this shard holds.
  for (int b = 0; b < n; ++b)
    for (int c = 0; c < cols; ++c) {
      double s = 0;
      for (int k = l.offsets[static_cast<size_t>(b)]; k < l.offsets[static_cast<size_t>(b) + 1];
           ++k) {
        const int row = l.indices[static_cast<size_t>(k)];
        if (row >= r0 && row < r1) s += shard.weights()[static_cast<size_t>((row - r0) * cols + c)];
      }
      EXPECT_NEAR(out[static_cast<size_t>(b) * cols + c], s, 1e-6);
    }
  SparseGrad g;
  shard.begin_backward(g);
  // Two calls over bag ranges give the same as one.
  shard.backward(l, 0, 2, r.data(), static_cast<size_t>(cols), g);
  shard.backward(l, 2, n, r.data() + static_cast<size_t>(2) * cols, static_cast<size_t>(cols), g);
  std::vector<float> dense(shard.weights().size(), 0.0f);
  shard.scatter(g, dense.data());
  expect_gradient("embedding.dw", shard.weights(), dense, pick(dense.size(), 40, 42), f);
  // Only touched rows, each once.
  for (int32_t row : g.rows) EXPECT_TRUE(row >= 0 && row < r1 - r0);
  std::vector<int32_t> sorted = g.rows;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::unique(sorted.begin(), sorted.end()), sorted.end());
  // A second step starts clean.
  shard.begin_backward(g);
  EXPECT_EQ(g.touched(), 0u);
  shard.backward(l, 0, n, r.data(), static_cast<size_t>(cols), g);
  std::vector<float> again(shard.weights().size(), 0.0f);
  shard.scatter(g, again.data());
  EXPECT_EQ(again, dense);
}

TEST(DlrmLayers, EmbeddingBagWholeTable) {
  DLRM_SINGLE_PROCESS();
  check_embedding(0, 10, 0, 4);
}

TEST(DlrmLayers, EmbeddingBagRowShard) {
  DLRM_SINGLE_PROCESS();
  check_embedding(3, 8, 0, 4);
}

TEST(DlrmLayers, EmbeddingBagColumnShard) {
  DLRM_SINGLE_PROCESS();
  check_embedding(0, 10, 1, 3);
}

TEST(DlrmLayers, EmbeddingShardInitMatchesWholeTable) {
  DLRM_SINGLE_PROCESS();
  EmbeddingShard whole(3, 50, 6, 0, 50, 0, 6, 99);
  EmbeddingShard part(3, 50, 6, 17, 31, 2, 5, 99);
  for (int64_t r = 0; r < part.rows(); ++r)
    for (int c = 0; c < part.cols(); ++c)
      EXPECT_EQ(part.weights()[static_cast<size_t>(r * 3 + c)],
                whole.weights()[static_cast<size_t>((r + 17) * 6 + c + 2)]);
  const float bound = std::sqrt(1.0f / 50);
  for (float w : whole.weights()) EXPECT_LE(std::abs(w), bound);
  EmbeddingShard other(3, 50, 6, 0, 50, 0, 6, 100);
  EXPECT_NE(std::vector<float>(other.weights().begin(), other.weights().end()),
            std::vector<float>(whole.weights().begin(), whole.weights().end()));
}

TEST(DlrmLayers, BceWithLogits) {
  DLRM_SINGLE_PROCESS();
  std::vector<float> z = {-3.0f, -0.2f, 0.0f, 0.7f, 4.0f};
  const std::vector<float> y = {0, 1, 1, 0, 1};
  std::vector<float> dz(z.size());
  const double loss = bce_with_logits(z.data(), y.data(), 5, dz.data());
  double expect = 0;
  for (size_t i = 0; i < z.size(); ++i) {
    const double p = 1 / (1 + std::exp(-double{z[i]}));
    expect -= y[i] * std::log(p) + (1 - y[i]) * std::log(1 - p);
    EXPECT_NEAR(dz[i], p - y[i], 1e-6);
  }
  EXPECT_NEAR(loss, expect, 1e-9);
  auto f = [&] { return bce_with_logits(z.data(), y.data(), 5, nullptr); };
  expect_gradient("bce.dz", z, dz, {0, 1, 2, 3, 4}, f, 1e-2f, 1e-3);
  // Stable at extreme logits: no inf, no NaN, the right limits.
  const std::vector<float> big = {100.0f, -100.0f, 100.0f, -100.0f};
  const std::vector<float> yb = {0, 1, 1, 0};
  std::vector<float> db(4);
  const double lb = bce_with_logits(big.data(), yb.data(), 4, db.data());
  EXPECT_NEAR(lb, 200.0, 1e-9);
  EXPECT_FLOAT_EQ(db[0], 1.0f);
  EXPECT_FLOAT_EQ(db[1], -1.0f);
  EXPECT_NEAR(db[2], 0.0f, 1e-30f);
  EXPECT_NEAR(db[3], 0.0f, 1e-30f);
}

}  // namespace
}  // namespace paralab::dlrm::test
