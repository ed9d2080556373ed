// block.hpp: one pre-norm transformer layer on the residual stream x [n, d]:
//   x += Attention(RMSNorm(x));  x += SwiGLU(RMSNorm(x))
#pragma once

#include <string>
#include <vector>

#include "model/attention.hpp"
#include "model/config.hpp"
#include "model/layers.hpp"

namespace paralab::model {

class TransformerLayer {
 public:
  // What backward needs from one forward (one micro-batch).
  struct Saved {
    std::vector<float> x_attn, x_mlp;        // residual stream entering each block
    std::vector<float> rstd_attn, rstd_mlp;  // RMSNorm 1 / rms per token
    Activation xn_attn, xn_mlp;              // normalised inputs (GEMM operands)
    Attention::Saved attn;
    Mlp::Saved mlp;
  };

  // Parameters are named "<prefix>.attn_norm.gain", "<prefix>.attn.wq", ...
  TransformerLayer(Parameters& params, const std::string& prefix, const ModelConfig& config);
  // x [n, d] in place: the layer's input becomes its output.
  void forward(float* x, const SequenceLayout& layout, Saved& saved);
  // dx [n, d] in place: d(loss)/d(output) becomes d(loss)/d(input).
  void backward(float* dx, const SequenceLayout& layout, const Saved& saved);

  RmsNorm& attn_norm() { return attn_norm_; }
  Attention& attention() { return attention_; }
  RmsNorm& mlp_norm() { return mlp_norm_; }
  Mlp& mlp() { return mlp_; }

 private:
  int d_;
  bool bf16_;
  RmsNorm attn_norm_;
  Attention attention_;
  RmsNorm mlp_norm_;
  Mlp mlp_;
  std::vector<float> dxn_;
};

}  // namespace paralab::model
