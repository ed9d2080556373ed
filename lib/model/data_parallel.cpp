// Data-parallel training step; see data_parallel.hpp.
#include "model/data_parallel.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "core/errors.hpp"
#include "core/timer.hpp"
#include "kernels/bf16.hpp"

namespace paralab::model {

namespace {

int64_t counted_tokens(std::span<const int32_t> targets) {
  int64_t counted = 0;
  for (int32_t t : targets) counted += t >= 0;
  return counted;
}

// FNV-1a over raw bytes, continued from h.
uint64_t fnv1a(uint64_t h, const void* data, size_t bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < bytes; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

}  // namespace

GradDType parse_grad_dtype(std::string_view text) {
  if (text == "f32") return GradDType::f32;
  if (text == "bf16") return GradDType::bf16;
  throw UsageError("unknown gradient type '" + std::string(text) + "' (valid: f32, bf16)");
}

std::string_view to_string(GradDType type) {
  return type == GradDType::bf16 ? "bf16" : "f32";
}

RowShare row_share(int rows, int rank, int ranks) {
  const int base = rows / ranks, extra = rows % ranks;
  return {rank * base + std::min(rank, extra), base + (rank < extra ? 1 : 0)};
}

DataParallelTrainer::DataParallelTrainer(Model& model, Optimizer& optimizer,
                                         comm::Communicator& comm, const LrSchedule& schedule,
                                         double clip, GradDType grad_dtype)
    : model_(model),
      optimizer_(optimizer),
      comm_(comm),
      schedule_(schedule),
      clip_(clip),
      grad_dtype_(grad_dtype) {
  validate(schedule_);
}

DataParallelStep DataParallelTrainer::step(const SampledBatch& global) {
  const RowShare share = row_share(global.batch, comm_.rank(), comm_.size());
  const SampledBatch local = global.rows(share.first, share.count);
  return run(local.view(), counted_tokens(global.targets));
}

DataParallelStep DataParallelTrainer::step_local(const Batch& local) {
  int64_t global_tokens = counted_tokens(local.targets);
  comm_.allreduce(&global_tokens, &global_tokens, 1, DType::i64, comm::ReduceOp::sum);
  return run(local, global_tokens);
}

DataParallelStep DataParallelTrainer::run(const Batch& local, int64_t global_tokens) {
  Parameters& params = model_.parameters();
  DataParallelStep out;
  out.step = optimizer_.steps();
  out.tokens = global_tokens;

  Stopwatch watch;
  params.zero_grads();
  double loss_sum = 0;
  if (local.batch > 0) {
    const double mean = model_.forward_backward(local, static_cast<double>(global_tokens));
    loss_sum = mean * static_cast<double>(counted_tokens(local.targets));
  }
  out.compute_s = watch.seconds();

  watch.restart();
  allreduce_grads();
  out.loss = global_tokens > 0 ? sum_over_ranks(loss_sum) / static_cast<double>(global_tokens) : 0;
  out.allreduce_s = watch.seconds();

  watch.restart();
  out.grad_norm = clip_grad_norm(params, clip_);
  out.lr = schedule_.at(out.step);
  out.updates = optimizer_.step(params, out.lr);
  out.update_s = watch.seconds();
  return out;
}

void DataParallelTrainer::allreduce_grads() {
  std::span<float> grads = model_.parameters().grads();
  if (grad_dtype_ == GradDType::f32) {
    if (comm_.size() > 1)
      comm_.allreduce(grads.data(), grads.data(), grads.size(), DType::f32, comm::ReduceOp::sum);
    return;
  }
  bf16_grads_.resize(grads.size());
  kernels::cpu::convert(grads.data(), bf16_grads_.data(), grads.size(),
                        kernels::Rounding::nearest_even);
  if (comm_.size() > 1)
    comm_.allreduce(bf16_grads_.data(), bf16_grads_.data(), bf16_grads_.size(), DType::bf16,
                    comm::ReduceOp::sum);
  kernels::cpu::convert(bf16_grads_.data(), grads.data(), grads.size());
}

double DataParallelTrainer::sum_over_ranks(double local) {
  if (comm_.size() > 1) comm_.allreduce(&local, &local, 1, DType::f64, comm::ReduceOp::sum);
  return local;
}

double DataParallelTrainer::evaluate(const SampledBatch& global) {
  const RowShare share = row_share(global.batch, comm_.rank(), comm_.size());
  double loss_sum = 0;
  if (share.count > 0) {
    const SampledBatch local = global.rows(share.first, share.count);
    loss_sum = model_.evaluate(local.view()) * static_cast<double>(counted_tokens(local.targets));
  }
  const int64_t tokens = counted_tokens(global.targets);
  return tokens > 0 ? sum_over_ranks(loss_sum) / static_cast<double>(tokens) : 0;
}

bool DataParallelTrainer::replicas_agree() {
  const uint64_t mine = state_fingerprint(model_.parameters(), optimizer_);
  // max of the fingerprint and of its complement: both equal everywhere
  // exactly when max == min.
  int64_t both[2];
  std::memcpy(&both[0], &mine, sizeof mine);
  const uint64_t complement = ~mine;
  std::memcpy(&both[1], &complement, sizeof complement);
  comm_.allreduce(both, both, 2, DType::i64, comm::ReduceOp::max);
  uint64_t largest = 0, largest_complement = 0;
  std::memcpy(&largest, &both[0], sizeof largest);
  std::memcpy(&largest_complement, &both[1], sizeof largest_complement);
  // Signed max over the bit patterns: equal patterns give back `mine` on
  // every rank; any difference makes one of the two maxima differ from it.
  return largest == mine && largest_complement == complement;
}

uint64_t state_fingerprint(const Parameters& params, Optimizer& optimizer) {
  uint64_t h = 0xcbf29ce484222325ull;
  if (stores_bf16_weights(params.precision())) {
    h = fnv1a(h, params.bf16_values().data(), params.bf16_values().size_bytes());
  } else {
    h = fnv1a(h, params.values().data(), params.values().size_bytes());
  }
  auto& mutable_params = const_cast<Parameters&>(params);  // kahan() has no const overload
  h = fnv1a(h, mutable_params.kahan().data(), mutable_params.kahan().size_bytes());
  for (const auto& [name, state] : optimizer.state()) {
    h = fnv1a(h, name.data(), name.size());
    h = fnv1a(h, state.data(), state.size_bytes());
  }
  const int64_t steps = optimizer.steps();
  return fnv1a(h, &steps, sizeof steps);
}

}  // namespace paralab::model
