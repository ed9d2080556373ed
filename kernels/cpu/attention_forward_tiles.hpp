// attention_forward_tiles.hpp (internal to kernels/cpu): the tile kernels of the attention
// forward and the operand layout they share with the driver in attention_forward.cpp.
//
// A tile is a few rows (query token x head) against one key block of kKeyBlock keys:
// S = Q K^T, the online softmax of each row (running max m in base 2 and sum l), then
// O = alpha O + P V. Two implementations:
//   simd_forward_tiles():    Highway, compiled for every tier (isa.hpp), FP32
//   avx512_forward_tiles():  hand-written AVX-512 (FP32) and AVX512-BF16 (BF16), x86-64 only
#pragma once

#include <cstddef>
#include <type_traits>

#include "core/bf16.hpp"

namespace paralab::kernels::cpu::forward {

constexpr int kKeyBlock = 64;

// How the driver packs each key block for the tiles (keys past S are zero):
enum class Layout {
  // The AVX-512 tiles. K transposed, so that a tile reads the 64 keys of one dimension d as
  // four vectors: FP32 kt[d][key]; BF16 interleaves pairs of dimensions (kt[d/2][key][2]),
  // the operand layout of vdpbf16ps. FP32 V is read in place; BF16 V interleaves pairs of
  // keys (vp[key/2][d][2]).
  avx512,
  // The Highway tiles (FP32). K and V in panels 16 floats wide, each panel one contiguous
  // run that a tile walks line by line: kt[key/16][d][key%16] and vp[d/16][key][d%16]
  // (D rounded up to a multiple of 16, zero padded).
  panels,
};
constexpr int kPanel = 16;

inline int panel_columns(int D) {
  return (D + kPanel - 1) / kPanel * kPanel;
}

template <class T>
size_t packed_key_index(Layout layout, int D, int d, int key) {
  if (layout == Layout::panels) return (size_t(key / kPanel) * D + d) * kPanel + key % kPanel;
  if constexpr (std::is_same_v<T, bf16>)
    return size_t(d / 2) * 2 * kKeyBlock + key * 2 + d % 2;
  else
    return size_t(d) * kKeyBlock + key;
}

inline size_t packed_value_index(int d, int key) {  // Layout::panels
  return (size_t(d / kPanel) * kKeyBlock + key) * kPanel + d % kPanel;
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
  const T* v = nullptr;   // the packed value block, or (FP32, Layout::avx512) its row 0 in V
  size_t v_stride = 0;    // FP32, Layout::avx512: elements between keys in V
  float c = 0;
  float* m = nullptr;  // [rows]
  float* l = nullptr;  // [rows]
  float* o = nullptr;  // [rows][D], unnormalised
};

// A tile kernel, the most rows it takes per call (job.rows in [1, max_rows]) and the layout
// of its operands.
template <class T>
struct Tiles {
  void (*run)(const TileJob<T>&) = nullptr;
  int max_rows = 0;
  Layout layout = Layout::avx512;
};

// The Highway tiles of the tier in force (any D).
Tiles<float> simd_forward_tiles();

#if defined(__x86_64__)
// Hand-written AVX-512 tiles (D a multiple of 16): FP32 needs the avx512 tier, BF16
// avx512_bf16.
Tiles<float> avx512_forward_tiles_f32();
Tiles<bf16> avx512_forward_tiles_bf16();
#endif

}  // namespace paralab::kernels::cpu::forward
