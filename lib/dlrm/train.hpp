// train.hpp: the single-rank training loop pieces: train on consecutive
// batches of the synthetic click logs and evaluate AUC and log loss on the
// held-out split (distributed.hpp has the sharded versions).
#pragma once

#include <cstdint>
#include <vector>

#include "dlrm/data.hpp"
#include "dlrm/model.hpp"

namespace paralab::dlrm {

struct EvalResult {
  double auc = 0;
  double log_loss = 0;
  double click_rate = 0;  // mean label
  int64_t samples = 0;
};

// Trains on train batches first_batch .. first_batch + steps - 1 of
// batch_size samples; returns each step's mean loss.
std::vector<double> train(Dlrm& model, SyntheticClicks& data, int steps, int batch_size,
                          const OptimizerConfig& opt, int64_t first_batch = 0);

// The model on eval batches 0 .. batches - 1 of batch_size samples.
EvalResult evaluate(Dlrm& model, SyntheticClicks& data, int batches, int batch_size);
// The teacher's own label logits on the same samples: the ceiling a student
// can reach on this data.
EvalResult evaluate_teacher(SyntheticClicks& data, int batches, int batch_size);

}  // namespace paralab::dlrm
