// gemm.cu: row-major GEMM through cuBLAS (column-major). A row-major matrix
// is the column-major view of its transpose, so C = op(A) op(B) in row major
// is C^T = op(B)^T op(A)^T in column major: swap A and B, swap M and N, keep
// each operand's transpose flag and leading dimension.
//   FP32: cublasSgemm in the default math mode, which never uses TF32
//         (exact FP32 products and sums, like the reference).
//   BF16: cublasGemmEx, BF16 inputs, FP32 output, CUBLAS_COMPUTE_32F (tensor
//         cores, FP32 accumulation).
// One cuBLAS handle per device and host thread, created on first use; each
// call sets the handle's stream.
#include <cublas_v2.h>

#include <string>
#include <unordered_map>

#include "kernels/cuda/common.cuh"
#include "kernels/gemm.hpp"

namespace paralab::kernels::cuda {

namespace {

#define PARALAB_CUBLAS_CHECK(call)                                                        \
  do {                                                                                    \
    cublasStatus_t paralab_status_ = (call);                                              \
    if (paralab_status_ != CUBLAS_STATUS_SUCCESS)                                         \
      throw ::paralab::RuntimeError(std::string(#call) + " failed at " + __FILE__ + ":" + \
                                    std::to_string(__LINE__) + ": " +                     \
                                    cublasGetStatusString(paralab_status_));              \
  } while (0)

// The calling thread's handles, by device; destroyed when the thread ends.
class Handles {
 public:
  ~Handles() {
    for (auto& [device, handle] : handles_) cublasDestroy(handle);
  }
  cublasHandle_t get() {
    int device = 0;
    PARALAB_CUDA_CHECK(cudaGetDevice(&device));
    auto found = handles_.find(device);
    if (found != handles_.end()) return found->second;
    cublasHandle_t handle = nullptr;
    PARALAB_CUBLAS_CHECK(cublasCreate(&handle));
    handles_.emplace(device, handle);
    // Default math: tensor cores for BF16, never TF32 for FP32.
    PARALAB_CUBLAS_CHECK(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH));
    return handle;
  }

 private:
  std::unordered_map<int, cublasHandle_t> handles_;
};

cublasHandle_t handle_for(cudaStream_t stream) {
  thread_local Handles handles;
  cublasHandle_t handle = handles.get();
  PARALAB_CUBLAS_CHECK(cublasSetStream(handle, stream));
  return handle;
}

cublasOperation_t op(Trans t) {
  return t == Trans::no ? CUBLAS_OP_N : CUBLAS_OP_T;
}

// K = 0: op(A) op(B) is the zero matrix, so C = beta C (beta = 0 writes zeros
// without reading C, as BLAS does). cuBLAS would reject the packed leading
// dimension 0 of A or B here.
__global__ void scale_kernel(float* c, int M, int N, int ldc, float beta) {
  const size_t total = static_cast<size_t>(M) * N;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    float& value = c[(i / N) * ldc + i % N];
    value = beta == 0 ? 0.0f : beta * value;
  }
}

// Validates, handles the empty cases; returns false when nothing is left to do.
bool prepare(const GemmShape& shape, GemmShape& s, float* c, cudaStream_t stream) {
  validate(shape);
  s = resolved(shape);
  if (s.M == 0 || s.N == 0) return false;
  if (s.K == 0) {
    constexpr unsigned kThreads = 256;
    scale_kernel<<<detail::grid_blocks(static_cast<size_t>(s.M) * s.N, kThreads), kThreads, 0,
                   stream>>>(c, s.M, s.N, s.ldc, s.beta);
    PARALAB_CUDA_CHECK_LAUNCH();
    return false;
  }
  return true;
}

}  // namespace

void gemm(const GemmShape& shape, const float* a, const float* b, float* c, void* stream_handle) {
  const cudaStream_t stream = detail::to_stream(stream_handle);
  GemmShape s;
  if (!prepare(shape, s, c, stream)) return;
  PARALAB_CUBLAS_CHECK(cublasSgemm(handle_for(stream), op(s.trans_b), op(s.trans_a), s.N, s.M, s.K,
                                   &s.alpha, b, s.ldb, a, s.lda, &s.beta, c, s.ldc));
}

void gemm(const GemmShape& shape, const bf16* a, const bf16* b, float* c, void* stream_handle) {
  const cudaStream_t stream = detail::to_stream(stream_handle);
  GemmShape s;
  if (!prepare(shape, s, c, stream)) return;
  PARALAB_CUBLAS_CHECK(cublasGemmEx(handle_for(stream), op(s.trans_b), op(s.trans_a), s.N, s.M, s.K,
                                    &s.alpha, b, CUDA_R_16BF, s.ldb, a, CUDA_R_16BF, s.lda, &s.beta,
                                    c, CUDA_R_32F, s.ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

}  // namespace paralab::kernels::cuda
