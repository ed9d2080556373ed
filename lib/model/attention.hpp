// attention.hpp: rotary position embedding and the causal self-attention
// layer with grouped-query heads and document masks (packed sequences).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kernels/attention.hpp"
#include "model/config.hpp"
#include "model/layers.hpp"

namespace paralab::model {

// How the n = B * T tokens of a batch form sequences: attention runs per
// sequence (causal, within documents); RoPE uses each token's position.
struct SequenceLayout {
  int batch = 0;                                     // B
  int seq = 0;                                       // T
  std::span<const std::vector<int64_t>> doc_starts;  // empty or B lists (see Batch)
  std::span<const int32_t> positions;                // [B * T] positions within documents

  int tokens() const { return batch * seq; }
};

// RoPE (Su et al.), interleaved pairs: dimensions (2i, 2i + 1) of each head
// rotate by position * theta^(-2i / D). Orthogonal, so its backward is the
// rotation by the opposite angle. Tables in double, stored in FP32.
class Rope {
 public:
  Rope(int head_dim, int context, float theta);
  bool enabled() const { return !cos_.empty(); }
  // x [n, heads, head_dim] in place; inverse rotates backwards (for gradients).
  void apply(float* x, int n, int heads, std::span<const int32_t> positions, bool inverse) const;

 private:
  int half_;
  std::vector<float> cos_, sin_;  // [context, head_dim / 2]
};

// Causal self-attention: q = x Wq^T [n, H, D], k = x Wk^T and v = x Wv^T
// [n, H_kv, D], RoPE on q and k, O = softmax(q k^T / sqrt(D)) v per sequence
// through kernels::cpu::attention_forward (BF16 q, k, v under the BF16
// policies; FP32 O and LSE), out = O Wo^T. Backward: kernels::cpu::
// attention_backward in FP32 on the values the forward used (the BF16-rounded
// q, k, v under the BF16 policies).
class Attention {
 public:
  struct Saved {
    Activation q, k, v;         // after RoPE, rounded to BF16 under the BF16 policies
    std::vector<float> o, lse;  // [n, H, D] and [n, H], FP32 kernel outputs
    std::vector<bf16> o_bf16;   // O as the BF16 input of Wo (BF16 policies)
  };
  Attention(Parameters& params, const std::string& prefix, const ModelConfig& config);
  // x [n, d_model]; out = or += the layer's output [n, d_model].
  void forward(Operand x, const SequenceLayout& layout, Saved& saved, float* out, bool accumulate);
  void backward(Operand x, const SequenceLayout& layout, const Saved& saved, const float* dout,
                float* dx, bool accumulate);
  Linear& wq() { return wq_; }
  Linear& wk() { return wk_; }
  Linear& wv() { return wv_; }
  Linear& wo() { return wo_; }

 private:
  kernels::AttentionArgs args(const SequenceLayout& layout, int sequence) const;
  void project(Linear& w, Operand x, const SequenceLayout& layout, Activation& out, int heads,
               bool rope);
  int heads_, kv_heads_, head_dim_;
  Linear wq_, wk_, wv_, wo_;
  Rope rope_;
  std::vector<float> d_o_, dq_, dk_, dv_;
  std::vector<bf16> scratch_;
};

}  // namespace paralab::model
