// simulate.hpp: the predicted time of one DistributedDlrm training step
// (distributed.hpp) on N ranks of a hardware profile (lib/sim), with the
// embedding all-to-all plain or compressed (compressed_exchange.hpp). The
// simulate mode of dlrm_a2a uses it to predict clusters this machine cannot
// run (issue 5, Feng et al., SC'24).
//
// The step is the engine's program (step_program.hpp), phase by phase and
// without overlap (the engine runs them one after the other), played on the
// profile; SimulatedStep also breaks it down by phase (each phase's slowest
// rank):
//
//   input      two alltoallv of i32: each rank's bag lengths (one per sample
//              and shard) and indices (pooling per sample and shard) to the
//              shards' holders;
//   compute    the dense part (bottom MLP, interaction, top MLP, forward and
//              backward, the MLP update) on the rank's local samples, and
//              the embedding part (lookups into the send buffer, sparse
//              gradients and updates) for the whole global batch on the
//              rank's shards: the slowest rank of the plan decides;
//   forward    alltoallv of the pooled embeddings, sizes from the sharding
//              plan and batch split (sharding.hpp's layout);
//   backward   its transpose (the gradients);
//   allreduce  one all-reduce of the MLP gradients and the replicated
//              tables' dense gradients, then one of the loss (8 bytes);
//   optimizer  row-wise Adagrad only: the alltoallv in which the shards of a
//              column-sharded table swap their rows' partial square sums
//              (one float per touched row to every other holder of the
//              table; touched rows are the expected distinct rows of
//              batch x pooling uniform draws, an upper bound for skewed data).
//
// All-reduces and the fixed-size all-to-all are collectives of
// sim/collectives.hpp (NCCL's protocol model on the GPU profiles).
// Compressed, each forward/backward block of table t shrinks by that
// table's measured ratio, and the exchange pays: compressing every byte the
// rank sends and decompressing every byte it receives (at a codec rate in
// seconds per raw byte, measured or given), plus one alltoall of the byte
// counts (8 bytes per peer) before the bytes, as CompressedExchange does.
//
// An alltoallv is costed like sim::alltoall_s, generalised to uneven sizes:
// n-1 pairwise exchange steps in sequence; at step i rank r sends to r+i and
// receives from r-i over link_between(r, peer), and the step lasts the
// larger of the two messages' alpha-beta times. The collective ends when the
// slowest rank has done all its steps (ranks synchronise in the exchange).
// With even sizes this is exactly sim::alltoall_s.
//
// Compute comes from one of two sources:
//   profile   dense: 3x the forward FLOPs (2 * samples * in * out per layer,
//             2 * samples * pairs * d for the interaction), on the
//             profile's FP32 GEMM rate, plus one kernel overhead per GEMM
//             call (3 per layer); MLP update: 3 parameter passes on memory
//             bandwidth; embedding: 4 bytes x (3 x looked-up floats + the
//             pooled floats written) per sample of the global batch on the
//             rank's shards, on memory bandwidth.
//   measured  a run's measured per-rank seconds (StepStats) at its own
//             ranks, scaled: the dense part by the local samples of the
//             slowest rank, the embedding part by the slowest rank's
//             embedding bytes (embedding_bytes below).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dlrm/model.hpp"
#include "dlrm/sharding.hpp"
#include "sim/hardware.hpp"

namespace paralab::dlrm {

// Bytes one rank sends to / receives from each peer in one alltoallv
// (itself included: that block costs no link time).
struct AlltoallvBytes {
  std::vector<std::vector<double>> send;  // [rank][peer]
  double total() const;                   // over all ranks and peers
};

// The time of one alltoallv on `hardware` (see the top of this file): the
// slowest rank's n-1 sequential pairwise steps. 0 for one rank.
double alltoallv_s(const sim::HardwareProfile& hardware, const AlltoallvBytes& bytes);

// The bytes of the step's exchanges on `ranks` ranks for this plan and split
// (forward: pooled embeddings, 4 bytes per float; backward: the transpose).
// ratio_per_table (empty: 1 everywhere) divides table t's blocks.
AlltoallvBytes forward_exchange_bytes(const ShardingPlan& plan, const BatchSplit& split,
                                      const std::vector<double>& ratio_per_table = {});
AlltoallvBytes backward_exchange_bytes(const ShardingPlan& plan, const BatchSplit& split,
                                       const std::vector<double>& ratio_per_table = {});
// The input distribution: bag lengths (4 bytes per sample and shard) and
// indices (4 bytes x pooling per sample and shard; row shards get their
// expected share, rows / table rows). Two alltoallv; first lengths, then indices.
AlltoallvBytes input_length_bytes(const DlrmConfig& config, const ShardingPlan& plan,
                                  const BatchSplit& split);
AlltoallvBytes input_index_bytes(const DlrmConfig& config, const ShardingPlan& plan,
                                 const BatchSplit& split);

// The all-reduced floats of a step: both MLPs' parameters and the
// replicated tables.
double allreduce_floats(const DlrmConfig& config, const ShardingPlan& plan);

// Row-wise Adagrad's exchange of partial row square sums between the shards
// of column-sharded tables, for a global batch of `batch` samples.
AlltoallvBytes square_sum_bytes(const DlrmConfig& config, const ShardingPlan& plan, double batch);

// FLOPs of the dense part (forward and backward) for `samples` samples, and
// the number of GEMM calls it makes.
double dense_flops(const DlrmConfig& config, double samples);
int dense_gemm_calls(const DlrmConfig& config);
// Bytes the embedding part moves on rank `rank`'s shards for a global batch
// of `batch` samples (see the top of this file; row shards take their
// expected share of the lookups, rows / table rows), and the largest over
// the ranks.
double embedding_bytes(const DlrmConfig& config, const ShardingPlan& plan, int rank, double batch);
double max_embedding_bytes(const DlrmConfig& config, const ShardingPlan& plan, double batch);

// A run's measured per-rank compute, per step (rank means), at its ranks.
struct MeasuredCompute {
  int ranks = 1;
  int64_t batch = 1;               // the global batch it ran
  double dense_s = 0;              // dense + MLP update
  double embedding_s = 0;          // lookups + sparse backward and update
  double max_embedding_bytes = 0;  // max_embedding_bytes of its plan and batch
  int max_local_samples = 1;       // the largest local slice then
};

enum class ComputeSource { profile, measured };
const char* compute_source_name(ComputeSource source);        // "profile", "measured"
ComputeSource parse_compute_source(const std::string& name);  // UsageError otherwise

// What a compressing codec does, from a measured run or given.
struct CompressionModel {
  std::vector<double> forward_ratio, backward_ratio;  // per table, raw / compressed (>= any > 0)
  double codec_s_per_byte = 0;                        // compress or decompress one raw byte
};

struct StepModelInputs {
  DlrmConfig config;
  PlannerOptions planner;
  int64_t batch = 256;  // global
  sim::HardwareProfile hardware;
  EmbeddingOptimizer optimizer = EmbeddingOptimizer::sgd;
  ComputeSource compute = ComputeSource::profile;
  MeasuredCompute measured;  // with ComputeSource::measured
  void validate() const;     // UsageError
};

// One rank count's prediction, seconds per step (the slowest rank).
struct SimulatedStep {
  int ranks = 1;
  double compute_s = 0, dense_s = 0, embedding_s = 0;
  double input_s = 0;      // index distribution
  double allreduce_s = 0;  // gradients and loss
  double optimizer_s = 0;  // row-wise Adagrad's square-sum exchange (0 for SGD)
  double a2a_forward_s = 0, a2a_backward_s = 0;  // plain
  // Compressed: the exchanges' link time (counts alltoall included) and
  // the codec time (compress sent + decompress received, slowest rank).
  double a2a_forward_compressed_s = 0, a2a_backward_compressed_s = 0, codec_s = 0;
  double raw_bytes = 0, compressed_bytes = 0;  // both directions, all ranks
  double a2a_s() const { return a2a_forward_s + a2a_backward_s; }
  double a2a_compressed_s() const {
    return a2a_forward_compressed_s + a2a_backward_compressed_s + codec_s;
  }
  // The step, plain and compressed: the step's program (step_program.hpp)
  // played on the profile, every rank with its own compute. At most the sum
  // of the phases above, which take each phase's slowest rank.
  double played_step_s = 0, played_step_compressed_s = 0;
  double step_s() const { return played_step_s; }
  // The phases added up, each at its slowest rank: what the step would take
  // if one rank were the slowest in every phase.
  double phase_sum_s() const { return compute_s + input_s + allreduce_s + optimizer_s + a2a_s(); }
  double phase_sum_compressed_s() const {
    return compute_s + input_s + allreduce_s + optimizer_s + a2a_compressed_s();
  }
  double step_compressed_s() const { return played_step_compressed_s; }
  double speedup() const { return step_s() / step_compressed_s(); }
};

// Throws UsageError when the plan cannot be made on `ranks` ranks (more
// ranks than samples) or the inputs are invalid.
SimulatedStep simulate_step(const StepModelInputs& inputs, const CompressionModel& compression,
                            int ranks);

}  // namespace paralab::dlrm
