// trainer.hpp: one training step of a Model: zero gradients, forward and
// backward, global-norm clipping, the scheduled learning rate, an optimizer
// step. A data-parallel trainer inserts its gradient all-reduce between
// backward and clipping (Parameters::grads() is one flat array).
#pragma once

#include <cstdint>

#include "model/model.hpp"
#include "model/optimizer.hpp"

namespace paralab::model {

struct TrainStep {
  int64_t step = 0;      // 0-based index of the step just taken
  double loss = 0;       // mean loss of the batch, before the update
  float lr = 0;          // learning rate used
  double grad_norm = 0;  // before clipping
  UpdateStats updates;
};

class Trainer {
 public:
  // clip <= 0: no clipping. Throws UsageError for an invalid schedule.
  Trainer(Model& model, Optimizer& optimizer, const LrSchedule& schedule, double clip = 1.0);
  TrainStep step(const Batch& batch);
  int64_t steps() const { return optimizer_.steps(); }

 private:
  Model& model_;
  Optimizer& optimizer_;
  LrSchedule schedule_;
  double clip_;
};

}  // namespace paralab::model
