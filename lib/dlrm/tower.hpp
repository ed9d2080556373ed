// tower.hpp: the dense part of DLRM that the single-rank model and the
// sharded one share: the bottom MLP on dense features, the feature matrix
// T [n, F, d] (slot 0 the bottom MLP's output, slot 1 + t table t's pooled
// embedding, which the caller fills: from local tables or from the
// exchange), the dot interaction, the top MLP and the BCE loss.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "dlrm/layers.hpp"

namespace paralab::dlrm {

struct DlrmConfig;

class DenseTower {
 public:
  DenseTower() = default;
  DenseTower(const DlrmConfig& config, uint64_t seed);

  // The bottom MLP on `dense` [n, dense_features]; returns T [n, F, d] with
  // slot 0 filled. Rows are row_stride() floats apart.
  float* begin_forward(const float* dense, int n);
  // The interaction and the top MLP on T: the n logits.
  std::span<const float> finish_forward(int n);
  // BCE of the last logits against `labels` (summed over the n samples),
  // then, with the MLP gradients zeroed first, the backward of the top MLP,
  // the interaction and the bottom MLP. feature_gradients() then holds dT,
  // laid out as T (slot 1 + t: the gradient of table t's pooled embedding).
  double backward(const float* dense, const float* labels, int n);

  const float* feature_gradients() const { return dt_.data(); }
  std::span<const float> logits() const { return logits_; }
  size_t row_stride() const { return row_stride_; }

  Mlp bottom, top;

 private:
  int features_ = 0, dim_ = 0, interaction_width_ = 0;
  size_t row_stride_ = 0;
  Mlp::Saved bottom_saved_, top_saved_;
  std::vector<float> t_, r_, logits_, dlogits_, dr_, dt_, dx_;
};

}  // namespace paralab::dlrm
