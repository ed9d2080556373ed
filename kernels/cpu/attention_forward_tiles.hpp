// attention_forward_tiles.hpp (internal to kernels/cpu): the tile kernels of the attention
// forward and the operand layout they share with the driver in attention_forward.cpp.
//
// A tile is up to kTileRows rows (query token x head) against one key block of kKeyBlock keys:
// S = Q K^T, the online softmax of each row (running max m in base 2 and sum l), then
// O = alpha O + P V. Two implementations:
//   simd_forward_tiles():    Highway, compiled for every tier (isa.hpp), FP32
//   avx512_forward_tiles():  hand-written AVX-512 (FP32) and AVX512-BF16 (BF16), x86-64 only
#pragma once

#include <array>
#include <cstddef>
#include <type_traits>

#include "core/bf16.hpp"

namespace paralab::kernels::cpu::forward {

constexpr int kKeyBlock = 64;
constexpr int kTileRows = 6;

// K packed block by block and transposed, so that a tile reads the 64 keys of one dimension
// d as contiguous vectors: FP32 kt[d][key]; BF16 interleaves pairs of dimensions
// (kt[d/2][key][2]), the operand layout of vdpbf16ps. Keys past S are zero.
template <class T>
size_t packed_key_index(int d, int key) {
  if constexpr (std::is_same_v<T, bf16>)
    return size_t(d / 2) * 2 * kKeyBlock + key * 2 + d % 2;
  else
    return size_t(d) * kKeyBlock + key;
}

// Scores are raw dot products; the softmax works in base 2 on c * score, c = scale * log2(e),
// with m the running max of c * score and l the running sum of 2^(c * score - m) of each row.
template <class T>
struct TileJob {
  int rows = 0;
  int D = 0;
  // Per row: the visible keys [lo, hi) within the block; keys past S are never visible.
  const int* lo = nullptr;
  const int* hi = nullptr;
  const T* q = nullptr;   // [rows][D]
  const T* kt = nullptr;  // the packed key block
  const T* v = nullptr;   // FP32: row 0 of the block in V; BF16: the packed value block
  size_t v_stride = 0;    // FP32: elements between keys in V
  float c = 0;
  float* m = nullptr;  // [rows]
  float* l = nullptr;  // [rows]
  float* o = nullptr;  // [rows][D], unnormalised
};

template <class T>
using TileKernel = void (*)(const TileJob<T>&);
// Entry r - 1 takes r rows.
template <class T>
using TileKernels = std::array<TileKernel<T>, kTileRows>;

// The Highway tiles of the tier in force (any D).
TileKernels<float> simd_forward_tiles();

#if defined(__x86_64__)
// Hand-written AVX-512 tiles (D a multiple of 16): FP32 needs the avx512 tier, BF16
// avx512_bf16.
TileKernels<float> avx512_forward_tiles_f32();
TileKernels<bf16> avx512_forward_tiles_bf16();
#endif

}  // namespace paralab::kernels::cpu::forward
