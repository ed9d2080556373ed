// distributed.hpp: DLRM training across the ranks of a Communicator, with
// model-parallel embeddings (sharding.hpp) and data-parallel MLPs. Every rank
// holds a slice of the global batch (BatchSplit, uneven allowed) and a full
// replica of both MLPs; the tables live where the plan puts them. One
// training step on rank r:
//
//   1. input distribution: r sends, to the holder of every shard, the bag
//      lengths and indices of its own samples for that shard's table (only
//      the indices in a row shard's range); two alltoallv (i32). Each shard
//      then has the lookups of the whole global batch, in sample order.
//   2. lookups: each shard pools the bags of every batch owner's samples
//      straight into the forward send buffer (sharding.hpp's layout).
//   3. forward exchange (EmbeddingExchange::forward, one alltoallv): pooled
//      embeddings to the batch owners, which copy them into their [n, F, d]
//      interaction input (column shards into their columns, row shards
//      summed in source-rank order); replicated tables pool locally.
//   4. bottom MLP, interaction, top MLP, BCE on the local slice; backward
//      of the same, down to the gradients of the pooled embeddings.
//   5. backward exchange (EmbeddingExchange::backward, one alltoallv, the
//      transposed layout): those gradients back to the shards, which turn
//      them into sparse row gradients over the global batch.
//   6. one all-reduce (sum) of the MLP gradients and the replicated tables'
//      dense gradients; for row-wise Adagrad on column shards, an alltoallv
//      of per-row partial sums of squared gradients among a table's shards.
//   7. updates, all with scale 1 / (global batch): the same as single-rank
//      training on the whole batch, up to the order of float sums.
//
// The exchange is the place issue 5 compresses: an EmbeddingExchange
// subclass gets the flat send buffer with per-peer counts and the block
// structure (table, columns, samples per block) and may send anything in
// between, as long as recv ends up holding the (decompressed) blocks.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "comm/comm.hpp"
#include "dlrm/data.hpp"
#include "dlrm/model.hpp"
#include "dlrm/sharding.hpp"
#include "dlrm/train.hpp"
#include "schedule/program.hpp"

namespace paralab::dlrm {

// The embedding all-to-all, one function per direction. The default sends
// the floats as they are with one alltoallv; part 2 of issue 5 overrides
// these to compress each block (per table, per iteration error bounds).
class EmbeddingExchange {
 public:
  virtual ~EmbeddingExchange() = default;
  // Pooled embeddings, table owners -> batch owners. `layout` is this rank's
  // forward layout: send holds layout.send_total floats (blocks
  // layout.send_blocks), recv gets layout.recv_total (layout.recv_blocks).
  virtual void forward(comm::Communicator& comm, const ExchangeLayout& layout,
                       std::span<const float> send, std::span<float> recv, int64_t iteration);
  // Gradients of the pooled embeddings, batch owners -> table owners;
  // `layout` is the forward layout transposed (its send side is the forward
  // receive side).
  virtual void backward(comm::Communicator& comm, const ExchangeLayout& layout,
                        std::span<const float> send, std::span<float> recv, int64_t iteration);
  // Whether the bytes are compressed (the step's program then lists the
  // codec, the byte counts and the agreement; step_program.hpp).
  virtual bool compresses() const { return false; }
};

// Seconds this rank spent in each phase of its last step, and the floats it
// sent through the embedding exchange (its own block to itself included).
struct StepStats {
  double loss = 0;  // mean over the global batch (the same on every rank)
  double total = 0;
  double input = 0;               // index distribution (1)
  double lookup = 0;              // pooling into the send buffer (2)
  double a2a_forward = 0;         // (3) the exchange
  double dense = 0;               // placing, MLPs, interaction, loss, their backward (3, 4)
  double a2a_backward = 0;        // (5) the exchange
  double embedding_backward = 0;  // sparse gradients (5)
  double allreduce = 0;           // (6)
  double update = 0;              // (7)
  size_t forward_floats = 0, backward_floats = 0;
};

class DistributedDlrm {
 public:
  // Collective in spirit (every rank builds its part; no communication).
  // The plan must be for comm.size() ranks. Parameters start equal to a
  // single-rank Dlrm(config, seed).
  DistributedDlrm(const DlrmConfig& config, ShardingPlan plan, comm::Communicator& comm,
                  uint64_t seed);

  const DlrmConfig& config() const { return config_; }
  const ShardingPlan& plan() const { return plan_; }
  comm::Communicator& communicator() { return comm_; }
  // nullptr restores the plain alltoallv. Not owned.
  void set_exchange(EmbeddingExchange* exchange);
  int64_t iteration() const { return iteration_; }

  Mlp& bottom() { return tower_.bottom; }
  Mlp& top() { return tower_.top; }
  // This rank's shards, in plan.rank_shards[rank] order.
  size_t shard_count() const { return shards_.size(); }
  int shard_id(size_t i) const { return shard_ids_[i]; }
  EmbeddingShard& shard(size_t i) { return shards_[i]; }
  // A replicated table, or nullptr when the table is sharded.
  EmbeddingShard* replicated(int table);

  // One training step on this rank's slice `local` of the global batch
  // (local.size == split.counts[rank]; every rank passes the same split).
  // Collective.
  StepStats train_step(const Batch& local, const BatchSplit& split, const OptimizerConfig& opt);
  // Logits of the local slice. Collective.
  void forward(const Batch& local, const BatchSplit& split, std::span<float> logits);

 private:
  void prepare(const Batch& local, const BatchSplit& split);
  // The step's program (step_program.hpp) for this split; opt nullptr: the
  // forward pass only. run() runs this rank's operations, phase by phase,
  // and returns the loss (the global sum after its all-reduce).
  schedule::Program program(const BatchSplit& split, const OptimizerConfig* opt) const;
  double run(const schedule::Program& program, const Batch& local, const BatchSplit& split,
             const OptimizerConfig* opt, StepStats& stats);
  // The phases, in the order the program lists them.
  void send_input_lengths(const Batch& local, const BatchSplit& split);
  void send_input_indices(const BatchSplit& split);
  void lookup(const BatchSplit& split);
  void exchange_forward(StepStats& stats);
  void dense_forward(const Batch& local);
  double dense_backward(const Batch& local);
  void exchange_backward(StepStats& stats);
  void embedding_backward(const Batch& local, const BatchSplit& split);
  void exchange_square_sums(float scale);
  void update(const BatchSplit& split, const OptimizerConfig& opt);
  static float gradient_scale(const BatchSplit& split);

  // The input exchange's counts and displacements per peer, from its
  // lengths' alltoallv to its indices'.
  struct InputCounts {
    std::vector<size_t> len_sc, len_sd, len_rc, len_rd, idx_sc, idx_sd, idx_rc, idx_rd;
  };

  DlrmConfig config_;
  ShardingPlan plan_;
  comm::Communicator& comm_;
  int rank_ = 0, size_ = 1;
  EmbeddingExchange default_exchange_;
  EmbeddingExchange* exchange_ = &default_exchange_;
  int64_t iteration_ = 0;

  DenseTower tower_;
  std::vector<int> shard_ids_;
  std::vector<EmbeddingShard> shards_;
  std::vector<SparseGrad> shard_grads_;
  std::vector<Lookups> shard_lookups_;  // the global batch's lookups, per shard
  std::vector<int> replicated_index_;   // table -> index into replicated_, or -1
  std::vector<EmbeddingShard> replicated_;
  std::vector<SparseGrad> replicated_grads_;

  // The layouts of the current split.
  std::vector<int> layout_counts_;
  ExchangeLayout forward_layout_, backward_layout_;

  // Buffers of the step in flight.
  std::vector<float> send_, recv_;
  std::vector<int32_t> len_send_, len_recv_, idx_send_, idx_recv_;
  InputCounts input_counts_;
  std::vector<float> reduce_;  // MLP gradients, then replicated tables' dense gradients
  std::vector<std::vector<float>> square_sums_;  // per local shard
};

// Trains on train batches first_batch .. first_batch + steps - 1 of
// batch_size samples, split evenly; returns the global mean loss per step.
// Collective.
std::vector<double> train(DistributedDlrm& model, SyntheticClicks& data, int steps, int batch_size,
                          const OptimizerConfig& opt, int64_t first_batch = 0);
// The model on eval batches 0 .. batches - 1 (split evenly), every rank
// getting the same result. Collective.
EvalResult evaluate(DistributedDlrm& model, SyntheticClicks& data, int batches, int batch_size);

}  // namespace paralab::dlrm
