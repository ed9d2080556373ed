// layers.hpp: the building blocks of the transformer, each a small class that
// owns its parameter tensors (registered in a Parameters registry) and has an
// explicit forward and backward over plain row-major buffers of n tokens.
// Layers keep no activations: what backward needs is passed back in by the
// caller (the TransformerLayer's Saved), so several micro-batches can be in
// flight at once (pipeline schedules). Backward always adds to the parameter
// gradients, and writes (or, with accumulate, adds to) the input gradient.
// A layer computes in BF16 exactly when its GEMM operands arrive as BF16.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "model/parameters.hpp"
#include "model/tensor.hpp"

namespace paralab::model {

// Token embedding: out[i] = table[tokens[i]]; table [vocab, d].
class Embedding {
 public:
  Embedding(Parameters& params, const std::string& name, int vocab, int d);
  void forward(std::span<const int32_t> tokens, float* out) const;
  void backward(std::span<const int32_t> tokens, const float* dout);
  Parameter& table() { return *table_; }

 private:
  Parameter* table_;
  int d_;
};

// RMSNorm: y = g * x / sqrt(mean(x^2) + eps) per row of d; gain g [d], init 1.
// rstd [n] (1 / sqrt(mean(x^2) + eps)) is saved for backward. FP32 always.
class RmsNorm {
 public:
  RmsNorm(Parameters& params, const std::string& name, int d, float eps);
  void forward(const float* x, int n, float* y, float* rstd) const;
  void backward(const float* x, const float* rstd, const float* dy, int n, float* dx,
                bool accumulate);
  Parameter& gain() { return *gain_; }

 private:
  Parameter* gain_;
  int d_;
  float eps_;
};

// y [n, out] = x [n, in] W^T, W [out, in] (a torch.nn.Linear without bias;
// the row-major [out, in] layout makes a column-parallel shard contiguous).
class Linear {
 public:
  Linear(Parameters& params, const std::string& name, int in, int out);
  int in() const { return in_; }
  int out() const { return out_; }
  Parameter& weight() { return *w_; }
  // y = x W^T, or y += x W^T with accumulate.
  void forward(Operand x, int n, float* y, bool accumulate = false) const;
  // dW += dy^T x; dx = dy W (or +=), skipped when dx is null. x and dy of
  // the same type: BF16 operands use the BF16 weight copy.
  void backward(Operand x, Operand dy, int n, float* dx, bool accumulate = false);

 private:
  Operand weight_operand(bool use_bf16) const;
  Parameter* w_;
  int in_, out_;
};

// SwiGLU MLP: out = (silu(x Wg^T) * (x Wu^T)) Wd^T; Wg, Wu [ffn, d], Wd [d, ffn].
class Mlp {
 public:
  struct Saved {
    std::vector<float> gate, up;  // [n, ffn] FP32 pre-activations
    Activation h;                 // [n, ffn] input of the down projection
  };
  Mlp(Parameters& params, const std::string& prefix, int d, int ffn);
  // x [n, d] (its type picks FP32 or BF16 compute); out = or += result.
  void forward(Operand x, int n, Saved& saved, float* out, bool accumulate);
  void backward(Operand x, const Saved& saved, const float* dout, int n, float* dx,
                bool accumulate);
  Linear& gate() { return gate_; }
  Linear& up() { return up_; }
  Linear& down() { return down_; }

 private:
  Linear gate_, up_, down_;
  int ffn_;
  std::vector<float> dh_, du_;
  std::vector<bf16> scratch_;
};

// Softmax cross-entropy over rows of logits [n, vocab]; rows whose target is
// negative are ignored. With gradient, logits are overwritten by
// d(sum of losses * grad_scale) / d(logits) (zero rows for ignored targets).
struct LossSum {
  double sum = 0;     // summed -log p(target) over counted rows
  int64_t count = 0;  // counted rows
  double mean() const { return count ? sum / static_cast<double>(count) : 0.0; }
};
LossSum cross_entropy(float* logits, std::span<const int32_t> targets, int vocab, bool gradient,
                      double grad_scale);

}  // namespace paralab::model
