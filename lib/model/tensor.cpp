#include "model/tensor.hpp"

#include <stdexcept>

#include "kernels/bf16.hpp"

namespace paralab::model {

void matmul(const kernels::GemmShape& shape, Operand a, Operand b, float* c) {
  if (a.is_bf16() != b.is_bf16()) throw std::logic_error("matmul: mixed FP32 and BF16 operands");
  if (a.is_bf16()) {
    kernels::cpu::gemm(shape, a.b16, b.b16, c);
  } else {
    kernels::cpu::gemm(shape, a.f32, b.f32, c);
  }
}

float* Activation::reset(size_t n) {
  f32_.resize(n);
  bf16_ = false;
  return f32_.data();
}

void Activation::seal(bool round_to_bf16) {
  bf16_ = round_to_bf16;
  if (!bf16_) return;
  b16_.resize(f32_.size());
  kernels::cpu::convert(f32_.data(), b16_.data(), f32_.size(), kernels::Rounding::nearest_even);
  kernels::cpu::convert(b16_.data(), f32_.data(), f32_.size());
}

Operand Activation::operand() const {
  if (bf16_) return {nullptr, b16_.data()};
  return {f32_.data(), nullptr};
}

Operand as_operand(std::span<const float> x, bool use_bf16, std::vector<bf16>& scratch) {
  if (!use_bf16) return {x.data(), nullptr};
  scratch.resize(x.size());
  kernels::cpu::convert(x.data(), scratch.data(), x.size(), kernels::Rounding::nearest_even);
  return {nullptr, scratch.data()};
}

}  // namespace paralab::model
