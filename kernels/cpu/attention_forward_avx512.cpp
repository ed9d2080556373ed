// attention_forward_avx512.cpp: hand-written AVX-512 tiles of the attention forward, kept for
// the avx512 (FP32) and avx512_bf16 (BF16 on vdpbf16ps) tiers, where they were measured
// (docs/kernels.md); every other tier runs attention_forward_simd.cpp. A tile holds its whole
// 64-key block in registers: 6 rows x 4 vectors of 16 scores, the online softmax on those
// registers, then O = alpha O + P V in 6 x 4 register tiles. D must be a multiple of 16.
#if defined(__x86_64__)

#include "kernels/cpu/x86_intrinsics.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "kernels/cpu/attention_forward_tiles.hpp"

// AVX-512 code is compiled only into functions carrying these attributes and runs only after
// a run-time check (isa.hpp), so the library still runs on any x86-64. FP32 tiles need
// AVX-512 F/BW/VL/DQ only; BF16 tiles also AVX512-BF16.
#define PARALAB_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))
#define PARALAB_AVX512_INLINE PARALAB_AVX512 inline __attribute__((always_inline))
#define PARALAB_AVX512_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))
#define PARALAB_AVX512_BF16_INLINE PARALAB_AVX512_BF16 inline __attribute__((always_inline))

namespace paralab::kernels::cpu::forward {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr int kTileRows = 6;  // 6 rows x 4 vectors of scores: 24 of the 32 registers

struct KeyRange {
  int lo = 0, hi = 0;
};

// The keys that any row of the tile sees: P V skips the rest (their P is 0).
template <class T>
KeyRange tile_keys(const TileJob<T>& job) {
  KeyRange keys{kKeyBlock, 0};
  for (int r = 0; r < job.rows; ++r) {
    if (job.lo[r] >= job.hi[r]) continue;
    keys.lo = std::min(keys.lo, job.lo[r]);
    keys.hi = std::max(keys.hi, job.hi[r]);
  }
  return keys;
}

// 2^x for x <= 0 to ~1e-7 relative: 2^x = 2^n 2^f with n = round(x), |f| <= 1/2, and 2^f by a
// degree-6 fit (max relative error 1e-7 in float). Clamping at -200 makes scalef return an
// exact 0 far below the range where probabilities matter.
PARALAB_AVX512_INLINE __m512 exp2_avx512(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-200.0f));
  const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(x, n);
  __m512 p = _mm512_set1_ps(1.533757750e-4f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.339985989e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.618519805e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550329015e-2f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.402264625e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931471825e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

// The lowest n bits of 64 (all for n >= 64).
uint64_t low_bits(int n) {
  return n >= 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1;
}

// Keys [lo, hi) of a 64-key block as four lane masks.
PARALAB_AVX512_INLINE void visible_lanes(int lo, int hi, __mmask16 (&visible)[4]) {
  const uint64_t bits = lo < hi ? low_bits(hi) & ~low_bits(lo) : 0;
  for (int v = 0; v < 4; ++v) visible[v] = static_cast<__mmask16>(bits >> (16 * v));
}

// The online softmax of R rows held in registers (64 keys each), as softmax_row_portable:
// visible lanes become p = 2^(c s - m_new), the others 0; alpha (lane r for row r) rescales
// what each row accumulated before. All exponentials are vector ones, so no call spills the
// score registers.
template <int R, class T>
PARALAB_AVX512_INLINE void softmax_rows(const TileJob<T>& job, __m512 (&s)[R][4],
                                        float (&alpha)[16]) {
  __mmask16 visible[R][4];
  alignas(64) float shift[16] = {};  // m_old - m_new per row; 0 (alpha = 1) for unseen rows
  float m_new[R];
  for (int r = 0; r < R; ++r) {
    visible_lanes(job.lo[r], job.hi[r], visible[r]);
    __m512 peak = _mm512_set1_ps(kNegInf);
    for (int v = 0; v < 4; ++v) peak = _mm512_mask_max_ps(peak, visible[r][v], peak, s[r][v]);
    m_new[r] = job.m[r];
    if (job.lo[r] < job.hi[r]) {
      m_new[r] = std::max(m_new[r], _mm512_reduce_max_ps(peak) * job.c);
      shift[r] = job.m[r] - m_new[r];
    }
  }
  _mm512_storeu_ps(alpha, exp2_avx512(_mm512_load_ps(shift)));
  const __m512 c = _mm512_set1_ps(job.c);
  for (int r = 0; r < R; ++r) {
    const __m512 m = _mm512_set1_ps(m_new[r]);
    __m512 sum = _mm512_setzero_ps();
    for (int v = 0; v < 4; ++v) {
      s[r][v] = _mm512_maskz_mov_ps(visible[r][v], exp2_avx512(_mm512_fmsub_ps(s[r][v], c, m)));
      sum = _mm512_add_ps(sum, s[r][v]);
    }
    job.m[r] = m_new[r];
    job.l[r] = job.l[r] * alpha[r] + _mm512_reduce_add_ps(sum);
  }
}

// S = Q K^T for R rows and 64 keys: per dimension, four key vectors times R broadcasts.
template <int R>
PARALAB_AVX512_INLINE void scores_f32(const TileJob<float>& job, __m512 (&s)[R][4]) {
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < 4; ++v) s[r][v] = _mm512_setzero_ps();
  for (int d = 0; d < job.D; ++d) {
    const float* k = job.kt + size_t(d) * kKeyBlock;
    const __m512 k0 = _mm512_loadu_ps(k), k1 = _mm512_loadu_ps(k + 16);
    const __m512 k2 = _mm512_loadu_ps(k + 32), k3 = _mm512_loadu_ps(k + 48);
    for (int r = 0; r < R; ++r) {
      const __m512 q = _mm512_set1_ps(job.q[size_t(r) * job.D + d]);
      s[r][0] = _mm512_fmadd_ps(q, k0, s[r][0]);
      s[r][1] = _mm512_fmadd_ps(q, k1, s[r][1]);
      s[r][2] = _mm512_fmadd_ps(q, k2, s[r][2]);
      s[r][3] = _mm512_fmadd_ps(q, k3, s[r][3]);
    }
  }
}

// S = Q K^T on vdpbf16ps: per pair of dimensions, four vectors of 16 keys x 2 times R
// broadcast pairs of the query.
template <int R>
PARALAB_AVX512_BF16_INLINE void scores_bf16(const TileJob<bf16>& job, __m512 (&s)[R][4]) {
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < 4; ++v) s[r][v] = _mm512_setzero_ps();
  for (int d = 0; d < job.D; d += 2) {
    const bf16* k = job.kt + size_t(d) * kKeyBlock;
    const __m512bh k0 = (__m512bh)_mm512_loadu_si512(k), k1 = (__m512bh)_mm512_loadu_si512(k + 32);
    const __m512bh k2 = (__m512bh)_mm512_loadu_si512(k + 64);
    const __m512bh k3 = (__m512bh)_mm512_loadu_si512(k + 96);
    for (int r = 0; r < R; ++r) {
      int32_t pair;
      std::memcpy(&pair, job.q + size_t(r) * job.D + d, sizeof pair);
      const __m512bh q = (__m512bh)_mm512_set1_epi32(pair);
      s[r][0] = _mm512_dpbf16_ps(s[r][0], q, k0);
      s[r][1] = _mm512_dpbf16_ps(s[r][1], q, k1);
      s[r][2] = _mm512_dpbf16_ps(s[r][2], q, k2);
      s[r][3] = _mm512_dpbf16_ps(s[r][3], q, k3);
    }
  }
}

// O[:, col, col + 16 NV) = alpha O + P V for R rows over the keys [lo, hi) of the block.
template <int R, int NV>
PARALAB_AVX512_INLINE void accumulate(const TileJob<float>& job,
                                      const float (&p)[kTileRows][kKeyBlock],
                                      const float (&alpha)[16], KeyRange keys, int col) {
  __m512 acc[R][NV];
  for (int r = 0; r < R; ++r) {
    const __m512 a = _mm512_set1_ps(alpha[r]);
    for (int v = 0; v < NV; ++v)
      acc[r][v] = _mm512_mul_ps(a, _mm512_loadu_ps(job.o + size_t(r) * job.D + col + 16 * v));
  }
  for (int j = keys.lo; j < keys.hi; ++j) {
    const float* vrow = job.v + j * job.v_stride + col;
    __m512 x[NV];
    for (int v = 0; v < NV; ++v) x[v] = _mm512_loadu_ps(vrow + 16 * v);
    for (int r = 0; r < R; ++r) {
      const __m512 pr = _mm512_set1_ps(p[r][j]);
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(pr, x[v], acc[r][v]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v)
      _mm512_storeu_ps(job.o + size_t(r) * job.D + col + 16 * v, acc[r][v]);
}

// The same on vdpbf16ps: pairs of keys, P as BF16 pairs, V pair-interleaved. An odd first key
// starts the pair one key early; that key's P is 0.
template <int R, int NV>
PARALAB_AVX512_BF16_INLINE void accumulate(const TileJob<bf16>& job,
                                           const uint16_t (&p)[kTileRows][kKeyBlock],
                                           const float (&alpha)[16], KeyRange keys, int col) {
  __m512 acc[R][NV];
  for (int r = 0; r < R; ++r) {
    const __m512 a = _mm512_set1_ps(alpha[r]);
    for (int v = 0; v < NV; ++v)
      acc[r][v] = _mm512_mul_ps(a, _mm512_loadu_ps(job.o + size_t(r) * job.D + col + 16 * v));
  }
  for (int j = keys.lo & ~1; j < keys.hi; j += 2) {
    const bf16* vpair = job.v + (size_t(j / 2) * job.D + col) * 2;
    __m512bh x[NV];
    for (int v = 0; v < NV; ++v) x[v] = (__m512bh)_mm512_loadu_si512(vpair + 32 * v);
    for (int r = 0; r < R; ++r) {
      int32_t pair;
      std::memcpy(&pair, &p[r][j], sizeof pair);
      const __m512bh pr = (__m512bh)_mm512_set1_epi32(pair);
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], pr, x[v]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v)
      _mm512_storeu_ps(job.o + size_t(r) * job.D + col + 16 * v, acc[r][v]);
}

// O = alpha O + P V over the head dimension: chunks of 64 columns (a 6 x 4 register tile),
// then 32 and 16 (D is a multiple of 16 on this path). One copy per target attribute: GCC
// inlines a function only into callers with at least its target features.
#define PARALAB_ACCUMULATE_COLUMNS                                                 \
  int col = 0;                                                                     \
  for (; col + 64 <= job.D; col += 64) accumulate<R, 4>(job, p, alpha, keys, col); \
  if (col + 32 <= job.D) {                                                         \
    accumulate<R, 2>(job, p, alpha, keys, col);                                    \
    col += 32;                                                                     \
  }                                                                                \
  if (col + 16 <= job.D) accumulate<R, 1>(job, p, alpha, keys, col);
template <int R>
PARALAB_AVX512_INLINE void accumulate_columns(const TileJob<float>& job,
                                              const float (&p)[kTileRows][kKeyBlock],
                                              const float (&alpha)[16], KeyRange keys) {
  PARALAB_ACCUMULATE_COLUMNS
}
template <int R>
PARALAB_AVX512_BF16_INLINE void accumulate_columns(const TileJob<bf16>& job,
                                                   const uint16_t (&p)[kTileRows][kKeyBlock],
                                                   const float (&alpha)[16],
                                                   KeyRange keys){PARALAB_ACCUMULATE_COLUMNS}
#undef PARALAB_ACCUMULATE_COLUMNS

PARALAB_AVX512_INLINE void store_probabilities(const __m512 (&s)[4], float (&p)[kKeyBlock]) {
  for (int v = 0; v < 4; ++v) _mm512_storeu_ps(&p[16 * v], s[v]);
}

// P V runs on BF16 probabilities (round to nearest even); the row sums l keep the FP32 ones.
PARALAB_AVX512_BF16_INLINE void store_probabilities(const __m512 (&s)[4],
                                                    uint16_t (&p)[kKeyBlock]) {
  _mm512_storeu_si512(&p[0], (__m512i)_mm512_cvtne2ps_pbh(s[1], s[0]));
  _mm512_storeu_si512(&p[32], (__m512i)_mm512_cvtne2ps_pbh(s[3], s[2]));
}

// P as stored for P V: FP32, or the bits of BF16 (raw, so the array is not zero-filled).

template <int R>
PARALAB_AVX512 void tile_f32(const TileJob<float>& job) {
  __m512 s[R][4];
  scores_f32<R>(job, s);
  float alpha[16];
  softmax_rows<R>(job, s, alpha);
  alignas(64) float p[kTileRows][kKeyBlock];
  for (int r = 0; r < R; ++r) store_probabilities(s[r], p[r]);
  accumulate_columns<R>(job, p, alpha, tile_keys(job));
}

// P V runs on BF16 probabilities (raw bits, so the array is not zero-filled).
template <int R>
PARALAB_AVX512_BF16 void tile_bf16(const TileJob<bf16>& job) {
  __m512 s[R][4];
  scores_bf16<R>(job, s);
  float alpha[16];
  softmax_rows<R>(job, s, alpha);
  alignas(64) uint16_t p[kTileRows][kKeyBlock];
  for (int r = 0; r < R; ++r) store_probabilities(s[r], p[r]);
  accumulate_columns<R>(job, p, alpha, tile_keys(job));
}

void run_f32(const TileJob<float>& job) {
  static constexpr void (*by_rows[])(const TileJob<float>&) = {
      tile_f32<1>, tile_f32<2>, tile_f32<3>, tile_f32<4>, tile_f32<5>, tile_f32<6>};
  by_rows[job.rows - 1](job);
}

void run_bf16(const TileJob<bf16>& job) {
  static constexpr void (*by_rows[])(const TileJob<bf16>&) = {
      tile_bf16<1>, tile_bf16<2>, tile_bf16<3>, tile_bf16<4>, tile_bf16<5>, tile_bf16<6>};
  by_rows[job.rows - 1](job);
}

}  // namespace

Tiles<float> avx512_forward_tiles_f32() {
  return {run_f32, kTileRows, Layout::avx512};
}

Tiles<bf16> avx512_forward_tiles_bf16() {
  return {run_bf16, kTileRows, Layout::avx512};
}

}  // namespace paralab::kernels::cpu::forward

#endif  // __x86_64__
