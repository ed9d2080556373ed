// layers.cpp: DLRM building blocks (layers.hpp).
#include "dlrm/layers.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>
#include <string>

#include "kernels/gemm.hpp"

namespace paralab::dlrm {

// --- random numbers ------------------------------------------------------------

uint64_t splitmix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t mix(uint64_t a, uint64_t b) {
  return splitmix64(a ^ splitmix64(b ^ 0x632be59bd9b4e019ull));
}

double uniform01(uint64_t key, uint64_t index) {
  return static_cast<double>(splitmix64(mix(key, index)) >> 11) * 0x1.0p-53;
}

float init_uniform(uint64_t seed, uint64_t tensor, uint64_t index) {
  return static_cast<float>(2.0 * uniform01(mix(seed, tensor), index) - 1.0);
}

float init_normal(uint64_t seed, uint64_t tensor, uint64_t index) {
  const uint64_t key = mix(seed, tensor);
  const double u1 = 1.0 - uniform01(key, 2 * index);  // (0, 1]
  const double u2 = uniform01(key, 2 * index + 1);
  return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2));
}

uint64_t embedding_tensor(int table) {
  return mix(3, static_cast<uint64_t>(table));
}

// --- MLP -----------------------------------------------------------------------

Mlp::Mlp(int input, std::vector<int> layers, bool relu_last, uint64_t seed, uint64_t tensor_base)
    : relu_last_(relu_last) {
  if (input < 1 || layers.empty())
    throw std::invalid_argument("Mlp: needs an input width and at least one layer");
  widths_.push_back(input);
  for (int w : layers) {
    if (w < 1) throw std::invalid_argument("Mlp: layer widths must be at least 1");
    widths_.push_back(w);
  }
  size_t total = 0;
  for (int l = 0; l < this->layers(); ++l) {
    w_offset_.push_back(total);
    total += static_cast<size_t>(widths_[l]) * widths_[l + 1];
    b_offset_.push_back(total);
    total += static_cast<size_t>(widths_[l + 1]);
  }
  params_.resize(total);
  grads_.assign(total, 0.0f);
  for (int l = 0; l < this->layers(); ++l) {
    const int in = widths_[l], out = widths_[l + 1];
    const float w_std = static_cast<float>(std::sqrt(2.0 / (in + out)));
    const float b_std = static_cast<float>(std::sqrt(1.0 / out));
    const uint64_t wt = mix(tensor_base, 2 * static_cast<uint64_t>(l));
    const uint64_t bt = mix(tensor_base, 2 * static_cast<uint64_t>(l) + 1);
    float* w = weight(l);
    for (size_t i = 0; i < static_cast<size_t>(in) * out; ++i)
      w[i] = w_std * init_normal(seed, wt, i);
    float* b = bias(l);
    for (int i = 0; i < out; ++i) b[i] = b_std * init_normal(seed, bt, static_cast<uint64_t>(i));
  }
}

double Mlp::flops_per_sample() const {
  double f = 0;
  for (int l = 0; l < layers(); ++l) f += 2.0 * widths_[l] * widths_[l + 1];
  return f;
}

const float* Mlp::forward(const float* x, int n, Saved& saved) const {
  saved.n = n;
  saved.out.resize(static_cast<size_t>(layers()));
  const float* in = x;
  for (int l = 0; l < layers(); ++l) {
    const int k = widths_[l], m = widths_[l + 1];
    std::vector<float>& y = saved.out[static_cast<size_t>(l)];
    y.resize(static_cast<size_t>(n) * m);
    const float* b = bias(l);
    for (int i = 0; i < n; ++i) std::copy(b, b + m, y.data() + static_cast<size_t>(i) * m);
    if (batch_invariant_) {
      // y_i = b + sum_k x_ik W^T[k, :], k ascending: vectorises over outputs
      // without reassociating any sum.
      const float* w = weight(l);
      saved.wt.resize(static_cast<size_t>(k) * m);
      for (int o = 0; o < m; ++o)
        for (int j = 0; j < k; ++j)
          saved.wt[static_cast<size_t>(j) * m + o] = w[static_cast<size_t>(o) * k + j];
      const float* wt = saved.wt.data();
#pragma omp parallel for schedule(static) if (n > 64)
      for (int i = 0; i < n; ++i) {
        float* yi = y.data() + static_cast<size_t>(i) * m;
        const float* xi = in + static_cast<size_t>(i) * k;
        for (int j = 0; j < k; ++j) {
          const float xv = xi[j];
          const float* row = wt + static_cast<size_t>(j) * m;
          for (int o = 0; o < m; ++o) yi[o] += xv * row[o];
        }
      }
    } else if (n > 0) {
      kernels::GemmShape s;
      s.trans_b = kernels::Trans::yes;
      s.M = n, s.N = m, s.K = k;
      s.beta = 1;
      kernels::cpu::gemm(s, in, weight(l), y.data());
    }
    if (relu(l))
      for (float& v : y) v = v > 0.0f ? v : 0.0f;
    in = y.data();
  }
  return saved.out.back().data();
}

void Mlp::backward(const float* x, Saved& saved, const float* dout, float* dx) {
  const int n = saved.n;
  const float* g = dout;
  for (int l = layers() - 1; l >= 0; --l) {
    const int k = widths_[l], m = widths_[l + 1];
    const size_t count = static_cast<size_t>(n) * m;
    // dpre = g * relu'(y), in grad_a (in place when g is already there).
    std::vector<float>& dpre = saved.grad_a;
    if (g != dpre.data()) dpre.assign(g, g + count);
    if (relu(l)) {
      const float* y = saved.out[static_cast<size_t>(l)].data();
      for (size_t i = 0; i < count; ++i)
        if (!(y[i] > 0.0f)) dpre[i] = 0.0f;
    }
    const float* in = l > 0 ? saved.out[static_cast<size_t>(l) - 1].data() : x;
    if (n > 0) {
      kernels::GemmShape s;  // dW [m, k] += dpre^T [m, n] in [n, k]
      s.trans_a = kernels::Trans::yes;
      s.M = m, s.N = k, s.K = n;
      s.beta = 1;
      kernels::cpu::gemm(s, dpre.data(), in, grads_.data() + w_offset_[l]);
    }
    float* db = grads_.data() + b_offset_[l];
    for (int i = 0; i < n; ++i) {
      const float* row = dpre.data() + static_cast<size_t>(i) * m;
      for (int j = 0; j < m; ++j) db[j] += row[j];
    }
    if (l == 0 && dx == nullptr) break;
    float* next = dx;
    if (l > 0) {
      saved.grad_b.resize(static_cast<size_t>(n) * k);
      next = saved.grad_b.data();
    }
    if (n > 0) {
      kernels::GemmShape s;  // dx [n, k] = dpre [n, m] W [m, k]
      s.M = n, s.N = k, s.K = m;
      kernels::cpu::gemm(s, dpre.data(), weight(l), next);
    }
    if (l > 0) {
      std::swap(saved.grad_a, saved.grad_b);
      g = saved.grad_a.data();
    }
  }
}

void Mlp::zero_gradients() {
  std::fill(grads_.begin(), grads_.end(), 0.0f);
}

void Mlp::sgd(float lr, float scale) {
  const float step = lr * scale;
  for (size_t i = 0; i < params_.size(); ++i) params_[i] -= step * grads_[i];
}

// --- embedding bags ------------------------------------------------------------

EmbeddingShard::EmbeddingShard(int table, int64_t table_rows, int dim, int64_t row_begin,
                               int64_t row_end, int col_begin, int col_end, uint64_t seed,
                               float init_scale)
    : table_(table),
      table_rows_(table_rows),
      dim_(dim),
      row_begin_(row_begin),
      row_end_(row_end),
      col_begin_(col_begin),
      col_end_(col_end) {
  if (table_rows < 1 || dim < 1 || row_begin < 0 || row_end > table_rows || row_begin > row_end ||
      col_begin < 0 || col_end > dim || col_begin > col_end)
    throw std::invalid_argument("EmbeddingShard: rows [" + std::to_string(row_begin) + ", " +
                                std::to_string(row_end) + ") or columns [" +
                                std::to_string(col_begin) + ", " + std::to_string(col_end) +
                                ") outside the table");
  const float scale = init_scale > 0
                          ? init_scale
                          : static_cast<float>(std::sqrt(1.0 / static_cast<double>(table_rows)));
  const int64_t n = rows();
  const int c = cols();
  weights_.resize(static_cast<size_t>(n) * static_cast<size_t>(c));
  state_.assign(static_cast<size_t>(n), 0.0f);
  const uint64_t tensor = embedding_tensor(table);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < n; ++r) {
    const uint64_t base = static_cast<uint64_t>(row_begin + r) * static_cast<uint64_t>(dim);
    float* w = weights_.data() + r * c;
    for (int j = 0; j < c; ++j)
      w[j] = scale * init_uniform(seed, tensor, base + static_cast<uint64_t>(col_begin + j));
  }
}

void EmbeddingShard::forward(const Lookups& lookups, int bag_begin, int bag_end, float* out,
                             size_t ld) const {
  const int c = cols();
  // Threads only for enough work: a parallel region costs microseconds.
  const int64_t work = static_cast<int64_t>(lookups.offsets[static_cast<size_t>(bag_end)] -
                                            lookups.offsets[static_cast<size_t>(bag_begin)] +
                                            (bag_end - bag_begin)) *
                       c;
#pragma omp parallel for schedule(static) if (work > (int64_t{1} << 18))
  for (int b = bag_begin; b < bag_end; ++b) {
    float* o = out + static_cast<size_t>(b - bag_begin) * ld;
    std::fill(o, o + c, 0.0f);
    for (int32_t k = lookups.offsets[static_cast<size_t>(b)];
         k < lookups.offsets[static_cast<size_t>(b) + 1]; ++k) {
      const int64_t r = lookups.indices[static_cast<size_t>(k)];
      if (r < row_begin_ || r >= row_end_) continue;
      const float* w = weights_.data() + (r - row_begin_) * c;
      for (int j = 0; j < c; ++j) o[j] += w[j];
    }
  }
}

void EmbeddingShard::begin_backward(SparseGrad& grad) const {
  if (grad.slot.size() != static_cast<size_t>(rows())) {
    grad.slot.assign(static_cast<size_t>(rows()), -1);
  } else {
    for (int32_t r : grad.rows) grad.slot[static_cast<size_t>(r)] = -1;
  }
  grad.width = cols();
  grad.rows.clear();
  grad.values.clear();
}

void EmbeddingShard::backward(const Lookups& lookups, int bag_begin, int bag_end, const float* dout,
                              size_t ld, SparseGrad& grad) const {
  const int c = cols();
  for (int b = bag_begin; b < bag_end; ++b) {
    const float* g = dout + static_cast<size_t>(b - bag_begin) * ld;
    for (int32_t k = lookups.offsets[static_cast<size_t>(b)];
         k < lookups.offsets[static_cast<size_t>(b) + 1]; ++k) {
      const int64_t r = lookups.indices[static_cast<size_t>(k)];
      if (r < row_begin_ || r >= row_end_) continue;
      const auto local = static_cast<int32_t>(r - row_begin_);
      int32_t& s = grad.slot[static_cast<size_t>(local)];
      if (s < 0) {
        s = static_cast<int32_t>(grad.rows.size());
        grad.rows.push_back(local);
        grad.values.resize(grad.values.size() + static_cast<size_t>(c), 0.0f);
      }
      float* v = grad.values.data() + static_cast<size_t>(s) * c;
      for (int j = 0; j < c; ++j) v[j] += g[j];
    }
  }
}

void EmbeddingShard::sgd(const SparseGrad& grad, float lr, float scale) {
  const int c = cols();
  const float step = lr * scale;
  for (size_t i = 0; i < grad.rows.size(); ++i) {
    float* w = row(grad.rows[i]);
    const float* g = grad.values.data() + i * c;
    for (int j = 0; j < c; ++j) w[j] -= step * g[j];
  }
}

void EmbeddingShard::row_square_sums(const SparseGrad& grad, float scale,
                                     std::vector<float>& out) const {
  const int c = cols();
  out.resize(grad.rows.size());
  for (size_t i = 0; i < grad.rows.size(); ++i) {
    const float* g = grad.values.data() + i * c;
    float s = 0;
    for (int j = 0; j < c; ++j) {
      const float v = scale * g[j];
      s += v * v;
    }
    out[i] = s;
  }
}

namespace {

void adagrad_row(float* w, float& state, const float* g, int cols, float square_sum, int dim,
                 float lr, float eps, float scale) {
  state += square_sum / static_cast<float>(dim);
  const float denom = std::sqrt(state) + eps;
  for (int j = 0; j < cols; ++j) w[j] -= lr * (scale * g[j]) / denom;
}

}  // namespace

void EmbeddingShard::rowwise_adagrad(const SparseGrad& grad, float lr, float eps, float scale,
                                     const float* square_sums) {
  const int c = cols();
  for (size_t i = 0; i < grad.rows.size(); ++i)
    adagrad_row(row(grad.rows[i]), state_[static_cast<size_t>(grad.rows[i])],
                grad.values.data() + i * c, c, square_sums[i], dim_, lr, eps, scale);
}

void EmbeddingShard::sgd_dense(const float* grad, float lr, float scale) {
  const float step = lr * scale;
  for (size_t i = 0; i < weights_.size(); ++i) weights_[i] -= step * grad[i];
}

void EmbeddingShard::rowwise_adagrad_dense(const float* grad, float lr, float eps, float scale) {
  const int c = cols();
  for (int64_t r = 0; r < rows(); ++r) {
    const float* g = grad + r * c;
    bool touched = false;
    float s = 0;
    for (int j = 0; j < c; ++j) {
      touched |= g[j] != 0.0f;
      const float v = scale * g[j];
      s += v * v;
    }
    if (touched) adagrad_row(row(r), state_[static_cast<size_t>(r)], g, c, s, dim_, lr, eps, scale);
  }
}

void EmbeddingShard::scatter(const SparseGrad& grad, float* dense) const {
  const int c = cols();
  for (size_t i = 0; i < grad.rows.size(); ++i) {
    float* d = dense + static_cast<size_t>(grad.rows[i]) * c;
    const float* g = grad.values.data() + i * c;
    for (int j = 0; j < c; ++j) d[j] += g[j];
  }
}

// --- interaction and loss ------------------------------------------------------

void interaction_forward(const float* t, int n, int features, int d, float* out) {
  const size_t width = static_cast<size_t>(d) + interaction_pairs(features);
#pragma omp parallel for schedule(static) if (n > 64)
  for (int b = 0; b < n; ++b) {
    const float* tb = t + static_cast<size_t>(b) * features * d;
    float* o = out + static_cast<size_t>(b) * width;
    std::copy(tb, tb + d, o);
    size_t k = static_cast<size_t>(d);
    for (int i = 1; i < features; ++i) {
      const float* ti = tb + static_cast<size_t>(i) * d;
      for (int j = 0; j < i; ++j) {
        const float* tj = tb + static_cast<size_t>(j) * d;
        float s = 0;
        for (int e = 0; e < d; ++e) s += ti[e] * tj[e];
        o[k++] = s;
      }
    }
  }
}

void interaction_backward(const float* t, const float* dout, int n, int features, int d,
                          float* dt) {
  const size_t width = static_cast<size_t>(d) + interaction_pairs(features);
#pragma omp parallel for schedule(static) if (n > 64)
  for (int b = 0; b < n; ++b) {
    const float* tb = t + static_cast<size_t>(b) * features * d;
    const float* g = dout + static_cast<size_t>(b) * width;
    float* db = dt + static_cast<size_t>(b) * features * d;
    std::copy(g, g + d, db);
    std::fill(db + d, db + static_cast<size_t>(features) * d, 0.0f);
    size_t k = static_cast<size_t>(d);
    for (int i = 1; i < features; ++i) {
      const float* ti = tb + static_cast<size_t>(i) * d;
      float* di = db + static_cast<size_t>(i) * d;
      for (int j = 0; j < i; ++j) {
        const float* tj = tb + static_cast<size_t>(j) * d;
        float* dj = db + static_cast<size_t>(j) * d;
        const float gz = g[k++];
        for (int e = 0; e < d; ++e) {
          di[e] += gz * tj[e];
          dj[e] += gz * ti[e];
        }
      }
    }
  }
}

float sigmoid(float z) {
  if (z >= 0) return 1.0f / (1.0f + std::exp(-z));
  const float e = std::exp(z);
  return e / (1.0f + e);
}

double bce_with_logits(const float* logits, const float* labels, int n, float* dlogits) {
  double sum = 0;
  for (int i = 0; i < n; ++i) {
    const double z = logits[i], y = labels[i];
    sum += std::max(z, 0.0) - z * y + std::log1p(std::exp(-std::abs(z)));
    if (dlogits) dlogits[i] = sigmoid(logits[i]) - labels[i];
  }
  return sum;
}

}  // namespace paralab::dlrm
