#include "model/trainer.hpp"

namespace paralab::model {

Trainer::Trainer(Model& model, Optimizer& optimizer, const LrSchedule& schedule, double clip)
    : model_(model), optimizer_(optimizer), schedule_(schedule), clip_(clip) {
  validate(schedule_);
}

TrainStep Trainer::step(const Batch& batch) {
  TrainStep result;
  result.step = optimizer_.steps();
  model_.parameters().zero_grads();
  result.loss = model_.forward_backward(batch);
  result.grad_norm = clip_grad_norm(model_.parameters(), clip_);
  result.lr = schedule_.at(result.step);
  result.updates = optimizer_.step(model_.parameters(), result.lr);
  return result;
}

}  // namespace paralab::model
