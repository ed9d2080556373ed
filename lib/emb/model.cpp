// model.cpp: DLRM on cached low-precision tables (model.hpp).
#include "emb/model.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace paralab::emb {

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The initial row of lib/dlrm's EmbeddingShard (layers.cpp), row by row.
RowInit dlrm_init(const dlrm::DlrmConfig& config, int t, uint64_t seed) {
  const int64_t rows = config.table_rows[static_cast<size_t>(t)];
  const int dim = config.embedding_dim;
  const float scale = config.embedding_init_scale > 0
                          ? config.embedding_init_scale
                          : static_cast<float>(std::sqrt(1.0 / static_cast<double>(rows)));
  const uint64_t tensor = dlrm::embedding_tensor(t);
  return [=](int64_t r, float* out) {
    const uint64_t base = static_cast<uint64_t>(r) * static_cast<uint64_t>(dim);
    for (int j = 0; j < dim; ++j)
      out[j] = scale * dlrm::init_uniform(seed, tensor, base + static_cast<uint64_t>(j));
  };
}

}  // namespace

MixedDlrm::MixedDlrm(const dlrm::DlrmConfig& config, uint64_t seed, const TableOptions& options,
                     bool adagrad)
    : config_(config) {
  config_.validate();
  tower_ = dlrm::DenseTower(config_, seed);
  tables_.reserve(static_cast<size_t>(config_.tables()));
  for (int t = 0; t < config_.tables(); ++t)
    tables_.emplace_back(t, config_.table_rows[static_cast<size_t>(t)], config_.embedding_dim,
                         options, dlrm_init(config_, t, seed), adagrad);
}

std::vector<CacheStats> MixedDlrm::prepare(const dlrm::Batch& batch, int64_t step) {
  dlrm::check_batch(config_, batch);
  std::vector<CacheStats> stats;
  for (int t = 0; t < tables(); ++t)
    stats.push_back(
        tables_[static_cast<size_t>(t)].prepare(batch.tables[static_cast<size_t>(t)], step));
  return stats;
}

float* MixedDlrm::forward_tables(const dlrm::Batch& batch) {
  const int n = batch.size, d = config_.embedding_dim;
  const size_t ld = static_cast<size_t>(config_.features()) * d;
  float* features = tower_.begin_forward(batch.dense.data(), n);
  for (int t = 0; t < tables(); ++t)
    tables_[static_cast<size_t>(t)].forward(batch.tables[static_cast<size_t>(t)],
                                            features + static_cast<size_t>(1 + t) * d, ld);
  return features;
}

double MixedDlrm::forward_backward(const dlrm::Batch& batch, StepTimes& times) {
  dlrm::check_batch(config_, batch);
  const int n = batch.size, d = config_.embedding_dim;
  const size_t ld = static_cast<size_t>(config_.features()) * d;
  // begin_forward runs the bottom MLP: dense time; the tables alone are lookup time.
  const double t0 = now_s();
  float* features = tower_.begin_forward(batch.dense.data(), n);
  const double t1 = now_s();
  for (int t = 0; t < tables(); ++t)
    tables_[static_cast<size_t>(t)].forward(batch.tables[static_cast<size_t>(t)],
                                            features + static_cast<size_t>(1 + t) * d, ld);
  const double t2 = now_s();
  tower_.finish_forward(n);
  const double loss = tower_.backward(batch.dense.data(), batch.labels.data(), n);
  const double t3 = now_s();
  const float* dt = tower_.feature_gradients();
  for (int t = 0; t < tables(); ++t)
    tables_[static_cast<size_t>(t)].backward(batch.tables[static_cast<size_t>(t)],
                                             dt + static_cast<size_t>(1 + t) * d, ld);
  const double t4 = now_s();
  times.lookup_s += t2 - t1;
  times.dense_s += (t1 - t0) + (t3 - t2);
  times.update_s += t4 - t3;
  return loss;
}

void MixedDlrm::apply(const dlrm::OptimizerConfig& opt, float scale, int64_t step,
                      StepTimes& times) {
  opt.validate();
  const double t0 = now_s();
  tower_.bottom.sgd(opt.mlp_lr, scale);
  tower_.top.sgd(opt.mlp_lr, scale);
  const double t1 = now_s();
  for (auto& table : tables_) table.update(opt, scale, step);
  times.dense_s += t1 - t0;
  times.update_s += now_s() - t1;
}

double MixedDlrm::train_step(const dlrm::Batch& batch, const dlrm::OptimizerConfig& opt,
                             int64_t step, StepTimes& times) {
  const double loss = forward_backward(batch, times);
  const int n = batch.size;
  if (n > 0) apply(opt, 1.0f / static_cast<float>(n), step, times);
  return n > 0 ? loss / n : 0.0;
}

void MixedDlrm::forward(const dlrm::Batch& batch, std::span<float> logits) {
  dlrm::check_batch(config_, batch);
  forward_tables(batch);
  const auto out = tower_.finish_forward(batch.size);
  std::copy(out.begin(), out.end(), logits.begin());
}

std::vector<MemoryUse> MixedDlrm::memory() const {
  std::vector<MemoryUse> m;
  for (const auto& t : tables_) m.push_back(t.memory());
  return m;
}

MemoryUse MixedDlrm::total_memory() const {
  MemoryUse total;
  for (const auto& t : tables_) total += t.memory();
  return total;
}

int64_t fp32_table_bytes(const dlrm::DlrmConfig& config, bool adagrad) {
  const int64_t rows = config.total_rows();
  return rows * config.embedding_dim * 4 + (adagrad ? rows * 4 : 0);
}

}  // namespace paralab::emb
