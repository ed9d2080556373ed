// gradient_check.hpp: what every finite-difference test needs, shared by the
// training-engine (tests/model) and DLRM (tests/dlrm) tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace paralab::test {

// n values uniform in [-scale, scale] from `seed`.
inline std::vector<float> random_vector(size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// sum_i r[i] * y[i] in double: the scalar objective whose gradient with
// respect to y is r, so backward(dy = r) must give d(objective)/d(inputs).
inline double dot(std::span<const float> r, std::span<const float> y) {
  double s = 0;
  for (size_t i = 0; i < r.size(); ++i) s += double{r[i]} * y[i];
  return s;
}

}  // namespace paralab::test
