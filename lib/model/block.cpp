#include "model/block.hpp"

namespace paralab::model {

namespace {

// Keeps the block's input x and writes its normalised form into xn (sealed:
// BF16-rounded under the BF16 policies, being the input of the block's GEMMs).
void normalise(const RmsNorm& norm, const float* x, size_t count, int n, bool use_bf16,
               std::vector<float>& x_saved, std::vector<float>& rstd, Activation& xn) {
  x_saved.assign(x, x + count);
  rstd.resize(n);
  norm.forward(x, n, xn.reset(count), rstd.data());
  xn.seal(use_bf16);
}

}  // namespace

TransformerLayer::TransformerLayer(Parameters& params, const std::string& prefix,
                                   const ModelConfig& config)
    : d_(config.d_model),
      bf16_(computes_in_bf16(params.precision())),
      attn_norm_(params, prefix + ".attn_norm.gain", config.d_model, config.norm_eps),
      attention_(params, prefix + ".attn", config),
      mlp_norm_(params, prefix + ".mlp_norm.gain", config.d_model, config.norm_eps),
      mlp_(params, prefix + ".mlp", config.d_model, config.ffn) {}

void TransformerLayer::forward(float* x, const SequenceLayout& layout, Saved& s) {
  const int n = layout.tokens();
  const size_t count = static_cast<size_t>(n) * d_;
  normalise(attn_norm_, x, count, n, bf16_, s.x_attn, s.rstd_attn, s.xn_attn);
  attention_.forward(s.xn_attn.operand(), layout, s.attn, x, /*accumulate=*/true);
  normalise(mlp_norm_, x, count, n, bf16_, s.x_mlp, s.rstd_mlp, s.xn_mlp);
  mlp_.forward(s.xn_mlp.operand(), n, s.mlp, x, /*accumulate=*/true);
}

// Each block is x + f(norm(x)), so d/dx = dy + norm'(f'(dy)): the residual
// gradient passes through and each block adds its branch to it.
void TransformerLayer::backward(float* dx, const SequenceLayout& layout, const Saved& s) {
  const int n = layout.tokens();
  dxn_.resize(static_cast<size_t>(n) * d_);
  mlp_.backward(s.xn_mlp.operand(), s.mlp, dx, n, dxn_.data(), false);
  mlp_norm_.backward(s.x_mlp.data(), s.rstd_mlp.data(), dxn_.data(), n, dx, true);
  attention_.backward(s.xn_attn.operand(), layout, s.attn, dx, dxn_.data(), false);
  attn_norm_.backward(s.x_attn.data(), s.rstd_attn.data(), dxn_.data(), n, dx, true);
}

}  // namespace paralab::model
