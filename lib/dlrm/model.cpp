// model.cpp: the DLRM configuration, the Criteo Kaggle preset and the
// single-rank model (model.hpp).
#include "dlrm/model.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "core/errors.hpp"

namespace paralab::dlrm {

namespace {

std::string join(const std::vector<int>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += '-';
    s += std::to_string(v[i]);
  }
  return s;
}

}  // namespace

int64_t DlrmConfig::total_rows() const {
  int64_t s = 0;
  for (int64_t r : table_rows) s += r;
  return s;
}

void DlrmConfig::validate() const {
  if (dense_features < 1)
    throw UsageError("DLRM: dense features must be at least 1 (got " +
                     std::to_string(dense_features) + ")");
  if (embedding_dim < 1)
    throw UsageError("DLRM: the embedding dimension must be at least 1 (got " +
                     std::to_string(embedding_dim) + ")");
  if (bottom_layers.empty()) throw UsageError("DLRM: the bottom MLP needs at least one layer");
  if (top_layers.empty()) throw UsageError("DLRM: the top MLP needs at least one layer");
  for (int w : bottom_layers)
    if (w < 1)
      throw UsageError("DLRM: bottom MLP widths must be at least 1 (got " + join(bottom_layers) +
                       ")");
  for (int w : top_layers)
    if (w < 1)
      throw UsageError("DLRM: top MLP widths must be at least 1 (got " + join(top_layers) + ")");
  if (bottom_layers.back() != embedding_dim)
    throw UsageError("DLRM: the bottom MLP's last width (" + std::to_string(bottom_layers.back()) +
                     ") must equal the embedding dimension (" + std::to_string(embedding_dim) +
                     ") for the dot interaction");
  if (top_layers.back() != 1)
    throw UsageError("DLRM: the top MLP must end in one logit (its last width is " +
                     std::to_string(top_layers.back()) + ")");
  if (table_rows.empty()) throw UsageError("DLRM: needs at least one embedding table");
  if (pooling.size() != table_rows.size())
    throw UsageError("DLRM: " + std::to_string(pooling.size()) + " pooling factors for " +
                     std::to_string(table_rows.size()) + " tables");
  for (size_t t = 0; t < table_rows.size(); ++t) {
    if (table_rows[t] < 1 || table_rows[t] > std::numeric_limits<int32_t>::max())
      throw UsageError("DLRM: table " + std::to_string(t) + " has " +
                       std::to_string(table_rows[t]) + " rows (must be 1 .. 2^31-1)");
    if (pooling[t] < 1)
      throw UsageError("DLRM: table " + std::to_string(t) + " has pooling factor " +
                       std::to_string(pooling[t]) + " (must be at least 1)");
  }
  if (!(embedding_init_scale >= 0) || !std::isfinite(embedding_init_scale))
    throw UsageError("DLRM: the embedding init scale must be finite and >= 0");
}

std::string DlrmConfig::describe() const {
  int64_t max_rows = 0;
  for (int64_t r : table_rows) max_rows = std::max(max_rows, r);
  return "D=" + std::to_string(dense_features) + " bottom=" + join(bottom_layers) +
         " top=" + std::to_string(interaction_width()) + "-" + join(top_layers) +
         " d=" + std::to_string(embedding_dim) + " tables=" + std::to_string(tables()) +
         " rows=" + std::to_string(total_rows()) + " (max " + std::to_string(max_rows) + ")";
}

const std::vector<int64_t>& criteo_kaggle_rows() {
  static const std::vector<int64_t> rows = {
      1460,  583,  10131227, 2202608, 305, 24,     12517,   633,   3,
      93145, 5683, 8351593,  3194,    27,  14992,  5461306, 10,    5652,
      2173,  4,    7046547,  18,      15,  286181, 105,     142572};
  return rows;
}

DlrmConfig criteo_kaggle(int embedding_dim, int64_t max_rows, double row_scale, int pooling) {
  if (embedding_dim < 1)
    throw UsageError("criteo_kaggle: the embedding dimension must be at least 1");
  if (!(row_scale > 0) || !std::isfinite(row_scale))
    throw UsageError("criteo_kaggle: the row scale must be positive");
  if (max_rows < 0) throw UsageError("criteo_kaggle: the row cap must be >= 0 (0: none)");
  DlrmConfig c;
  c.dense_features = 13;
  c.bottom_layers = {512, 256, 64, embedding_dim};
  c.top_layers = {512, 256, 1};
  c.embedding_dim = embedding_dim;
  for (int64_t r : criteo_kaggle_rows()) {
    auto rows = static_cast<int64_t>(std::ceil(static_cast<double>(r) * row_scale));
    rows = std::max<int64_t>(1, rows);
    if (max_rows > 0) rows = std::min(rows, max_rows);
    c.table_rows.push_back(rows);
  }
  c.pooling.assign(c.table_rows.size(), pooling);
  c.validate();
  return c;
}

void check_batch(const DlrmConfig& config, const Batch& batch) {
  const auto n = static_cast<size_t>(batch.size);
  if (batch.size < 0 || batch.dense.size() != n * static_cast<size_t>(config.dense_features))
    throw std::invalid_argument("batch: dense features do not match the batch size");
  if (batch.tables.size() != static_cast<size_t>(config.tables()))
    throw std::invalid_argument("batch: " + std::to_string(batch.tables.size()) +
                                " tables of lookups for a model of " +
                                std::to_string(config.tables()));
  for (int t = 0; t < config.tables(); ++t) {
    const Lookups& l = batch.tables[static_cast<size_t>(t)];
    if (l.offsets.size() != n + 1 || l.offsets[0] != 0 ||
        static_cast<size_t>(l.offsets.back()) != l.indices.size())
      throw std::invalid_argument("batch: table " + std::to_string(t) + " has bad offsets");
    for (size_t b = 0; b < n; ++b)
      if (l.offsets[b + 1] < l.offsets[b])
        throw std::invalid_argument("batch: table " + std::to_string(t) +
                                    " has decreasing offsets");
    for (int32_t i : l.indices)
      if (i < 0 || i >= config.table_rows[static_cast<size_t>(t)])
        throw std::invalid_argument("batch: table " + std::to_string(t) + " index " +
                                    std::to_string(i) + " out of range");
  }
}

void OptimizerConfig::validate() const {
  if (!(mlp_lr >= 0) || !std::isfinite(mlp_lr))
    throw UsageError("optimizer: the MLP learning rate must be finite and >= 0");
  if (!(embedding_lr >= 0) || !std::isfinite(embedding_lr))
    throw UsageError("optimizer: the embedding learning rate must be finite and >= 0");
  if (!(adagrad_eps > 0) || !std::isfinite(adagrad_eps))
    throw UsageError("optimizer: Adagrad's eps must be positive");
}

Dlrm::Dlrm(const DlrmConfig& config, uint64_t seed) : config_(config) {
  config_.validate();
  tower_ = DenseTower(config_, seed);
  for (int t = 0; t < config_.tables(); ++t) {
    const int64_t rows = config_.table_rows[static_cast<size_t>(t)];
    tables_.emplace_back(t, rows, config_.embedding_dim, 0, rows, 0, config_.embedding_dim, seed,
                         config_.embedding_init_scale);
  }
  grads_.resize(tables_.size());
}

size_t Dlrm::parameter_count() const {
  size_t n = tower_.bottom.parameters().size() + tower_.top.parameters().size();
  for (const auto& t : tables_) n += t.weights().size();
  return n;
}

void Dlrm::forward_internal(const Batch& batch) {
  check_batch(config_, batch);
  const int n = batch.size, F = config_.features(), d = config_.embedding_dim;
  const size_t ld = static_cast<size_t>(F) * d;
  float* features = tower_.begin_forward(batch.dense.data(), n);
  for (int t = 0; t < config_.tables(); ++t)
    tables_[static_cast<size_t>(t)].forward(batch.tables[static_cast<size_t>(t)], 0, n,
                                            features + static_cast<size_t>(1 + t) * d, ld);
  tower_.finish_forward(n);
}

void Dlrm::forward(const Batch& batch, std::span<float> logits) {
  forward_internal(batch);
  if (logits.size() != tower_.logits().size())
    throw std::invalid_argument("Dlrm::forward: logits span has the wrong size");
  std::copy(tower_.logits().begin(), tower_.logits().end(), logits.begin());
}

double Dlrm::forward_backward(const Batch& batch) {
  forward_internal(batch);
  const int n = batch.size, F = config_.features(), d = config_.embedding_dim;
  const size_t ld = static_cast<size_t>(F) * d;
  const double loss = tower_.backward(batch.dense.data(), batch.labels.data(), n);
  const float* dt = tower_.feature_gradients();
  for (int t = 0; t < config_.tables(); ++t) {
    const EmbeddingShard& table = tables_[static_cast<size_t>(t)];
    SparseGrad& g = grads_[static_cast<size_t>(t)];
    table.begin_backward(g);
    table.backward(batch.tables[static_cast<size_t>(t)], 0, n, dt + static_cast<size_t>(1 + t) * d,
                   ld, g);
  }
  return loss;
}

void Dlrm::apply(const OptimizerConfig& opt, float scale) {
  opt.validate();
  tower_.bottom.sgd(opt.mlp_lr, scale);
  tower_.top.sgd(opt.mlp_lr, scale);
  for (size_t t = 0; t < tables_.size(); ++t) {
    if (opt.embedding == EmbeddingOptimizer::sgd) {
      tables_[t].sgd(grads_[t], opt.embedding_lr, scale);
    } else {
      tables_[t].row_square_sums(grads_[t], scale, square_sums_);
      tables_[t].rowwise_adagrad(grads_[t], opt.embedding_lr, opt.adagrad_eps, scale,
                                 square_sums_.data());
    }
  }
}

double Dlrm::train_step(const Batch& batch, const OptimizerConfig& opt) {
  const double loss = forward_backward(batch);
  if (batch.size > 0) apply(opt, 1.0f / static_cast<float>(batch.size));
  return batch.size > 0 ? loss / batch.size : 0.0;
}

}  // namespace paralab::dlrm
