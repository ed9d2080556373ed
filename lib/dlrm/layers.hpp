// layers.hpp: the building blocks of DLRM (model.hpp describes the whole
// model): counter-based parameter initialisation, the MLP, the embedding bag
// over a shard of a table (rows and columns) with sparse gradients, SGD and
// row-wise Adagrad for embeddings, the dot interaction and the binary
// cross-entropy with logits. Every block has a forward and a backward over
// plain row-major FP32 buffers; the single-rank model (model.hpp) and the
// sharded one (distributed.hpp) are both assembled from them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace paralab::dlrm {

// --- counter-based random numbers ---------------------------------------------
// Every parameter and every sample is a pure function of a seed and its
// coordinates, so a rank makes its own shard, or any sample, without the rest.

uint64_t splitmix64(uint64_t z);
// A hash of two words (not symmetric): mix(mix(seed, a), b) names a stream.
uint64_t mix(uint64_t a, uint64_t b);
// Uniform in [0, 1) from 53 bits of splitmix64(mix(key, index)).
double uniform01(uint64_t key, uint64_t index);
// Parameter init: element `index` of tensor `tensor` under `seed`.
float init_uniform(uint64_t seed, uint64_t tensor, uint64_t index);  // in [-1, 1)
float init_normal(uint64_t seed, uint64_t tensor, uint64_t index);   // N(0, 1), Box-Muller
// Tensor ids: the bottom MLP is 1, the top MLP 2, table t embedding_tensor(t).
inline constexpr uint64_t kBottomTensor = 1, kTopTensor = 2;
uint64_t embedding_tensor(int table);

// --- MLP -----------------------------------------------------------------------

// A stack of fully connected layers: layer l maps widths[l] to widths[l + 1]
// with y = act(x W_l^T + b_l), W_l [out, in] row-major (torch.nn.Linear's
// layout), b_l [out]. act is ReLU on every layer, or on all but the last
// (identity there) when relu_last is false. Parameters live in one flat
// buffer W_0 b_0 W_1 b_1 ... (gradients alike), so a data-parallel step
// all-reduces one buffer. Init as the DLRM reference: W ~ N(0, 2 / (in +
// out)), b ~ N(0, 1 / out), from (seed, tensor_base, layer). GEMMs run on
// kernels::cpu::gemm (FP32).
class Mlp {
 public:
  // What backward needs of one forward: every layer's output (after its
  // activation; ReLU's mask is output > 0), plus scratch.
  struct Saved {
    int n = 0;
    std::vector<std::vector<float>> out;  // [layers][n, widths[l + 1]]
    std::vector<float> grad_a, grad_b;    // backward scratch
    std::vector<float> wt;                // batch-invariant forward: W^T of a layer
  };

  Mlp() = default;
  Mlp(int input, std::vector<int> layers, bool relu_last, uint64_t seed, uint64_t tensor_base);

  int input() const { return widths_.front(); }
  int output() const { return widths_.back(); }
  int layers() const { return static_cast<int>(widths_.size()) - 1; }
  const std::vector<int>& widths() const { return widths_; }
  bool relu(int layer) const { return relu_last_ || layer + 1 < layers(); }
  double flops_per_sample() const;  // forward: 2 * sum(in * out)

  std::span<float> parameters() { return params_; }
  std::span<const float> parameters() const { return params_; }
  std::span<float> gradients() { return grads_; }
  std::span<const float> gradients() const { return grads_; }
  float* weight(int layer) { return params_.data() + w_offset_[layer]; }
  float* bias(int layer) { return params_.data() + b_offset_[layer]; }
  const float* weight(int layer) const { return params_.data() + w_offset_[layer]; }
  const float* bias(int layer) const { return params_.data() + b_offset_[layer]; }
  size_t weight_offset(int layer) const { return w_offset_[layer]; }
  size_t bias_offset(int layer) const { return b_offset_[layer]; }

  // Batch-invariant forward: each sample's output is computed by the same
  // fixed-order loops whatever the batch and thread count (GEMM blocking
  // depends on both), so a sample's result is a function of the sample
  // alone. The teacher that labels the synthetic data uses it.
  void set_batch_invariant(bool on) { batch_invariant_ = on; }

  // x [n, input]; returns the last layer's output [n, output] (inside saved).
  const float* forward(const float* x, int n, Saved& saved) const;
  // dout [n, output]: gradient of the last output. Adds to the parameter
  // gradients and writes dx [n, input] unless dx is null.
  void backward(const float* x, Saved& saved, const float* dout, float* dx);
  void zero_gradients();
  // params -= (lr * scale) * grads.
  void sgd(float lr, float scale);

 private:
  std::vector<int> widths_;
  bool relu_last_ = true;
  bool batch_invariant_ = false;
  std::vector<size_t> w_offset_, b_offset_;
  std::vector<float> params_, grads_;
};

// --- embedding bags ------------------------------------------------------------

// The EmbeddingBag input of one table for a batch of bags (samples): bag b
// pools the rows indices[offsets[b] .. offsets[b + 1]) (global row ids).
// offsets has bags + 1 entries, offsets[0] = 0. Duplicates are allowed.
struct Lookups {
  std::vector<int32_t> indices;
  std::vector<int32_t> offsets{0};
  int bags() const { return static_cast<int>(offsets.size()) - 1; }
  void clear() {
    indices.clear();
    offsets.assign(1, 0);
  }
};

// The gradient of a shard for one step: its touched rows (local row ids, in
// order of first touch over the bags as backward saw them) and one summed
// gradient row [width] each; duplicates within the batch accumulate.
struct SparseGrad {
  int width = 0;
  std::vector<int32_t> rows;
  std::vector<float> values;  // [rows.size(), width]
  std::vector<int32_t> slot;  // local row -> index into rows, -1 if untouched
  size_t touched() const { return rows.size(); }
};

enum class EmbeddingOptimizer { sgd, rowwise_adagrad };

// Rows [row_begin, row_end) and columns [col_begin, col_end) of table
// `table` (table_rows x dim); a whole table is the shard with both full
// ranges. Weights [rows, cols] row-major. Element (r, c) of the table is
// init_uniform(seed, embedding_tensor(table), r * dim + c) * scale, whatever
// the shard, so sharded and whole tables start equal; scale defaults (0) to
// sqrt(1 / table_rows) as the DLRM reference. Row-wise Adagrad keeps one
// FP32 accumulator per row.
class EmbeddingShard {
 public:
  EmbeddingShard() = default;
  EmbeddingShard(int table, int64_t table_rows, int dim, int64_t row_begin, int64_t row_end,
                 int col_begin, int col_end, uint64_t seed, float init_scale = 0);

  int table() const { return table_; }
  int64_t table_rows() const { return table_rows_; }
  int dim() const { return dim_; }
  int64_t row_begin() const { return row_begin_; }
  int64_t row_end() const { return row_end_; }
  int64_t rows() const { return row_end_ - row_begin_; }
  int col_begin() const { return col_begin_; }
  int col_end() const { return col_end_; }
  int cols() const { return col_end_ - col_begin_; }
  std::span<float> weights() { return weights_; }
  std::span<const float> weights() const { return weights_; }
  std::span<float> adagrad_state() { return state_; }
  std::span<const float> adagrad_state() const { return state_; }
  float* row(int64_t local_row) { return weights_.data() + local_row * cols(); }

  // Pooled sums of bags [bag_begin, bag_end): out[(b - bag_begin) * ld + c]
  // = sum of this shard's columns c over the bag's indices that fall in its
  // rows (others are skipped: a row shard gives a partial sum).
  void forward(const Lookups& lookups, int bag_begin, int bag_end, float* out, size_t ld) const;
  // Starts a step's gradient (clears grad, keeping its buffers).
  void begin_backward(SparseGrad& grad) const;
  // Adds the gradient of bags [bag_begin, bag_end) given dout[(b - bag_begin)
  // * ld + c], the gradient of their pooled sums; call in bag order.
  void backward(const Lookups& lookups, int bag_begin, int bag_end, const float* dout, size_t ld,
                SparseGrad& grad) const;

  // w -= (lr * scale) * g on the touched rows.
  void sgd(const SparseGrad& grad, float lr, float scale);
  // Per touched row, sum over this shard's columns of (scale * g)^2.
  void row_square_sums(const SparseGrad& grad, float scale, std::vector<float>& out) const;
  // Row-wise Adagrad on the touched rows: s += square_sums[i] / dim (the
  // mean over the table's whole row, so a column shard passes the sum over
  // all shards of its row); w -= lr * (scale * g) / (sqrt(s) + eps).
  void rowwise_adagrad(const SparseGrad& grad, float lr, float eps, float scale,
                       const float* square_sums);
  // Same updates from a dense gradient [rows, cols] (a replicated table after
  // its all-reduce); rows whose gradient is all zero are left alone, as an
  // untouched row is.
  void sgd_dense(const float* grad, float lr, float scale);
  void rowwise_adagrad_dense(const float* grad, float lr, float eps, float scale);
  // Adds a sparse gradient into a dense [rows, cols] buffer.
  void scatter(const SparseGrad& grad, float* dense) const;

 private:
  int table_ = 0;
  int64_t table_rows_ = 0;
  int dim_ = 0;
  int64_t row_begin_ = 0, row_end_ = 0;
  int col_begin_ = 0, col_end_ = 0;
  std::vector<float> weights_;
  std::vector<float> state_;  // row-wise Adagrad accumulators [rows]
};

// --- interaction and loss ------------------------------------------------------

// Number of pairs i > j among `features` vectors.
inline int interaction_pairs(int features) {
  return features * (features - 1) / 2;
}
// Dot interaction (the DLRM reference's "dot", no self interaction): t [n,
// features, d] holds the bottom MLP's output (feature 0) then the pooled
// embeddings; out [n, d + pairs] = t[:, 0, :] followed by <t_i, t_j> for
// i = 1 .. features-1, j = 0 .. i-1 (the lower triangle without diagonal,
// row by row).
void interaction_forward(const float* t, int n, int features, int d, float* out);
// dt [n, features, d] (written) from dout [n, d + pairs].
void interaction_backward(const float* t, const float* dout, int n, int features, int d, float* dt);

// Binary cross-entropy with logits, stable for any |z|: loss = max(z, 0) - z
// y + log(1 + exp(-|z|)). Returns the SUM over the n samples (double) and
// writes dlogits[i] = sigmoid(z_i) - y_i, the gradient of that sum.
double bce_with_logits(const float* logits, const float* labels, int n, float* dlogits);
float sigmoid(float z);

}  // namespace paralab::dlrm
