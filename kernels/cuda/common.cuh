// common.cuh: what the CUDA kernels of kernels/cuda share (private to that
// folder): stream and launch helpers, the stream-ordered temporary device
// array, and the attention mask as key intervals on the device.
#pragma once

#include <cuda_runtime.h>

#include <climits>
#include <cstddef>
#include <cstdint>
#include <span>

#include "core/cuda/check.cuh"
#include "kernels/attention.hpp"

namespace paralab::kernels::cuda::detail {

inline cudaStream_t to_stream(void* stream) {
  return static_cast<cudaStream_t>(stream);
}

// A kernel launch reports bad configurations only through cudaGetLastError.
#define PARALAB_CUDA_CHECK_LAUNCH() PARALAB_CUDA_CHECK(cudaGetLastError())

inline bool aligned_to(const void* pointer, size_t bytes) {
  return reinterpret_cast<uintptr_t>(pointer) % bytes == 0;
}

// Blocks for a grid-stride loop over `work` items: enough to fill the GPU,
// never more than the work needs.
inline unsigned grid_blocks(size_t work, unsigned threads) {
  constexpr size_t kMaxBlocks = 16384;
  const size_t blocks = (work + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > kMaxBlocks ? kMaxBlocks : blocks));
}

// Sets a kernel's dynamic shared memory limit when it needs more than the
// default 48 KiB (H100: up to 227 KiB per block).
template <class Kernel>
void allow_shared_memory(Kernel kernel, size_t bytes) {
  if (bytes > 48 * 1024)
    PARALAB_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            static_cast<int>(bytes)));
}

// A device copy of a small host array, allocated, filled and freed in the
// order of `stream`, so kernels queued between construction and destruction
// may read it. The host array may go away once the constructor returns (the
// copy from pageable memory is staged before cudaMemcpyAsync returns).
template <class T>
class StreamArray {
 public:
  StreamArray(std::span<const T> host, cudaStream_t stream) : stream_(stream) {
    if (host.empty()) return;
    PARALAB_CUDA_CHECK(
        cudaMallocAsync(reinterpret_cast<void**>(&data_), host.size_bytes(), stream));
    const cudaError_t copied =
        cudaMemcpyAsync(data_, host.data(), host.size_bytes(), cudaMemcpyHostToDevice, stream);
    if (copied != cudaSuccess) cudaFreeAsync(data_, stream);
    PARALAB_CUDA_CHECK(copied);
  }
  // Uninitialised device scratch of `count` elements.
  StreamArray(size_t count, cudaStream_t stream) : stream_(stream) {
    if (count == 0) return;
    PARALAB_CUDA_CHECK(
        cudaMallocAsync(reinterpret_cast<void**>(&data_), count * sizeof(T), stream));
  }
  ~StreamArray() {
    if (data_ != nullptr) cudaFreeAsync(data_, stream_);
  }
  StreamArray(const StreamArray&) = delete;
  StreamArray& operator=(const StreamArray&) = delete;
  T* get() const { return data_; }

 private:
  cudaStream_t stream_;
  T* data_ = nullptr;
};

// The attention mask as the kernels see it. For every mask kind the keys a
// query sees form one interval of key indices (attention.hpp); the kernels
// work with that interval [lo, hi) per query row.
struct MaskParams {
  int64_t q_offset = 0;
  int64_t k_offset = 0;
  const int64_t* doc_starts = nullptr;  // device memory, num_docs entries
  int num_docs = 0;
  bool causal = false;
};

inline MaskParams make_mask(const AttentionMask& mask, const int64_t* device_doc_starts) {
  MaskParams m;
  m.q_offset = mask.q_offset;
  m.k_offset = mask.k_offset;
  m.doc_starts = device_doc_starts;
  m.num_docs = static_cast<int>(mask.doc_starts.size());
  m.causal = mask.causal;
  return m;
}

// The keys query row `row` sees: [lo, hi) within [0, S); lo == hi when none.
// Same definition as visible() in attention_common.cpp: causal allows key
// positions <= the query position; documents allow the positions from the
// last start <= the query position up to (excluding) the next start.
__device__ inline int64_t min64(int64_t a, int64_t b) {
  return a < b ? a : b;
}
__device__ inline int64_t max64(int64_t a, int64_t b) {
  return a > b ? a : b;
}

__device__ inline void visible_keys(const MaskParams& m, int64_t row, int S, int& lo, int& hi) {
  const int64_t position = m.q_offset + row;
  int64_t first = 0, last = S;  // [first, last) in key indices
  if (m.causal) last = min64(last, position - m.k_offset + 1);
  if (m.num_docs > 0) {
    // upper_bound: the number of starts <= position is the document's index.
    int begin = 0, end = m.num_docs;
    while (begin < end) {
      const int mid = (begin + end) / 2;
      if (m.doc_starts[mid] <= position)
        begin = mid + 1;
      else
        end = mid;
    }
    if (begin > 0) first = max64(first, m.doc_starts[begin - 1] - m.k_offset);
    if (begin < m.num_docs) last = min64(last, m.doc_starts[begin] - m.k_offset);
  }
  first = min64(max64(first, 0), S);
  last = max64(min64(last, S), first);
  lo = static_cast<int>(first);
  hi = static_cast<int>(last);
}

// Summary of the key intervals of a tile of query rows (the valid rows only):
// the union [key_lo, key_hi) bounds the key tiles worth loading, and keys in
// [all_lo, all_hi) are visible to every row, so tiles inside need no mask.
struct TileRanges {
  int key_lo = INT_MAX, key_hi = INT_MIN;
  int all_lo = INT_MIN, all_hi = INT_MAX;
  __device__ bool any() const { return key_lo < key_hi; }
  // Whether every row sees every key of [begin, end).
  __device__ bool unmasked(int begin, int end) const { return begin >= all_lo && end <= all_hi; }
};

__device__ inline TileRanges tile_ranges(const int* row_lo, const int* row_hi, int rows) {
  TileRanges r;
  for (int i = 0; i < rows; ++i) {
    const int lo = row_lo[i], hi = row_hi[i];
    r.all_lo = max(r.all_lo, lo);
    r.all_hi = min(r.all_hi, hi);
    if (lo < hi) {
      r.key_lo = min(r.key_lo, lo);
      r.key_hi = max(r.key_hi, hi);
    }
  }
  return r;
}

// Sum over the 32 lanes; every lane gets the same bits (each butterfly step
// adds the same two partials on both partners).
__device__ inline float warp_sum(float x) {
  for (int offset = 16; offset > 0; offset /= 2) x += __shfl_xor_sync(0xffffffffu, x, offset);
  return x;
}

// Copies rows [0, valid_rows) of `source` (row stride `stride`) into the
// shared tile [kTileRows][D + 1] and zeros the rows past them; the +1 column
// keeps threads that read down a column on different banks.
template <int kTileRows, int D, int kThreads>
__device__ inline void load_tile_f32(float* target, const float* source, size_t stride,
                                     int valid_rows) {
  for (int i = threadIdx.x; i < kTileRows * D; i += kThreads) {
    const int row = i / D, col = i % D;
    target[row * (D + 1) + col] = row < valid_rows ? source[row * stride + col] : 0.0f;
  }
}

}  // namespace paralab::kernels::cuda::detail
