#include "model/model.hpp"

#include <cmath>
#include <string>

namespace paralab::model {

namespace {

ModelConfig validated(const ModelConfig& config) {
  validate(config);
  return config;
}

std::vector<std::unique_ptr<TransformerLayer>> make_layers(Parameters& params,
                                                           const ModelConfig& config) {
  std::vector<std::unique_ptr<TransformerLayer>> layers;
  for (int l = 0; l < config.layers; ++l) {
    layers.push_back(
        std::make_unique<TransformerLayer>(params, "layers." + std::to_string(l), config));
  }
  return layers;
}

}  // namespace

double initial_std(const ModelConfig& config, std::string_view name) {
  const bool residual = name.ends_with(".wo") || name.ends_with(".w_down");
  return residual ? config.init_std / std::sqrt(2.0 * config.layers) : config.init_std;
}

Model::Model(const ModelConfig& config, Precision precision, uint64_t seed)
    : config_(validated(config)),
      precision_(precision),
      params_(precision),
      embedding_(params_, "embed.weight", config_.vocab, config_.d_model),
      layers_(make_layers(params_, config_)),
      final_norm_(params_, "final_norm.gain", config_.d_model, config_.norm_eps),
      lm_head_(params_, "lm_head.weight", config_.d_model, config_.vocab) {
  saved_.resize(config_.layers);
  initialise(seed);
}

// Matrices N(0, std^2); the projections that write into the residual stream
// (Wo, Wd) scaled by 1/sqrt(2 layers) so the stream's variance does not grow
// with depth; gains stay 1 (set by RmsNorm).
void Model::initialise(uint64_t seed) {
  for (Parameter& p : params_) {
    if (!p.decays()) continue;  // gains
    params_.init_normal(p, seed, initial_std(config_, p.name()));
  }
}

double Model::forward_backward(const Batch& batch, double normalizer) {
  return run(batch, true, normalizer).mean();
}

double Model::evaluate(const Batch& batch) {
  return run(batch, false, 0).mean();
}

LossSum Model::run(const Batch& batch, bool gradient, double normalizer) {
  validate(batch, config_);
  const int n = static_cast<int>(batch.tokens_count());
  const int d = config_.d_model;
  const size_t count = static_cast<size_t>(n) * d;
  const bool use_bf16 = computes_in_bf16(precision_);
  positions_ = document_positions(batch);
  const SequenceLayout layout{batch.batch, batch.seq, batch.doc_starts, positions_};

  // Forward.
  x_.resize(count);
  embedding_.forward(batch.tokens, x_.data());
  for (int l = 0; l < config_.layers; ++l) layers_[l]->forward(x_.data(), layout, saved_[l]);
  x_final_.assign(x_.begin(), x_.end());
  rstd_final_.resize(n);
  final_norm_.forward(x_final_.data(), n, xn_final_.reset(count), rstd_final_.data());
  xn_final_.seal(use_bf16);
  logits_.resize(static_cast<size_t>(n) * config_.vocab);
  lm_head_.forward(xn_final_.operand(), n, logits_.data());

  int64_t counted = 0;
  for (int32_t t : batch.targets) counted += t >= 0;
  if (normalizer <= 0) normalizer = static_cast<double>(counted);
  const double scale = counted > 0 ? 1.0 / normalizer : 0.0;
  const LossSum loss = cross_entropy(logits_.data(), batch.targets, config_.vocab, gradient, scale);
  if (!gradient) return loss;

  // Backward: logits_ now holds d(loss)/d(logits); x_ becomes the gradient.
  dxn_.resize(count);
  lm_head_.backward(xn_final_.operand(), as_operand(logits_, use_bf16, scratch_), n, dxn_.data());
  final_norm_.backward(x_final_.data(), rstd_final_.data(), dxn_.data(), n, x_.data(), false);
  for (int l = config_.layers - 1; l >= 0; --l) layers_[l]->backward(x_.data(), layout, saved_[l]);
  embedding_.backward(batch.tokens, x_.data());
  return loss;
}

double Model::train_flops(const Batch& batch) const {
  return model::train_flops(config_, batch);
}

double train_flops(const ModelConfig& c, const Batch& batch) {
  const double hd = static_cast<double>(c.head_dim());
  const double per_layer = c.d_model * hd * (2.0 * c.heads + 2.0 * c.kv_heads) +
                           3.0 * c.d_model * static_cast<double>(c.ffn);
  const double matmul_params = c.layers * per_layer + static_cast<double>(c.d_model) * c.vocab;
  const double gemm = 3.0 * 2.0 * matmul_params * static_cast<double>(batch.tokens_count());
  double attention = 0;
  for (int b = 0; b < batch.batch; ++b) {
    kernels::AttentionArgs a;
    a.shape = {batch.seq, batch.seq, c.heads, c.kv_heads, c.head_dim()};
    a.mask.causal = true;
    if (!batch.doc_starts.empty()) a.mask.doc_starts = batch.doc_starts[b];
    attention += kernels::attention_forward_flops(a);
  }
  return gemm + 3.5 * c.layers * attention;
}

}  // namespace paralab::model
