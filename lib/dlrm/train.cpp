// train.cpp: single-rank training and evaluation (train.hpp).
#include "dlrm/train.hpp"

#include "core/errors.hpp"
#include "dlrm/metrics.hpp"

namespace paralab::dlrm {

namespace {

void check_sizes(int batches, int batch_size) {
  if (batches < 1 || batch_size < 1)
    throw UsageError("evaluation needs at least one batch of at least one sample");
}

EvalResult summarise(const std::vector<float>& scores, const std::vector<float>& labels) {
  EvalResult r;
  r.samples = static_cast<int64_t>(labels.size());
  r.auc = auc(scores, labels);
  r.log_loss = log_loss(scores, labels);
  double clicks = 0;
  for (float y : labels) clicks += y;
  r.click_rate = clicks / static_cast<double>(labels.size());
  return r;
}

}  // namespace

std::vector<double> train(Dlrm& model, SyntheticClicks& data, int steps, int batch_size,
                          const OptimizerConfig& opt, int64_t first_batch) {
  if (steps < 0 || batch_size < 1)
    throw UsageError("training needs a batch of at least one sample");
  std::vector<double> losses;
  Batch batch;
  for (int s = 0; s < steps; ++s) {
    data.make_batch(Split::train, first_batch + s, 0, batch_size, batch);
    losses.push_back(model.train_step(batch, opt));
  }
  return losses;
}

EvalResult evaluate(Dlrm& model, SyntheticClicks& data, int batches, int batch_size) {
  check_sizes(batches, batch_size);
  std::vector<float> scores, labels, logits(static_cast<size_t>(batch_size));
  Batch batch;
  for (int b = 0; b < batches; ++b) {
    data.make_batch(Split::eval, b, 0, batch_size, batch);
    model.forward(batch, logits);
    scores.insert(scores.end(), logits.begin(), logits.end());
    labels.insert(labels.end(), batch.labels.begin(), batch.labels.end());
  }
  return summarise(scores, labels);
}

EvalResult evaluate_teacher(SyntheticClicks& data, int batches, int batch_size) {
  check_sizes(batches, batch_size);
  std::vector<float> scores, labels;
  Batch batch;
  for (int b = 0; b < batches; ++b) {
    data.make_batch(Split::eval, b, 0, batch_size, batch);
    scores.insert(scores.end(), batch.label_logits.begin(), batch.label_logits.end());
    labels.insert(labels.end(), batch.labels.begin(), batch.labels.end());
  }
  return summarise(scores, labels);
}

}  // namespace paralab::dlrm
