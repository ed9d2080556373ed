// tensor.hpp: the buffers layers pass each other. All are plain row-major
// arrays; these helpers only say whether a GEMM operand is FP32 or BF16.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "core/bf16.hpp"
#include "kernels/gemm.hpp"

namespace paralab::model {

// Whether an elementwise loop over `work` elements should start OpenMP
// threads: below ~64k elements a parallel region costs more than it saves,
// and far more when another process holds a core.
inline bool worth_threads(size_t work) {
  return work >= (size_t{1} << 16);
}

// A GEMM operand: exactly one of the pointers is set.
struct Operand {
  const float* f32 = nullptr;
  const bf16* b16 = nullptr;
  bool is_bf16() const { return b16 != nullptr; }
};

// C (+)= op(A) op(B) through kernels::cpu::gemm; A and B must be of the
// same type (FP32 x FP32 via SGEMM, BF16 x BF16 with FP32 accumulation).
void matmul(const kernels::GemmShape& shape, Operand a, Operand b, float* c);

// An activation saved for backward that is also a GEMM input. It is written
// in FP32 (fill data()), then sealed: under the BF16 policies sealing rounds
// it to BF16 (nearest even), keeps the BF16 copy as the GEMM operand and
// writes the rounded values back to the FP32 buffer, so FP32 consumers (the
// attention backward) see exactly what the GEMMs saw.
class Activation {
 public:
  float* reset(size_t n);  // resizes; the FP32 buffer to fill
  void seal(bool round_to_bf16);
  float* data() { return f32_.data(); }
  const float* data() const { return f32_.data(); }
  size_t size() const { return f32_.size(); }
  Operand operand() const;

 private:
  std::vector<float> f32_;
  std::vector<bf16> b16_;
  bool bf16_ = false;
};

// x as a GEMM operand: itself, or rounded to BF16 into `scratch`.
Operand as_operand(std::span<const float> x, bool use_bf16, std::vector<bf16>& scratch);

}  // namespace paralab::model
