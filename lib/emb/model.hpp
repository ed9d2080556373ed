// model.hpp: lib/dlrm's DLRM (dlrm/model.hpp: the same bottom MLP,
// interaction, top MLP, loss and initialisation, through dlrm::DenseTower)
// with every embedding table a CachedTable (table.hpp): rows stored in one
// low-precision format, the hot ones trained in an FP32 cache.
//
// With Format::fp32 it computes what dlrm::Dlrm computes, bit for bit, at
// any cache fraction (tests/emb and emb_cache --check assert it): the same
// initial values (init_uniform(seed, embedding_tensor(t), r * d + c) times
// the table's scale), the same pooling order, the same sparse gradient and
// the same FP32 update operations.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "dlrm/model.hpp"
#include "dlrm/tower.hpp"
#include "emb/table.hpp"

namespace paralab::emb {

// Wall-clock seconds of the parts of one step.
struct StepTimes {
  double prepare_s = 0;  // cache admission (all tables)
  double lookup_s = 0;   // embedding-bag forward (all tables)
  double dense_s = 0;    // MLPs, interaction, loss, their backward and SGD
  double update_s = 0;   // embedding backward and optimizer (all tables)
  double comm_s = 0;     // data parallel: gradient sums over ranks
};

class MixedDlrm {
 public:
  MixedDlrm(const dlrm::DlrmConfig& config, uint64_t seed, const TableOptions& options,
            bool adagrad);

  const dlrm::DlrmConfig& config() const { return config_; }
  int tables() const { return static_cast<int>(tables_.size()); }
  CachedTable& table(int t) { return tables_[static_cast<size_t>(t)]; }
  const CachedTable& table(int t) const { return tables_[static_cast<size_t>(t)]; }
  dlrm::Mlp& bottom() { return tower_.bottom; }
  dlrm::Mlp& top() { return tower_.top; }

  // Cache admission of every table for `batch`, to run as step `step`.
  std::vector<CacheStats> prepare(const dlrm::Batch& batch, int64_t step);
  // One SGD step on a prepared batch (prepare(batch, step) must have run:
  // rows it left uncached train in storage); returns the mean loss.
  double train_step(const dlrm::Batch& batch, const dlrm::OptimizerConfig& opt, int64_t step,
                    StepTimes& times);
  // The two halves of train_step, for data parallelism (data_parallel.hpp):
  // forward and backward of a (local) batch, returning the SUM of its sample
  // losses (MLP gradients and the tables' sparse gradients are then held),
  // and the SGD / table updates with gradients times `scale`.
  double forward_backward(const dlrm::Batch& batch, StepTimes& times);
  void apply(const dlrm::OptimizerConfig& opt, float scale, int64_t step, StepTimes& times);

  // Logits of a batch from the current values; the cache is read, not changed.
  void forward(const dlrm::Batch& batch, std::span<float> logits);

  std::vector<MemoryUse> memory() const;  // per table
  MemoryUse total_memory() const;

 private:
  float* forward_tables(const dlrm::Batch& batch);

  dlrm::DlrmConfig config_;
  dlrm::DenseTower tower_;
  std::vector<CachedTable> tables_;
};

// FP32 bytes the same tables take as plain dlrm tables (weights, plus the
// Adagrad state when `adagrad`): the baseline of the memory ratios.
int64_t fp32_table_bytes(const dlrm::DlrmConfig& config, bool adagrad);

}  // namespace paralab::emb
