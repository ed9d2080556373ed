// The FP32 parts of the layers are simple loops, parallel over rows (each row
// is independent, so results do not depend on the thread count); reductions
// over rows (gain and embedding gradients) run in a fixed order.
#include "model/layers.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace paralab::model {

using kernels::GemmShape;
using kernels::Trans;

namespace {

size_t idx(int64_t row, int64_t width) {
  return static_cast<size_t>(row) * static_cast<size_t>(width);
}

float sigmoid(float a) {
  return 1.0f / (1.0f + std::exp(-a));
}

}  // namespace

// --- Embedding --------------------------------------------------------------

Embedding::Embedding(Parameters& params, const std::string& name, int vocab, int d)
    : table_(&params.add(name, {vocab, d})), d_(d) {}

void Embedding::forward(std::span<const int32_t> tokens, float* out) const {
  const float* table = table_->values().data();
  const int64_t n = static_cast<int64_t>(tokens.size());
#pragma omp parallel for schedule(static) if (worth_threads(idx(n, d_)))
  for (int64_t i = 0; i < n; ++i) {
    std::memcpy(out + idx(i, d_), table + idx(tokens[i], d_), sizeof(float) * d_);
  }
}

void Embedding::backward(std::span<const int32_t> tokens, const float* dout) {
  float* grad = table_->grad().data();
  for (size_t i = 0; i < tokens.size(); ++i) {
    float* row = grad + idx(tokens[i], d_);
    const float* d = dout + idx(static_cast<int64_t>(i), d_);
    for (int j = 0; j < d_; ++j) row[j] += d[j];
  }
}

// --- RMSNorm ----------------------------------------------------------------

RmsNorm::RmsNorm(Parameters& params, const std::string& name, int d, float eps)
    : gain_(&params.add(name, {d})), d_(d), eps_(eps) {
  params.fill(*gain_, 1.0f);
}

void RmsNorm::forward(const float* x, int n, float* y, float* rstd) const {
  const float* g = gain_->values().data();
#pragma omp parallel for schedule(static) if (worth_threads(idx(n, d_)))
  for (int i = 0; i < n; ++i) {
    const float* xi = x + idx(i, d_);
    float* yi = y + idx(i, d_);
    double sum = 0;
    for (int j = 0; j < d_; ++j) sum += double{xi[j]} * xi[j];
    const float r = static_cast<float>(1.0 / std::sqrt(sum / d_ + eps_));
    rstd[i] = r;
    for (int j = 0; j < d_; ++j) yi[j] = g[j] * (xi[j] * r);
  }
}

// dx_j = r g_j dy_j - x_j r^3 / d * sum_k g_k dy_k x_k;  dg_j += sum_rows dy_j x_j r.
void RmsNorm::backward(const float* x, const float* rstd, const float* dy, int n, float* dx,
                       bool accumulate) {
  const float* g = gain_->values().data();
#pragma omp parallel for schedule(static) if (worth_threads(idx(n, d_)))
  for (int i = 0; i < n; ++i) {
    const float* xi = x + idx(i, d_);
    const float* dyi = dy + idx(i, d_);
    float* dxi = dx + idx(i, d_);
    double dot = 0;
    for (int j = 0; j < d_; ++j) dot += double{g[j]} * dyi[j] * xi[j];
    const float r = rstd[i];
    const float c = static_cast<float>(dot * r * r * r / d_);
    for (int j = 0; j < d_; ++j) {
      const float v = r * g[j] * dyi[j] - xi[j] * c;
      dxi[j] = accumulate ? dxi[j] + v : v;
    }
  }
  float* dg = gain_->grad().data();
  for (int i = 0; i < n; ++i) {
    const float* xi = x + idx(i, d_);
    const float* dyi = dy + idx(i, d_);
    for (int j = 0; j < d_; ++j) dg[j] += dyi[j] * xi[j] * rstd[i];
  }
}

// --- Linear -----------------------------------------------------------------

Linear::Linear(Parameters& params, const std::string& name, int in, int out)
    : w_(&params.add(name, {out, in})), in_(in), out_(out) {}

Operand Linear::weight_operand(bool use_bf16) const {
  if (use_bf16) return {nullptr, w_->bf16_values().data()};
  return {w_->values().data(), nullptr};
}

void Linear::forward(Operand x, int n, float* y, bool accumulate) const {
  GemmShape s;
  s.trans_b = Trans::yes;  // W is [out, in]
  s.M = n, s.N = out_, s.K = in_;
  s.beta = accumulate ? 1.0f : 0.0f;
  matmul(s, x, weight_operand(x.is_bf16()), y);
}

void Linear::backward(Operand x, Operand dy, int n, float* dx, bool accumulate) {
  GemmShape dw;  // dW [out, in] += dy^T [out, n] x [n, in]
  dw.trans_a = Trans::yes;
  dw.M = out_, dw.N = in_, dw.K = n;
  dw.beta = 1.0f;
  matmul(dw, dy, x, w_->grad().data());
  if (!dx) return;
  GemmShape dxs;  // dx [n, in] = dy [n, out] W [out, in]
  dxs.M = n, dxs.N = in_, dxs.K = out_;
  dxs.beta = accumulate ? 1.0f : 0.0f;
  matmul(dxs, dy, weight_operand(dy.is_bf16()), dx);
}

// --- SwiGLU MLP ---------------------------------------------------------------

Mlp::Mlp(Parameters& params, const std::string& prefix, int d, int ffn)
    : gate_(params, prefix + ".w_gate", d, ffn),
      up_(params, prefix + ".w_up", d, ffn),
      down_(params, prefix + ".w_down", ffn, d),
      ffn_(ffn) {}

void Mlp::forward(Operand x, int n, Saved& saved, float* out, bool accumulate) {
  const size_t count = idx(n, ffn_);
  saved.gate.resize(count);
  saved.up.resize(count);
  gate_.forward(x, n, saved.gate.data());
  up_.forward(x, n, saved.up.data());
  float* h = saved.h.reset(count);
  const float* a = saved.gate.data();
  const float* u = saved.up.data();
#pragma omp parallel for schedule(static) if (worth_threads(count))
  for (int64_t i = 0; i < static_cast<int64_t>(count); ++i) h[i] = a[i] * sigmoid(a[i]) * u[i];
  saved.h.seal(x.is_bf16());
  down_.forward(saved.h.operand(), n, out, accumulate);
}

// With s = sigmoid(a): dh = dout Wd, du = dh silu(a), da = dh u s (1 + a (1 - s)).
void Mlp::backward(Operand x, const Saved& saved, const float* dout, int n, float* dx,
                   bool accumulate) {
  const bool use_bf16 = x.is_bf16();
  const size_t count = idx(n, ffn_);
  dh_.resize(count);
  du_.resize(count);
  down_.backward(saved.h.operand(), as_operand({dout, idx(n, down_.out())}, use_bf16, scratch_), n,
                 dh_.data());
  const float* a = saved.gate.data();
  const float* u = saved.up.data();
  float* dh = dh_.data();  // becomes da
  float* du = du_.data();
#pragma omp parallel for schedule(static) if (worth_threads(count))
  for (int64_t i = 0; i < static_cast<int64_t>(count); ++i) {
    const float s = sigmoid(a[i]);
    du[i] = dh[i] * a[i] * s;
    dh[i] = dh[i] * u[i] * s * (1.0f + a[i] * (1.0f - s));
  }
  gate_.backward(x, as_operand(dh_, use_bf16, scratch_), n, dx, accumulate);
  up_.backward(x, as_operand(du_, use_bf16, scratch_), n, dx, true);
}

// --- cross-entropy ------------------------------------------------------------

LossSum cross_entropy(float* logits, std::span<const int32_t> targets, int vocab, bool gradient,
                      double grad_scale) {
  const int64_t n = static_cast<int64_t>(targets.size());
  std::vector<double> row_loss(static_cast<size_t>(n), 0.0);
#pragma omp parallel for schedule(static) if (worth_threads(idx(n, vocab)))
  for (int64_t i = 0; i < n; ++i) {
    float* row = logits + idx(i, vocab);
    const int32_t target = targets[i];
    if (target < 0) {
      if (gradient) std::fill(row, row + vocab, 0.0f);
      continue;
    }
    const float m = *std::max_element(row, row + vocab);
    double sum = 0;
    for (int j = 0; j < vocab; ++j) sum += std::exp(double{row[j]} - m);
    const double lse = m + std::log(sum);
    row_loss[i] = lse - row[target];
    if (!gradient) continue;
    for (int j = 0; j < vocab; ++j) {
      row[j] = static_cast<float>(std::exp(double{row[j]} - lse) * grad_scale);
    }
    row[target] -= static_cast<float>(grad_scale);
  }
  LossSum total;
  for (int64_t i = 0; i < n; ++i) {
    if (targets[i] < 0) continue;
    total.sum += row_loss[i];
    ++total.count;
  }
  return total;
}

}  // namespace paralab::model
