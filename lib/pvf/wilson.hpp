// wilson.hpp: the Wilson score interval of a binomial proportion (Wilson
// 1927): k successes in n trials at normal quantile z (1.96 for 95%):
//   center = (p + z^2 / 2n) / (1 + z^2 / n),  p = k / n
//   half   = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / 4n^2)
// Unlike the normal (Wald) interval it stays inside [0, 1] and is not empty
// at k = 0, which is the common case of a robust component.
#pragma once

#include <cstdint>

namespace paralab::pvf {

inline constexpr double kZ95 = 1.959963984540054;

struct Interval {
  double low = 0, high = 1;
  double width() const { return high - low; }
};

// n = 0 gives [0, 1]. Requires 0 <= k <= n.
Interval wilson(int64_t successes, int64_t trials, double z = kZ95);

}  // namespace paralab::pvf
