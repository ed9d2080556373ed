// engine4d.hpp: 4D-parallel training of the lib/model transformer over an MPI
// process grid tp x cp x pp x dp (issue 7: wlb_4d; WLB-LLM, Wang et al.,
// OSDI'25, builds on this 4D setting). One step equals the single-rank
// model::Model step on the same global batch, up to the order of FP32
// additions (tests/parallel/test_engine4d.cpp).
//
// THE GRID. ProcessGrid dims {tp, cp, pp, dp}, innermost first (the tp ranks
// of a group are consecutive world ranks). Rank (t, c, s, r):
//   tp  Megatron tensor parallelism inside each layer (sharded_layer.hpp):
//       column-parallel Wq/Wk/Wv, w_gate/w_up, row-parallel Wo, w_down, an
//       all-reduce of each row-parallel output (forward) and of each
//       column-parallel input gradient (backward). Norms, embedding and LM
//       head are replicated: their gradients agree over the tp ranks.
//   cp  context parallelism: micro-batch tokens split by its CpShards; every
//       per-token computation on the local tokens, attention by CpAttention
//       (all-gather of K/V, reduce-scatter of dK/dV), RoPE from the global
//       document positions.
//   pp  pipeline stage s holds the layers stage_layers(L, s, pp) (stage 0 the
//       embedding, the last the final norm, LM head and loss); micro-batches
//       run the 1F1B schedule (schedule.hpp), activations and their gradients
//       travel between the same (t, c, r) of adjacent stages with
//       non-blocking sends and blocking receives on comm::Communicator (sizes
//       known to both: every rank holds every micro-batch of the step).
//   dp  replica r trains micro-batches [r m, (r + 1) m) of the step's
//       dp x m (the order lib/packing's Step uses).
//
// ONE STEP. forward_backward: zero the gradients, run 1F1B on this replica's
// micro-batches with the cross-entropy scaled by 1 / (the counted tokens of
// the WHOLE step, all replicas), then one flat FP32 all-reduce (sum) of the
// local gradient registry over the cp x dp ranks: the cp ranks hold different
// tokens of the same micro-batches and the dp ranks different micro-batches,
// so every parameter's gradient is a sum over both (for tp-replicated
// tensors too; their tp copies are already equal). train_step adds global
// gradient-norm clipping (each parameter counted exactly once: sharded
// tensors on every tp rank, tp-replicated ones on tp rank 0, summed over the
// tp x pp ranks of one cp x dp coordinate, where the reduced gradients live)
// and lib/model's AdamW on the local shards.
//
// PRECISION. fp32 is exact (the tests). bf16-mixed follows lib/model's policy
// (BF16 GEMM operands and attention inputs, FP32 everything else) and stays
// close, not bitwise equal, to the single rank: a BF16 rounding amplifies the
// different summation order. The pure BF16 policies run too (their stochastic
// rounding draws bits by the local registry index, so bf16-pure-sr is not the
// single-rank random stream).
//
// TIMING (StepReport). Per rank: forward_s / backward_s of each local
// micro-batch are the compute of that micro-batch on this stage (its tp
// all-reduces and CP collectives included, the pipeline transfers not);
// bubble_s = the 1F1B phase's wall time minus those: the time the stage
// waits for its neighbours; tp/cp/pp/dp_comm_s the time in each dimension's
// communication calls (pp: posting and waiting for the point-to-point
// transfers, so it contains most of the bubble).
#pragma once

#include <mpi.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "comm/comm.hpp"
#include "core/grid.hpp"
#include "model/config.hpp"
#include "model/layers.hpp"
#include "model/optimizer.hpp"
#include "model/parameters.hpp"
#include "model/precision.hpp"
#include "packing/packing.hpp"
#include "parallel/cp_attention.hpp"
#include "parallel/shard.hpp"
#include "parallel/sharded_layer.hpp"

namespace paralab::parallel {

struct Grid4 {
  int tp = 1, cp = 1, pp = 1, dp = 1;
  int size() const { return tp * cp * pp * dp; }
  std::string describe() const;  // "tp=2 x cp=1 x pp=2 x dp=1"
};
// UsageError unless every size is >= 1 and their product is world_size.
void validate(const Grid4& grid, int world_size);

// One micro-batch: the whole packed sequence (every rank holds every
// micro-batch of the step). targets[i] < 0 is not counted. doc_starts: the
// documents' first positions (ascending, empty = one document). shards: the
// CP split (packing::shard), one list of ranges per cp rank; may be empty
// when cp = 1 (the whole sequence). An empty micro-batch (no tokens: padding
// when the data ran out) is allowed and skipped by every stage.
struct TrainMicroBatch {
  std::vector<int32_t> tokens, targets;
  std::vector<int64_t> doc_starts;
  packing::CpShards shards;
};

struct StepReport {
  double loss = 0;             // global mean over the step's counted tokens
  double grad_norm = 0;        // train_step: the global norm before clipping
  int64_t tokens = 0;          // tokens of the whole step (every replica)
  int64_t counted_tokens = 0;  // of those, with a target >= 0
  // This rank's seconds:
  double step_s = 0;      // the whole call
  double pipeline_s = 0;  // the 1F1B phase (forwards, backwards, transfers)
  double bubble_s = 0;    // pipeline_s minus the forward and backward compute
  double tp_comm_s = 0, cp_comm_s = 0, pp_comm_s = 0, dp_comm_s = 0;
  double optimizer_s = 0;  // clipping and the AdamW step (train_step)
  // Per local micro-batch (this replica's, in order):
  std::vector<double> forward_s, backward_s;
  std::vector<int64_t> local_tokens;  // tokens this rank held of each
};

class Engine4D {
 public:
  // Collective over world. Weights equal model::Model(config, precision,
  // seed)'s, sliced. adamw: the optimizer train_step uses (state kept here).
  // Throws UsageError (on every rank, before any communication) for a grid
  // that does not match the world, pp above the layer count, tp not dividing
  // kv_heads, or an invalid config.
  Engine4D(MPI_Comm world, const model::ModelConfig& config, Grid4 grid, model::Precision precision,
           uint64_t seed, const model::AdamWConfig& adamw = {});
  ~Engine4D();
  Engine4D(const Engine4D&) = delete;
  Engine4D& operator=(const Engine4D&) = delete;

  // Collective. Gradients of the step's global mean loss (zeroed first), in
  // this rank's local registry, reduced over cp x dp. `step`: dp x m
  // micro-batches, identical on every rank. Throws UsageError (every rank)
  // when the count does not divide by dp or a micro-batch is invalid.
  StepReport forward_backward(std::span<const TrainMicroBatch> step);
  // Collective. forward_backward, global-norm clipping to `clip` (<= 0: none),
  // then one AdamW step at learning rate lr.
  StepReport train_step(std::span<const TrainMicroBatch> step, float lr, float clip);

  // Collective. The whole model's gradients / stored weights (FP32 view) in
  // the single-rank registry order (model::Model::parameters()), on every
  // rank. For tests and checkpoints; allocates the full model.
  std::vector<float> gather_full_gradients();
  std::vector<float> gather_full_weights();

  const Grid4& grid() const { return grid_; }
  const ShardPlan& plan() const { return plan_; }
  int tp_rank() const { return plan_.tp_rank; }
  int cp_rank() const { return cp_rank_; }
  int stage() const { return plan_.stage; }
  int dp_rank() const { return dp_rank_; }
  model::Parameters& parameters() { return params_; }  // this rank's shards
  int64_t optimizer_steps() const { return optimizer_.steps(); }

 private:
  struct InFlight;
  void initialise(uint64_t seed);
  std::vector<float> gather_full(bool gradients);
  void validate_step(std::span<const TrainMicroBatch> step) const;
  // Walks this stage's operations of the pipeline program over the non-empty
  // local micro-batches; local[k] reports into slot slots[k].
  void run_pipeline(std::span<const LocalSequence> local, std::span<const size_t> slots,
                    double normalizer, StepReport& report);
  // The operations of this stage's part of the pipeline program
  // (schedule::pipeline_program), one method per role. forward and backward
  // return their compute seconds.
  void receive_activation(int i, const LocalSequence& seq, StepReport& report);
  double forward(int i, const LocalSequence& seq, double normalizer, StepReport& report);
  void send_activation(int i, StepReport& report);
  void receive_gradient(int i, StepReport& report);
  double backward(int i, const LocalSequence& seq);
  void send_gradient(int i, StepReport& report);
  // Micro-batch i's state: taken from the spares when its forward starts,
  // returned when its backward is done (and its gradient sent).
  InFlight& start_forward(int i, const LocalSequence& seq, StepReport& report);
  void release(int i);
  std::unique_ptr<InFlight> acquire();
  void wait_send(InFlight& state, StepReport& report);
  double clip_gradients(float clip);

  Grid4 grid_;
  model::ModelConfig config_;
  ProcessGrid process_grid_;
  int cp_rank_ = 0, dp_rank_ = 0;
  ShardPlan plan_;
  // The grid's communicators (comm::Communicator over duplicates of its MPI
  // communicators): the whole grid, each dimension, and two products.
  std::unique_ptr<comm::Communicator> grid_comm_, tp_comm_, cp_comm_, pp_comm_;
  std::unique_ptr<comm::Communicator> grad_comm_;  // cp x dp: the ranks holding the same parameters
  std::unique_ptr<comm::Communicator> norm_comm_;  // tp x pp: every parameter once
  std::vector<TensorShard> shards_;

  model::Parameters params_;
  std::unique_ptr<model::Embedding> embedding_;  // stage 0
  std::vector<std::unique_ptr<ShardedLayer>> layers_;
  std::unique_ptr<model::RmsNorm> final_norm_;  // last stage
  std::unique_ptr<model::Linear> lm_head_;      // last stage
  TensorParallelGroup tp_group_;
  CpAttention cp_attention_;
  model::AdamW optimizer_;

  // Pipeline state: micro-batches in flight (forward done, backward not) and
  // spare states whose buffers are reused.
  std::vector<std::unique_ptr<InFlight>> in_flight_, spare_;
  double loss_sum_ = 0;
  std::vector<float> dxn_;
  std::vector<bf16> scratch_;
};

}  // namespace paralab::parallel
