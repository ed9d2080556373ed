// attention_backward_ops.hpp (internal to kernels/cpu): the block operations of the attention
// backward (attention_backward.cpp), behind one table so that each tier brings its own:
//   simd_backward_ops():    Highway, compiled for every tier (isa.hpp)
//   avx512_backward_ops():  hand-written AVX-512, x86-64 only (the avx512 tiers)
#pragma once

#include <cstddef>
#include <cstdint>

namespace paralab::kernels::cpu::backward {

constexpr int kKeyBlock = 64;   // keys per block: one 64-bit mask word per row
constexpr int kQueryTile = 64;  // query rows per tile: P and dS tiles stay in L1

// What the micro-kernels compute, one struct per call.

// One query tile against one packed key block: out[r, n] for n < kKeyBlock.
//   probabilities: out = mask(r, n) ? exp2(mul * a_r . bt_n - bias[r]) : 0
//   dscores:       out = mul * p[r, n] * (a_r . bt_n - bias[r])
struct ScoreTile {
  int rows = 0, D = 0;
  const float* a = nullptr;  // rows of Q (probabilities) or dO (dscores), stride lda
  size_t lda = 0;
  const float* bt = nullptr;       // K or V of the block, transposed: [D][kKeyBlock]
  const float* bias = nullptr;     // per row: LSE * log2(e), or Delta
  const uint64_t* mask = nullptr;  // per row: visible keys of the block (probabilities)
  const float* p = nullptr;        // [rows][kKeyBlock] probabilities (dscores)
  float mul = 0;                   // scale * log2(e), or scale
  float* out = nullptr;            // [rows][kKeyBlock]
};

// c[i, 0:D) += sum_k a[i * a_row + k * a_col] * b[k * ldb + (0:D)], i < I, k < K.
struct Update {
  int I = 0, K = 0, D = 0;
  const float* a = nullptr;
  ptrdiff_t a_row = 0, a_col = 0;
  const float* b = nullptr;
  size_t ldb = 0;
  float* c = nullptr;
  size_t ldc = 0;
};

struct TileOps {
  void (*probabilities)(const ScoreTile&);
  void (*dscores)(const ScoreTile&);
  void (*update)(const Update&);
  // out[r] = a_r . b_r over D floats, rows with stride ld.
  void (*row_dots)(int rows, int D, const float* a, const float* b, size_t ld, float* out);
};

// The Highway operations of the tier in force.
const TileOps& simd_backward_ops();

#if defined(__x86_64__)
// Hand-written AVX-512 (the avx512 tier and above).
const TileOps& avx512_backward_ops();
#endif

}  // namespace paralab::kernels::cpu::backward
