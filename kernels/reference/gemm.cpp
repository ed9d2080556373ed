// The reference GEMM: plain loops in double.
#include <stdexcept>
#include <string>

#include "kernels/gemm.hpp"

namespace paralab::kernels {

void validate(const GemmShape& shape) {
  const GemmShape s = resolved(shape);
  if (s.M < 0 || s.N < 0 || s.K < 0) throw std::invalid_argument("gemm: negative size");
  const int a_cols = s.trans_a == Trans::no ? s.K : s.M;
  const int b_cols = s.trans_b == Trans::no ? s.N : s.K;
  if (s.lda < a_cols || s.ldb < b_cols || s.ldc < s.N)
    throw std::invalid_argument("gemm: a leading dimension is smaller than its row");
}

GemmShape resolved(const GemmShape& shape) {
  GemmShape s = shape;
  if (s.lda == 0) s.lda = s.trans_a == Trans::no ? s.K : s.M;
  if (s.ldb == 0) s.ldb = s.trans_b == Trans::no ? s.N : s.K;
  if (s.ldc == 0) s.ldc = s.N;
  return s;
}

namespace reference {

namespace {

double value(const float* p, size_t i) {
  return p[i];
}
double value(const bf16* p, size_t i) {
  return bf16_to_float(p[i]);
}

template <class T>
void gemm_loops(const GemmShape& shape, const T* a, const T* b, float* c) {
  validate(shape);
  const GemmShape s = resolved(shape);
  for (int i = 0; i < s.M; ++i) {
    for (int j = 0; j < s.N; ++j) {
      double acc = 0;
      for (int p = 0; p < s.K; ++p) {
        const size_t ai = s.trans_a == Trans::no ? static_cast<size_t>(i) * s.lda + p
                                                 : static_cast<size_t>(p) * s.lda + i;
        const size_t bi = s.trans_b == Trans::no ? static_cast<size_t>(p) * s.ldb + j
                                                 : static_cast<size_t>(j) * s.ldb + p;
        acc += value(a, ai) * value(b, bi);
      }
      float& out = c[static_cast<size_t>(i) * s.ldc + j];
      // beta = 0 ignores C entirely (it may hold NaN), as BLAS does.
      out = static_cast<float>(s.alpha * acc + (s.beta == 0 ? 0.0 : s.beta * double(out)));
    }
  }
}

}  // namespace

void gemm(const GemmShape& shape, const float* a, const float* b, float* c) {
  gemm_loops(shape, a, b, c);
}
void gemm(const GemmShape& shape, const bf16* a, const bf16* b, float* c) {
  gemm_loops(shape, a, b, c);
}

}  // namespace reference
}  // namespace paralab::kernels
