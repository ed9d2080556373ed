// The CPU GEMM. FP32 goes to OpenBLAS's cblas_sgemm. BF16 goes to the
// blocked AVX512-BF16 kernel in gemm_bf16_avx512.cpp on the avx512_bf16 tier,
// and otherwise widens A and B to FP32 (cpu::convert, vectorised on every
// tier) and calls SGEMM (exact: every BF16 value is an FP32 value). Without a
// BF16 dot-product instruction, OpenBLAS's tuned SGEMM on the widened copies
// beats a BF16 kernel that would widen in its inner loop. Both handle the cases BLAS leaves to the
// caller here: empty C, no product (K = 0 or alpha = 0: C = beta * C), and
// beta = 0, which never reads C (it may hold NaN).
#include <cblas.h>

#include <algorithm>
#include <vector>

#include "kernels/bf16.hpp"
#include "kernels/cpu/isa.hpp"
#include "kernels/gemm.hpp"

namespace paralab::kernels::cpu {

#if defined(__x86_64__)
namespace detail {
// Defined in gemm_bf16_avx512.cpp.
void gemm_bf16_avx512(const GemmShape& resolved, const bf16* a, const bf16* b, float* c);
}  // namespace detail
#endif

namespace {

CBLAS_TRANSPOSE cblas_trans(Trans t) {
  return t == Trans::no ? CblasNoTrans : CblasTrans;
}

// C = beta * C with BLAS's convention that beta = 0 overwrites (NaN included).
void scale_c(const GemmShape& s, float* c) {
  for (int i = 0; i < s.M; ++i) {
    float* row = c + static_cast<size_t>(i) * s.ldc;
    if (s.beta == 0) {
      std::fill(row, row + s.N, 0.0f);
    } else if (s.beta != 1) {
      for (int j = 0; j < s.N; ++j) row[j] *= s.beta;
    }
  }
}

// True when there is nothing left to multiply (after scaling C if needed).
// OpenBLAS rejects a packed lda or ldb of 0, which K = 0 gives, so these
// cases must not reach it.
bool handled_without_product(const GemmShape& s, float* c) {
  if (s.M == 0 || s.N == 0) return true;
  if (s.K != 0 && s.alpha != 0) return false;
  scale_c(s, c);
  return true;
}

void sgemm(const GemmShape& s, const float* a, const float* b, float* c) {
  cblas_sgemm(CblasRowMajor, cblas_trans(s.trans_a), cblas_trans(s.trans_b), s.M, s.N, s.K, s.alpha,
              a, s.lda, b, s.ldb, s.beta, c, s.ldc);
}

// The stored rows x ld elements of a matrix, up to the end of its last row.
std::vector<float> widened(const bf16* x, int rows, int cols, int ld) {
  const size_t count = static_cast<size_t>(rows - 1) * ld + cols;
  std::vector<float> wide(count);
  convert(x, wide.data(), count);
  return wide;
}

void gemm_bf16_portable(const GemmShape& s, const bf16* a, const bf16* b, float* c) {
  const bool ta = s.trans_a == Trans::yes, tb = s.trans_b == Trans::yes;
  const std::vector<float> wide_a = widened(a, ta ? s.K : s.M, ta ? s.M : s.K, s.lda);
  const std::vector<float> wide_b = widened(b, tb ? s.N : s.K, tb ? s.K : s.N, s.ldb);
  sgemm(s, wide_a.data(), wide_b.data(), c);
}

}  // namespace

void gemm(const GemmShape& shape, const float* a, const float* b, float* c) {
  validate(shape);
  const GemmShape s = resolved(shape);
  if (handled_without_product(s, c)) return;
  sgemm(s, a, b, c);
}

void gemm(const GemmShape& shape, const bf16* a, const bf16* b, float* c) {
  validate(shape);
  const GemmShape s = resolved(shape);
  if (handled_without_product(s, c)) return;
#if defined(__x86_64__)
  if (isa_enabled(Isa::avx512_bf16)) return detail::gemm_bf16_avx512(s, a, b, c);
#endif
  gemm_bf16_portable(s, a, b, c);
}

}  // namespace paralab::kernels::cpu
