// model.hpp: DLRM (Naumov et al. 2019), the model whose embedding all-to-all
// issue 5 compresses ("Accelerating Communication in DLRM Training with
// Dual-Level Adaptive Lossy Compression", Feng et al., SC'24), on one rank.
// distributed.hpp runs the same model with sharded embeddings.
//
// The model, for a batch of n samples:
//
//   dense [n, D] --bottom MLP (ReLU after every layer)--> x [n, d]
//   table t (rows_t x d), bag of indices per sample --EmbeddingBag(sum)--> e_t [n, d]
//   T = [x, e_0, ..., e_{T-1}]   [n, F, d], F = 1 + tables
//   R = [x, <T_i, T_j> for i = 1..F-1, j = 0..i-1]   [n, d + F(F-1)/2]
//   R --top MLP (ReLU after all but the last layer)--> logit [n]
//   loss = mean over samples of BCE-with-logits(logit, label)
//
// as the DLRM reference (dlrm_s_pytorch.py, --arch-interaction-op=dot,
// without self-interaction, sigmoid folded into the loss). The last bottom
// layer's width must equal the embedding dimension d; the top MLP ends in 1.
//
// Layouts (row-major FP32 everywhere): dense [n, D]; an MLP layer's weight
// [out, in] and bias [out] (torch.nn.Linear), one flat buffer per MLP
// (layers.hpp); a table [rows, d]; the lookups of a table as EmbeddingBag's
// indices and offsets (global row ids, offsets [n + 1], duplicates allowed;
// layers.hpp Lookups); T as [n, F, d] with feature 0 the bottom output.
//
// Initialisation is a pure function of (seed, tensor, element) (layers.hpp):
// MLP weights N(0, 2 / (in + out)), biases N(0, 1 / out), table t uniform in
// +-sqrt(1 / rows_t) (or +-embedding_init_scale), as the DLRM reference.
// Any shard of a table therefore starts equal to the same part of the
// whole table.
//
// Gradients: backward propagates the gradient of the SUM of the sample
// losses; the optimizers take scale = 1 / (global batch) and apply
// lr * scale * g, so a data-parallel step sums per-rank gradients
// (all-reduce) and then scales, and the mean loss is what is minimised.
//   MLPs: SGD, w -= lr * scale * g.
//   Embeddings, sparse (only rows a sample of the batch touched; duplicate
//   indices within the batch accumulate first): SGD, or row-wise Adagrad
//   (FBGEMM/TorchRec's EXACT_ROWWISE_ADAGRAD): per touched row r with summed
//   gradient g_r (scaled), s_r += mean_c(g_rc^2) over the row's d columns,
//   w_r -= lr * g_r / (sqrt(s_r) + eps); s starts at 0.
//
// The synthetic click logs (data.hpp): per table a Zipf popularity over its
// rows (exponent ~1.05, hot rows scattered over the table by a fixed
// permutation), sampled through alias tables; N(0, 1) dense features;
// labels from a hidden "teacher" DLRM of the same family with its own seed:
// its logit z, standardised over a calibration set, gives p = sigmoid(a z +
// c), a the signal strength and c solved so that the mean label is the
// chosen click rate; label = Bernoulli(p) by default (threshold p > 0.5 as an
// option). Every sample is a pure function of (seed, split, batch, index),
// so any rank makes any sample.
//
// Preset: criteo_kaggle() gives the Criteo Kaggle shape of the DLRM
// reference (13 dense features, 26 tables, bottom 13-512-256-64-d, top
// 512-256-1) with the Kaggle table sizes scaled and capped.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "dlrm/layers.hpp"
#include "dlrm/tower.hpp"

namespace paralab::dlrm {

struct DlrmConfig {
  int dense_features = 13;
  std::vector<int> bottom_layers{512, 256, 64, 16};  // widths after the input; last = embedding_dim
  std::vector<int> top_layers{512, 256, 1};          // after the interaction; last = 1
  int embedding_dim = 16;
  std::vector<int64_t> table_rows;  // one per table
  std::vector<int> pooling;         // indices per lookup, one per table
  float embedding_init_scale = 0;   // 0: uniform +-sqrt(1 / rows), else +-this

  int tables() const { return static_cast<int>(table_rows.size()); }
  int features() const { return 1 + tables(); }  // F: bottom output and the tables
  int interaction_width() const { return embedding_dim + interaction_pairs(features()); }
  int64_t total_rows() const;
  // Throws UsageError naming the first problem.
  void validate() const;
  std::string describe() const;  // "D=13 bottom=512-256-64-16 top=512-256-1 d=16 tables=26 ..."
};

// The Criteo Kaggle table sizes of the DLRM reference (largest 10.1M rows).
const std::vector<int64_t>& criteo_kaggle_rows();

// The Criteo Kaggle DLRM: 13 dense features, bottom 13-512-256-64-d, top
// 512-256-1, 26 tables with rows = min(max_rows, max(1, ceil(kaggle_rows *
// row_scale))) (max_rows 0: no cap), `pooling` indices per lookup (1 in
// Criteo). The defaults (d 16, 100k cap) hold 0.85M rows, 54 MB at d 16.
DlrmConfig criteo_kaggle(int embedding_dim = 16, int64_t max_rows = 100'000, double row_scale = 1.0,
                         int pooling = 1);

// A batch as one rank holds it: `size` samples, all tables' lookups.
struct Batch {
  int size = 0;
  std::vector<float> dense;         // [size, dense_features]
  std::vector<float> labels;        // [size], 0 or 1
  std::vector<Lookups> tables;      // [tables], each with size bags
  std::vector<float> label_logits;  // [size]: logit of P(label = 1) (synthetic data; may be empty)
};
// Throws std::invalid_argument when the batch does not fit the config
// (sizes, offsets, indices out of range).
void check_batch(const DlrmConfig& config, const Batch& batch);

struct OptimizerConfig {
  float mlp_lr = 0.1f;
  float embedding_lr = 0.1f;
  EmbeddingOptimizer embedding = EmbeddingOptimizer::sgd;
  float adagrad_eps = 1e-8f;  // > 0: an untouched row and a zero gradient stay put alike
  void validate() const;      // UsageError
};

// Single-rank DLRM with whole tables. Holds its activations between
// forward_backward and apply, so one batch is in flight at a time.
class Dlrm {
 public:
  Dlrm(const DlrmConfig& config, uint64_t seed);

  const DlrmConfig& config() const { return config_; }
  Mlp& bottom() { return tower_.bottom; }
  Mlp& top() { return tower_.top; }
  const Mlp& bottom() const { return tower_.bottom; }
  const Mlp& top() const { return tower_.top; }
  EmbeddingShard& table(int t) { return tables_[static_cast<size_t>(t)]; }
  const EmbeddingShard& table(int t) const { return tables_[static_cast<size_t>(t)]; }
  // The sparse gradients of the last forward_backward, one per table.
  const SparseGrad& table_gradient(int t) const { return grads_[static_cast<size_t>(t)]; }
  size_t parameter_count() const;
  // Per-sample results independent of the batch (Mlp::set_batch_invariant).
  void set_batch_invariant(bool on) {
    tower_.bottom.set_batch_invariant(on);
    tower_.top.set_batch_invariant(on);
  }

  // Logits of a batch (labels unused).
  void forward(const Batch& batch, std::span<float> logits);
  // Forward and backward: MLP gradients (zeroed first) and the tables'
  // sparse gradients of the SUM of the sample losses, which it returns.
  double forward_backward(const Batch& batch);
  // Applies the last gradients times `scale` (1 / batch for the mean loss).
  void apply(const OptimizerConfig& opt, float scale);
  // forward_backward, then apply with scale 1 / batch; returns the mean loss.
  double train_step(const Batch& batch, const OptimizerConfig& opt);
  // The last forward's logits.
  std::span<const float> logits() const { return tower_.logits(); }

 private:
  void forward_internal(const Batch& batch);

  DlrmConfig config_;
  DenseTower tower_;
  std::vector<EmbeddingShard> tables_;
  std::vector<SparseGrad> grads_;
  std::vector<float> square_sums_;
};

}  // namespace paralab::dlrm
