// metrics.cpp: AUC and log loss (metrics.hpp).
#include "dlrm/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "dlrm/layers.hpp"

namespace paralab::dlrm {

double auc(std::span<const float> scores, std::span<const float> labels) {
  if (scores.size() != labels.size())
    throw std::invalid_argument("auc: scores and labels differ in length");
  const size_t n = scores.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  // Sum of the (mid)ranks of the positives, ranks from 1.
  double rank_sum = 0, positives = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && scores[order[j]] == scores[order[i]]) ++j;
    const double midrank = 0.5 * (static_cast<double>(i + 1) + static_cast<double>(j));
    for (size_t k = i; k < j; ++k)
      if (labels[order[k]] > 0.5f) {
        rank_sum += midrank;
        positives += 1;
      }
    i = j;
  }
  const double negatives = static_cast<double>(n) - positives;
  if (positives == 0 || negatives == 0) return std::numeric_limits<double>::quiet_NaN();
  return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives);
}

double log_loss(std::span<const float> logits, std::span<const float> labels) {
  if (logits.size() != labels.size())
    throw std::invalid_argument("log_loss: logits and labels differ in length");
  if (logits.empty()) return 0;
  return bce_with_logits(logits.data(), labels.data(), static_cast<int>(logits.size()), nullptr) /
         static_cast<double>(logits.size());
}

}  // namespace paralab::dlrm
