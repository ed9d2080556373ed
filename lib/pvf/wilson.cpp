#include "pvf/wilson.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace paralab::pvf {

Interval wilson(int64_t successes, int64_t trials, double z) {
  if (successes < 0 || successes > trials) throw std::invalid_argument("wilson: need 0 <= k <= n");
  if (trials == 0) return {};
  const double n = static_cast<double>(trials), p = static_cast<double>(successes) / n;
  const double z2 = z * z, denom = 1 + z2 / n;
  const double center = (p + z2 / (2 * n)) / denom;
  const double half = z / denom * std::sqrt(p * (1 - p) / n + z2 / (4 * n * n));
  return {std::max(0.0, center - half), std::min(1.0, center + half)};
}

}  // namespace paralab::pvf
