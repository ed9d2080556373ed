#include "model/optimizer.hpp"

#include <cmath>
#include <numbers>
#include <stdexcept>

#include "core/errors.hpp"
#include "kernels/bf16.hpp"
#include "model/tensor.hpp"

namespace paralab::model {

namespace {

using kernels::Rounding;

// Counts nonzero updates and, among them, weights the step left unchanged.
// old and now are FP32 views of the stored weight before and after.
UpdateStats count_lost(std::span<const float> u, const float* old, const bf16* now) {
  size_t nonzero = 0, lost = 0;
  const int64_t n = static_cast<int64_t>(u.size());
#pragma omp parallel for schedule(static) reduction(+ : nonzero, lost) if (worth_threads(u.size()))
  for (int64_t i = 0; i < n; ++i) {
    if (u[i] == 0.0f) continue;
    ++nonzero;
    lost += bf16_to_float(now[i]) == old[i];
  }
  return {u.size(), nonzero, lost};
}

UpdateStats update_master(Parameter& p, std::span<const float> u) {
  float* w = p.values().data();
  size_t nonzero = 0, lost = 0;
  const int64_t n = static_cast<int64_t>(u.size());
#pragma omp parallel for schedule(static) reduction(+ : nonzero, lost) if (worth_threads(u.size()))
  for (int64_t i = 0; i < n; ++i) {
    if (u[i] == 0.0f) continue;
    const float old = w[i];
    w[i] = old + u[i];
    ++nonzero;
    lost += w[i] == old;
  }
  return {u.size(), nonzero, lost};
}

// w = round(w + u) for the RNE and SR policies; p.values() still holds the
// old weights (widened) until sync.
void update_rounded(Parameter& p, std::span<const float> u, Rounding rounding, uint64_t seed,
                    std::vector<float>& sum) {
  const float* w = p.values().data();
  const int64_t n = static_cast<int64_t>(u.size());
  sum.resize(u.size());
#pragma omp parallel for schedule(static) if (worth_threads(u.size()))
  for (int64_t i = 0; i < n; ++i) sum[i] = w[i] + u[i];
  kernels::cpu::convert(sum.data(), p.bf16_values().data(), u.size(), rounding, seed, p.offset());
}

}  // namespace

UpdateStats apply_update(Parameters& params, Parameter& p, std::span<const float> u,
                         uint64_t sr_seed, std::vector<float>& scratch) {
  if (u.size() != p.size()) throw std::invalid_argument("apply_update: size mismatch");
  const Precision policy = params.precision();
  if (!stores_bf16_weights(policy)) {
    const UpdateStats stats = update_master(p, u);
    params.sync(p);
    return stats;
  }
  if (policy == Precision::bf16_pure_kahan) {
    kernels::cpu::kahan_add(p.bf16_values().data(), p.kahan().data(), u.data(), u.size());
  } else {
    const bool sr = policy == Precision::bf16_pure_sr;
    update_rounded(p, u, sr ? Rounding::stochastic : Rounding::nearest_even, sr_seed, scratch);
  }
  const UpdateStats stats = count_lost(u, p.values().data(), p.bf16_values().data());
  params.sync(p);
  return stats;
}

UpdateStats Optimizer::step(Parameters& params, float lr) {
  ++steps_;
  prepare(params.numel());
  // A fresh 64-bit SR seed per step, from the optimizer's seed.
  const uint64_t sr_seed = (uint64_t{kernels::stochastic_bits(seed_, 2 * steps_)} << 32) |
                           kernels::stochastic_bits(seed_, 2 * steps_ + 1);
  UpdateStats stats;
  for (Parameter& p : params) {
    update_.resize(p.size());
    compute_update(p, lr, steps_, update_);
    stats += apply_update(params, p, update_, sr_seed, scratch_);
  }
  return stats;
}

// --- AdamW ----------------------------------------------------------------------

AdamW::AdamW(const AdamWConfig& config, uint64_t seed) : Optimizer(seed), config_(config) {}

void AdamW::prepare(size_t numel) {
  if (m_.size() == numel) return;
  if (!m_.empty()) throw std::logic_error("AdamW: the parameter registry changed size");
  m_.assign(numel, 0.0f);
  v_.assign(numel, 0.0f);
}

std::vector<std::pair<std::string, std::span<float>>> AdamW::state() {
  return {{"adamw.m", m_}, {"adamw.v", v_}};
}

void AdamW::compute_update(const Parameter& p, float lr, int64_t t, std::span<float> u) {
  const float b1 = config_.beta1, b2 = config_.beta2, eps = config_.eps;
  const float bc1 = static_cast<float>(1.0 - std::pow(double{b1}, static_cast<double>(t)));
  const float bc2 = static_cast<float>(1.0 - std::pow(double{b2}, static_cast<double>(t)));
  const float decay = p.decays() ? config_.weight_decay : 0.0f;
  const float* g = p.grad().data();
  const float* w = p.values().data();
  float* m = m_.data() + p.offset();
  float* v = v_.data() + p.offset();
  const int64_t n = static_cast<int64_t>(p.size());
#pragma omp parallel for schedule(static) if (worth_threads(p.size()))
  for (int64_t i = 0; i < n; ++i) {
    m[i] = b1 * m[i] + (1.0f - b1) * g[i];
    v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
    const float m_hat = m[i] / bc1, v_hat = v[i] / bc2;
    u[i] = -lr * (m_hat / (std::sqrt(v_hat) + eps) + decay * w[i]);
  }
}

// --- SGD ------------------------------------------------------------------------

Sgd::Sgd(const SgdConfig& config, uint64_t seed) : Optimizer(seed), config_(config) {}

void Sgd::prepare(size_t numel) {
  if (momentum_.size() == numel) return;
  if (!momentum_.empty()) throw std::logic_error("Sgd: the parameter registry changed size");
  momentum_.assign(numel, 0.0f);
}

std::vector<std::pair<std::string, std::span<float>>> Sgd::state() {
  return {{"sgd.momentum", momentum_}};
}

void Sgd::compute_update(const Parameter& p, float lr, int64_t, std::span<float> u) {
  const float mu = config_.momentum;
  const float decay = p.decays() ? config_.weight_decay : 0.0f;
  const float* g = p.grad().data();
  const float* w = p.values().data();
  float* b = momentum_.data() + p.offset();
  const int64_t n = static_cast<int64_t>(p.size());
#pragma omp parallel for schedule(static) if (worth_threads(p.size()))
  for (int64_t i = 0; i < n; ++i) {
    b[i] = mu * b[i] + g[i];
    u[i] = -lr * (b[i] + decay * w[i]);
  }
}

// --- clipping and schedule --------------------------------------------------------

double grad_norm(const Parameters& params) {
  double sum = 0;
  for (float g : params.grads()) sum += double{g} * g;
  return std::sqrt(sum);
}

double clip_grad_norm(Parameters& params, double max_norm) {
  const double norm = grad_norm(params);
  if (max_norm <= 0 || !(norm > max_norm)) return norm;
  const float scale = static_cast<float>(max_norm / norm);
  for (float& g : params.grads()) g *= scale;
  return norm;
}

float LrSchedule::at(int64_t step) const {
  if (step < warmup) return peak * static_cast<float>(step + 1) / static_cast<float>(warmup);
  if (step >= total) return floor;
  const double progress = static_cast<double>(step - warmup) / static_cast<double>(total - warmup);
  return static_cast<float>(floor +
                            (peak - floor) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress)));
}

void validate(const LrSchedule& s) {
  if (!(s.peak >= 0)) throw UsageError("lr schedule: the peak learning rate must not be negative");
  if (!(s.floor >= 0 && s.floor <= s.peak)) {
    throw UsageError("lr schedule: the floor must lie between 0 and the peak learning rate");
  }
  if (s.warmup < 0) throw UsageError("lr schedule: warmup steps must not be negative");
  if (s.total < s.warmup) {
    throw UsageError("lr schedule: total steps (" + std::to_string(s.total) +
                     ") must be at least the warmup steps (" + std::to_string(s.warmup) + ")");
  }
}

}  // namespace paralab::model
