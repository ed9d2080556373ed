#include "model/attention.hpp"

#include <cmath>

namespace paralab::model {

namespace {

size_t idx(int64_t row, int64_t width) {
  return static_cast<size_t>(row) * static_cast<size_t>(width);
}

}  // namespace

// --- RoPE ---------------------------------------------------------------------

Rope::Rope(int head_dim, int context, float theta) : half_(head_dim / 2) {
  if (theta == 0) return;
  cos_.resize(idx(context, half_));
  sin_.resize(idx(context, half_));
  for (int p = 0; p < context; ++p) {
    for (int i = 0; i < half_; ++i) {
      const double angle = p * std::pow(double{theta}, -2.0 * i / head_dim);
      cos_[idx(p, half_) + i] = static_cast<float>(std::cos(angle));
      sin_[idx(p, half_) + i] = static_cast<float>(std::sin(angle));
    }
  }
}

void Rope::apply(float* x, int n, int heads, std::span<const int32_t> positions,
                 bool inverse) const {
  if (!enabled()) return;
  const float sign = inverse ? -1.0f : 1.0f;
#pragma omp parallel for schedule(static) if (worth_threads(idx(n, heads) * 2 * half_))
  for (int t = 0; t < n; ++t) {
    const float* c = cos_.data() + idx(positions[t], half_);
    const float* s = sin_.data() + idx(positions[t], half_);
    for (int h = 0; h < heads; ++h) {
      float* v = x + idx(idx(t, heads) + h, 2 * half_);
      for (int i = 0; i < half_; ++i) {
        const float a = v[2 * i], b = v[2 * i + 1], sn = sign * s[i];
        v[2 * i] = a * c[i] - b * sn;
        v[2 * i + 1] = a * sn + b * c[i];
      }
    }
  }
}

// --- attention ----------------------------------------------------------------

Attention::Attention(Parameters& params, const std::string& prefix, const ModelConfig& config)
    : heads_(config.heads),
      kv_heads_(config.kv_heads),
      head_dim_(config.head_dim()),
      wq_(params, prefix + ".wq", config.d_model, config.heads * config.head_dim()),
      wk_(params, prefix + ".wk", config.d_model, config.kv_heads * config.head_dim()),
      wv_(params, prefix + ".wv", config.d_model, config.kv_heads * config.head_dim()),
      wo_(params, prefix + ".wo", config.heads * config.head_dim(), config.d_model),
      rope_(config.head_dim(), config.context, config.rope_theta) {}

kernels::AttentionArgs Attention::args(const SequenceLayout& layout, int sequence) const {
  kernels::AttentionArgs a;
  a.shape = {layout.seq, layout.seq, heads_, kv_heads_, head_dim_};
  a.mask.causal = true;
  if (!layout.doc_starts.empty()) a.mask.doc_starts = layout.doc_starts[sequence];
  return a;
}

// out = x W^T [n, heads, D], rotated when asked, then sealed (BF16-rounded
// when x is BF16, since the attention kernel then takes BF16 inputs).
void Attention::project(Linear& w, Operand x, const SequenceLayout& layout, Activation& out,
                        int heads, bool rope) {
  const int n = layout.tokens();
  float* y = out.reset(idx(n, w.out()));
  w.forward(x, n, y);
  if (rope) rope_.apply(y, n, heads, layout.positions, false);
  out.seal(x.is_bf16());
}

void Attention::forward(Operand x, const SequenceLayout& layout, Saved& saved, float* out,
                        bool accumulate) {
  const int n = layout.tokens();
  const bool use_bf16 = x.is_bf16();
  project(wq_, x, layout, saved.q, heads_, true);
  project(wk_, x, layout, saved.k, kv_heads_, true);
  project(wv_, x, layout, saved.v, kv_heads_, false);
  saved.o.resize(idx(n, heads_ * head_dim_));
  saved.lse.resize(idx(n, heads_));
  const size_t q_stride = idx(layout.seq, heads_ * head_dim_);
  const size_t kv_stride = idx(layout.seq, kv_heads_ * head_dim_);
  for (int b = 0; b < layout.batch; ++b) {
    float* o = saved.o.data() + b * q_stride;
    float* lse = saved.lse.data() + idx(b, idx(layout.seq, heads_));
    const Operand q = saved.q.operand(), k = saved.k.operand(), v = saved.v.operand();
    if (use_bf16) {
      kernels::cpu::attention_forward(args(layout, b), q.b16 + b * q_stride, k.b16 + b * kv_stride,
                                      v.b16 + b * kv_stride, o, lse);
    } else {
      kernels::cpu::attention_forward(args(layout, b), q.f32 + b * q_stride, k.f32 + b * kv_stride,
                                      v.f32 + b * kv_stride, o, lse);
    }
  }
  wo_.forward(as_operand(saved.o, use_bf16, saved.o_bf16), n, out, accumulate);
}

void Attention::backward(Operand x, const SequenceLayout& layout, const Saved& saved,
                         const float* dout, float* dx, bool accumulate) {
  const int n = layout.tokens();
  const bool use_bf16 = x.is_bf16();
  const Operand o = use_bf16 ? Operand{nullptr, saved.o_bf16.data()} : Operand{saved.o.data()};
  d_o_.resize(saved.o.size());
  wo_.backward(o, as_operand({dout, idx(n, wo_.out())}, use_bf16, scratch_), n, d_o_.data());

  dq_.resize(saved.q.size());
  dk_.resize(saved.k.size());
  dv_.resize(saved.v.size());
  const size_t q_stride = idx(layout.seq, heads_ * head_dim_);
  const size_t kv_stride = idx(layout.seq, kv_heads_ * head_dim_);
  for (int b = 0; b < layout.batch; ++b) {
    const size_t qo = b * q_stride, ko = b * kv_stride;
    kernels::cpu::attention_backward(
        args(layout, b), saved.q.data() + qo, saved.k.data() + ko, saved.v.data() + ko,
        saved.o.data() + qo, saved.lse.data() + idx(b, idx(layout.seq, heads_)), d_o_.data() + qo,
        dq_.data() + qo, dk_.data() + ko, dv_.data() + ko);
  }
  rope_.apply(dq_.data(), n, heads_, layout.positions, true);
  rope_.apply(dk_.data(), n, kv_heads_, layout.positions, true);
  wq_.backward(x, as_operand(dq_, use_bf16, scratch_), n, dx, accumulate);
  wk_.backward(x, as_operand(dk_, use_bf16, scratch_), n, dx, true);
  wv_.backward(x, as_operand(dv_, use_bf16, scratch_), n, dx, true);
}

}  // namespace paralab::model
