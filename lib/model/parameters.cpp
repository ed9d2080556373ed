#include "model/parameters.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>

#include "kernels/bf16.hpp"

namespace paralab::model {

namespace {

size_t product(const std::vector<int>& shape) {
  size_t n = 1;
  for (int d : shape) {
    if (d < 0) throw std::invalid_argument("negative parameter dimension");
    n *= static_cast<size_t>(d);
  }
  return n;
}

// FNV-1a: a stable hash of the tensor name, so initial values do not depend
// on the order in which layers register their tensors.
uint64_t name_hash(std::string_view name) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : name) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
  return h;
}

// One N(0, 1) sample per index by Box-Muller; uniform u1 in (0, 1].
double normal_sample(uint64_t stream, uint64_t index) {
  const double u1 = (kernels::stochastic_bits(stream, 2 * index) + 1.0) / 4294967296.0;
  const double u2 = kernels::stochastic_bits(stream, 2 * index + 1) / 4294967296.0;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

}  // namespace

Parameter::Parameter(Parameters* owner, std::string name, std::vector<int> shape, size_t offset)
    : owner_(owner),
      name_(std::move(name)),
      shape_(std::move(shape)),
      size_(product(shape_)),
      offset_(offset) {}

std::span<float> Parameter::values() {
  return std::span(owner_->values_).subspan(offset_, size_);
}
std::span<const float> Parameter::values() const {
  return std::span<const float>(owner_->values_).subspan(offset_, size_);
}
std::span<bf16> Parameter::bf16_values() {
  if (owner_->bf16_.empty()) return {};
  return std::span(owner_->bf16_).subspan(offset_, size_);
}
std::span<const bf16> Parameter::bf16_values() const {
  if (owner_->bf16_.empty()) return {};
  return std::span<const bf16>(owner_->bf16_).subspan(offset_, size_);
}
std::span<float> Parameter::grad() {
  return std::span(owner_->grads_).subspan(offset_, size_);
}
std::span<const float> Parameter::grad() const {
  return std::span<const float>(owner_->grads_).subspan(offset_, size_);
}
std::span<bf16> Parameter::kahan() {
  if (owner_->kahan_.empty()) return {};
  return std::span(owner_->kahan_).subspan(offset_, size_);
}

void Parameter::set(size_t i, float value) {
  const Precision p = owner_->precision_;
  if (stores_bf16_weights(p)) {
    bf16_values()[i] = float_to_bf16_rne(value);
    values()[i] = bf16_to_float(bf16_values()[i]);
  } else {
    values()[i] = value;
    if (computes_in_bf16(p)) bf16_values()[i] = float_to_bf16_rne(value);
  }
}

Parameter& Parameters::add(std::string name, std::vector<int> shape) {
  if (find(name)) throw std::invalid_argument("parameter '" + name + "' registered twice");
  Parameter& p = tensors_.emplace_back(this, std::move(name), std::move(shape), values_.size());
  const size_t n = values_.size() + p.size();
  values_.resize(n);
  grads_.resize(n);
  if (computes_in_bf16(precision_)) bf16_.resize(n);
  if (precision_ == Precision::bf16_pure_kahan) kahan_.resize(n);
  return p;
}

void Parameters::init_normal(Parameter& p, uint64_t seed, double std) {
  const uint64_t stream = seed ^ name_hash(p.name());
  for (size_t i = 0; i < p.size(); ++i)
    p.set(i, static_cast<float>(std * normal_sample(stream, i)));
}

void Parameters::fill(Parameter& p, float value) {
  for (size_t i = 0; i < p.size(); ++i) p.set(i, value);
}

Parameter* Parameters::find(std::string_view name) {
  for (Parameter& p : tensors_) {
    if (p.name() == name) return &p;
  }
  return nullptr;
}

void Parameters::zero_grads() {
  std::fill(grads_.begin(), grads_.end(), 0.0f);
}

void Parameters::sync(Parameter& p) {
  if (stores_bf16_weights(precision_)) {
    kernels::cpu::convert(p.bf16_values().data(), p.values().data(), p.size());
  } else if (computes_in_bf16(precision_)) {
    kernels::cpu::convert(p.values().data(), p.bf16_values().data(), p.size(),
                          kernels::Rounding::nearest_even);
  }
}

void Parameters::sync() {
  for (Parameter& p : tensors_) sync(p);
}

}  // namespace paralab::model
