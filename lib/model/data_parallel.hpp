// data_parallel.hpp: data-parallel training over the ranks of a
// communicator. Every rank holds the whole model (replicated weights and
// optimizer state) and trains on its rows of the global batch:
//
//   1. rank r takes rows row_share(B, r, N) of the global batch of B
//      sequences (contiguous; the first B % N ranks take one row more, a rank
//      may take none when B < N);
//   2. forward and backward on those rows with the GLOBAL counted-token count
//      as the normaliser (Model::forward_backward), so the per-rank gradients
//      sum to the gradient of the global mean loss;
//   3. one all-reduce (sum) of Parameters::grads(), a single flat array:
//        f32   in FP32: equal to the single-rank gradient up to the order of
//              the FP32 additions (about 1e-7 relative);
//        bf16  the FP32 gradients rounded to BF16 (nearest even,
//              kernels::cpu::convert), summed in BF16 by the MPI backend (its
//              reduction widens both operands to FP32, adds, and rounds the sum
//              to nearest even, so the sum is rounded again at EVERY reduction
//              step of the MPI algorithm: the error grows with the rank count),
//              then widened back to FP32. One rank still rounds once, so a run
//              means the same numerics at every rank count;
//   4. global-norm clipping, the scheduled learning rate and the optimizer
//      step, replicated: every rank runs them on the same reduced gradients,
//      so the weights stay bitwise identical without broadcasting them
//      (replicas_agree() checks it with a fingerprint all-reduce).
//
// The loss reported is the global mean over counted tokens (a small FP64
// all-reduce). A step at N ranks equals the single-rank step on the same
// global batch (tests/mpi/test_data_parallel.cpp, 1..4 ranks, B % N != 0).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "comm/comm.hpp"
#include "core/bf16.hpp"
#include "model/data.hpp"
#include "model/trainer.hpp"

namespace paralab::model {

// The type the gradients are all-reduced in.
enum class GradDType { f32, bf16 };
// "f32" or "bf16"; anything else is a UsageError naming the valid values.
GradDType parse_grad_dtype(std::string_view text);
std::string_view to_string(GradDType type);

// Rows [first, first + count) of a global batch of `rows` sequences that rank
// `rank` of `ranks` trains on.
struct RowShare {
  int first = 0;
  int count = 0;
};
RowShare row_share(int rows, int rank, int ranks);

// One data-parallel step: TrainStep's fields (the loss is the global mean)
// plus the global token count and this rank's time in each phase.
struct DataParallelStep : TrainStep {
  int64_t tokens = 0;      // counted tokens of the global batch
  double compute_s = 0;    // forward and backward on this rank's rows
  double allreduce_s = 0;  // the gradient all-reduce, BF16 conversions included
  double update_s = 0;     // clipping and the optimizer step
};

class DataParallelTrainer {
 public:
  // clip <= 0: no clipping. Throws UsageError for an invalid schedule. The
  // trainer keeps references to all four; every rank of `comm` constructs
  // one over a model and optimizer built alike (same config, seed, policy).
  DataParallelTrainer(Model& model, Optimizer& optimizer, comm::Communicator& comm,
                      const LrSchedule& schedule, double clip = 1.0,
                      GradDType grad_dtype = GradDType::f32);

  // Collective. `global` is the whole batch, the same on every rank; this
  // rank trains on its row_share of it.
  DataParallelStep step(const SampledBatch& global);
  // Collective. The same from this rank's rows alone (any split of the global
  // batch): the global counted-token count comes from an extra all-reduce.
  DataParallelStep step_local(const Batch& local);
  // Collective: the global mean loss of `global` (each rank evaluates its
  // rows; gradients untouched).
  double evaluate(const SampledBatch& global);

  // Collective: true when every rank holds bitwise the same stored weights,
  // Kahan compensation, optimizer state and step count.
  bool replicas_agree();

  int64_t steps() const { return optimizer_.steps(); }
  GradDType grad_dtype() const { return grad_dtype_; }
  comm::Communicator& comm() { return comm_; }
  Model& model() { return model_; }

 private:
  DataParallelStep run(const Batch& local, int64_t global_tokens);
  void allreduce_grads();
  double sum_over_ranks(double local);

  Model& model_;
  Optimizer& optimizer_;
  comm::Communicator& comm_;
  LrSchedule schedule_;
  double clip_;
  GradDType grad_dtype_;
  std::vector<bf16> bf16_grads_;
};

// A 64-bit fingerprint (FNV-1a) of the stored weights (values(), or
// bf16_values() under the pure policies), the Kahan compensation, the
// optimizer state and its step count: equal fingerprints mean equal
// training states, for replica checks and tests.
uint64_t state_fingerprint(const Parameters& params, Optimizer& optimizer);

}  // namespace paralab::model
