// gemm.hpp: C = alpha * op(A) * op(B) + beta * C for the model layers, row
// major, with op(X) = X or its transpose. FP32 inputs, or BF16 inputs with
// FP32 accumulation and an FP32 C.
//   reference::  plain loops, double accumulation
//   cpu::        OpenBLAS SGEMM for FP32; an AVX512-BF16 (vdpbf16ps) blocked
//                kernel for BF16, with a portable fallback
//   cuda::       cuBLAS (tensor cores for BF16, FP32 accumulation)
// A is M x K after op, B is K x N after op; lda/ldb/ldc are the row strides
// of the matrices as stored (before op).
#pragma once

#include "core/bf16.hpp"

namespace paralab::kernels {

enum class Trans { no, yes };

struct GemmShape {
  Trans trans_a = Trans::no;
  Trans trans_b = Trans::no;
  int M = 0, N = 0, K = 0;
  int lda = 0, ldb = 0, ldc = 0;  // 0: packed (K or M for A, N or K for B, N for C)
  float alpha = 1, beta = 0;
};

// Throws std::invalid_argument for negative sizes or strides too small.
void validate(const GemmShape& shape);
// The leading dimensions with the packed defaults filled in.
GemmShape resolved(const GemmShape& shape);
inline double gemm_flops(const GemmShape& s) {
  return 2.0 * s.M * s.N * s.K;
}

namespace reference {
void gemm(const GemmShape& shape, const float* a, const float* b, float* c);
void gemm(const GemmShape& shape, const bf16* a, const bf16* b, float* c);
}  // namespace reference

namespace cpu {
void gemm(const GemmShape& shape, const float* a, const float* b, float* c);
void gemm(const GemmShape& shape, const bf16* a, const bf16* b, float* c);
}  // namespace cpu

#ifdef PARALAB_HAVE_CUDA
namespace cuda {
// Device pointers; queued on `stream` (cudaStream_t) through a cuBLAS handle
// per device and thread.
void gemm(const GemmShape& shape, const float* a, const float* b, float* c, void* stream = nullptr);
void gemm(const GemmShape& shape, const bf16* a, const bf16* b, float* c, void* stream = nullptr);
}  // namespace cuda
#endif

}  // namespace paralab::kernels
