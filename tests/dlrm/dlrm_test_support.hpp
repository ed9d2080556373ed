// dlrm_test_support.hpp: helpers shared by the DLRM tests: small configs,
// random buffers, central finite differences, and skipping single-process
// tests above one rank.
#pragma once

#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <span>
#include <vector>

#include "../common/gradient_check.hpp"

#include "dlrm/model.hpp"

namespace paralab::dlrm::test {

inline int world_size() {
  int n = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}
inline int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

// Single-process tests run once, in the one-rank run.
#define DLRM_SINGLE_PROCESS()                    \
  if (::paralab::dlrm::test::world_size() > 1) { \
    GTEST_SKIP() << "single-process test";       \
  }                                              \
  static_assert(true)

using ::paralab::test::dot;
using ::paralab::test::random_vector;

// Central difference of f in x[i] with step h (the FP32 step actually
// taken); x[i] restored.
inline double central_difference(float& x, const std::function<double()>& f, float h) {
  const float x0 = x;
  const float up = x0 + h, down = x0 - h;
  x = up;
  const double f_up = f();
  x = down;
  const double f_down = f();
  x = x0;
  return (f_up - f_down) / (double{up} - double{down});
}

// Checks analytic gradient g of f at the given indices of x against central
// differences: |fd - g| <= atol + rtol * max|g|.
inline void expect_gradient(const char* what, std::span<float> x, std::span<const float> g,
                            const std::vector<size_t>& indices, const std::function<double()>& f,
                            float h = 1e-2f, double rtol = 2e-3, double atol = 1e-5) {
  double scale = 0;
  for (float v : g) scale = std::max(scale, double{std::abs(v)});
  for (size_t i : indices) {
    const double fd = central_difference(x[i], f, h);
    EXPECT_NEAR(fd, g[i], atol + rtol * scale) << what << " element " << i;
  }
}

inline std::vector<size_t> pick(size_t n, size_t count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<size_t> v;
  for (size_t i = 0; i < std::min(n, count); ++i) v.push_back(n <= count ? i : rng() % n);
  return v;
}

// A small DLRM: 5 tables of uneven sizes and pooling.
inline DlrmConfig small_config(int d = 6) {
  DlrmConfig c;
  c.dense_features = 5;
  c.embedding_dim = d;
  c.bottom_layers = {12, d};
  c.top_layers = {16, 8, 1};
  c.table_rows = {40, 7, 300, 1, 25};
  c.pooling = {2, 1, 3, 1, 2};
  return c;
}

}  // namespace paralab::dlrm::test
