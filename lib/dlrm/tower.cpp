// The dense tower of DLRM; see tower.hpp.
#include "dlrm/tower.hpp"

#include <algorithm>

#include "dlrm/model.hpp"

namespace paralab::dlrm {

DenseTower::DenseTower(const DlrmConfig& config, uint64_t seed)
    : bottom(config.dense_features, config.bottom_layers, /*relu_last=*/true, seed, kBottomTensor),
      top(config.interaction_width(), config.top_layers, /*relu_last=*/false, seed, kTopTensor),
      features_(config.features()),
      dim_(config.embedding_dim),
      interaction_width_(config.interaction_width()),
      row_stride_(static_cast<size_t>(config.features()) * config.embedding_dim) {}

float* DenseTower::begin_forward(const float* dense, int n) {
  const float* x = bottom.forward(dense, n, bottom_saved_);
  t_.resize(static_cast<size_t>(n) * row_stride_);
  for (int b = 0; b < n; ++b)
    std::copy(x + static_cast<size_t>(b) * dim_, x + static_cast<size_t>(b + 1) * dim_,
              t_.data() + b * row_stride_);
  return t_.data();
}

std::span<const float> DenseTower::finish_forward(int n) {
  r_.resize(static_cast<size_t>(n) * interaction_width_);
  interaction_forward(t_.data(), n, features_, dim_, r_.data());
  const float* z = top.forward(r_.data(), n, top_saved_);
  logits_.assign(z, z + n);
  return logits_;
}

double DenseTower::backward(const float* dense, const float* labels, int n) {
  dlogits_.resize(static_cast<size_t>(n));
  const double loss = bce_with_logits(logits_.data(), labels, n, dlogits_.data());
  bottom.zero_gradients();
  top.zero_gradients();
  dr_.resize(r_.size());
  top.backward(r_.data(), top_saved_, dlogits_.data(), dr_.data());
  dt_.resize(t_.size());
  interaction_backward(t_.data(), dr_.data(), n, features_, dim_, dt_.data());
  dx_.resize(static_cast<size_t>(n) * dim_);
  for (int b = 0; b < n; ++b)
    std::copy(dt_.data() + b * row_stride_, dt_.data() + b * row_stride_ + dim_,
              dx_.data() + static_cast<size_t>(b) * dim_);
  bottom.backward(dense, bottom_saved_, dx_.data(), nullptr);
  return loss;
}

}  // namespace paralab::dlrm
