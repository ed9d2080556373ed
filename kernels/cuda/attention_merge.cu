// attention_merge.cu: the in-place LSE-weighted merge of two partial
// attention results over disjoint key sets (a ring step's contribution):
//   lse = log(exp(lse_a) + exp(lse_b)),  o = (exp(lse_a) o_a + exp(lse_b) o_b) / exp(lse)
// computed against the larger LSE so nothing overflows. A part with LSE = -inf
// contributes nothing (its O is not read, so garbage there cannot make a NaN);
// a row with both -inf stays O = 0, LSE = -inf.
#include <cmath>
#include <stdexcept>

#include "kernels/attention.hpp"
#include "kernels/cuda/common.cuh"

namespace paralab::kernels::cuda {

namespace {

// One warp per row (grid-stride over rows), lanes over the D columns.
__global__ void merge_into_kernel(size_t rows, int D, float* o_acc, float* lse_acc,
                                  const float* o_part, const float* lse_part) {
  const int lane = threadIdx.x % 32;
  const size_t warps = static_cast<size_t>(gridDim.x) * blockDim.x / 32;
  for (size_t r = (static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32; r < rows;
       r += warps) {
    const float la = lse_acc[r], lb = lse_part[r];
    __syncwarp();  // every lane has read lse_acc[r] before lane 0 overwrites it
    const float peak = fmaxf(la, lb);
    float* out = o_acc + r * D;
    const float* part = o_part + r * D;
    if (peak == -INFINITY) {
      for (int d = lane; d < D; d += 32) out[d] = 0;
      if (lane == 0) lse_acc[r] = -INFINITY;
      continue;
    }
    const float wa = la == -INFINITY ? 0.0f : expf(la - peak);
    const float wb = lb == -INFINITY ? 0.0f : expf(lb - peak);
    const float total = wa + wb;  // >= 1: the larger part has weight 1
    const float ca = wa / total, cb = wb / total;
    for (int d = lane; d < D; d += 32) {
      float value = 0;
      if (la != -INFINITY) value = ca * out[d];
      if (lb != -INFINITY) value = fmaf(cb, part[d], value);
      out[d] = value;
    }
    if (lane == 0) lse_acc[r] = peak + logf(total);
  }
}

}  // namespace

void attention_merge_into(size_t rows, int D, float* o_acc, float* lse_acc, const float* o_part,
                          const float* lse_part, void* stream) {
  if (D < 1) throw std::invalid_argument("attention_merge_into: D must be positive");
  if (rows == 0) return;
  constexpr unsigned kThreads = 256;
  const unsigned blocks = detail::grid_blocks(rows * 32, kThreads);
  merge_into_kernel<<<blocks, kThreads, 0, detail::to_stream(stream)>>>(rows, D, o_acc, lse_acc,
                                                                        o_part, lse_part);
  PARALAB_CUDA_CHECK_LAUNCH();
}

}  // namespace paralab::kernels::cuda
