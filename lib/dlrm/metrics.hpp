// metrics.hpp: click-prediction metrics over a set of scores and 0/1 labels.
#pragma once

#include <span>

namespace paralab::dlrm {

// Area under the ROC curve, exactly: the Mann-Whitney statistic from one
// sort, tied scores counted as half (midranks), so it equals the fraction of
// (positive, negative) pairs ranked correctly, ties half. Labels are 0 or 1
// (> 0.5 counts as positive). NaN when either class is empty.
double auc(std::span<const float> scores, std::span<const float> labels);

// Mean binary cross-entropy of logits (the stable form of layers.hpp), the
// "log loss" of the click-prediction literature, in nats.
double log_loss(std::span<const float> logits, std::span<const float> labels);

}  // namespace paralab::dlrm
