// attention_backward_avx512.cpp: hand-written AVX-512 block operations of the attention
// backward, kept for the avx512 tiers where they were measured (docs/kernels.md); every other
// tier runs attention_backward_simd.cpp. Register-blocked micro-kernels: 6 rows x 4 vectors
// of 16 keys for the score products, 6 rows x up to 4 vectors of columns for the updates.
#if defined(__x86_64__)

#include "kernels/cpu/x86_intrinsics.hpp"

#include <algorithm>
#include <cstdint>

#include "kernels/cpu/attention_backward_ops.hpp"

namespace paralab::kernels::cpu::backward {

namespace {

#define PARALAB_AVX512 __attribute__((target("avx512f")))

// GCC 12 warns that the source operand of the unmasked forms of vmaxps,
// vminps, vrndscaleps and vscalefps is used uninitialized (PR 105593) when they
// are inlined into a target("avx512f") function; the all-ones masked forms
// with an explicit source are the same instructions without the warning.
constexpr __mmask16 kAll = 0xffff;

// 2^y to about 1 ulp: y = n + f with |f| <= 1/2, 2^f by its degree-7 Taylor
// polynomial in f ln 2 (truncation < 5e-9 relative), 2^n by vscalefps.
// Clamping keeps the polynomial in range; 2^-127 is 0 for every purpose here.
PARALAB_AVX512 inline __m512 exp2_avx512(__m512 y) {
  y = _mm512_mask_max_ps(y, kAll, y, _mm512_set1_ps(-127.0f));
  y = _mm512_mask_min_ps(y, kAll, y, _mm512_set1_ps(128.0f));
  const __m512 n =
      _mm512_mask_roundscale_ps(y, kAll, y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(y, n);
  __m512 p = _mm512_set1_ps(1.525273380405984e-05f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.5403530393381606e-04f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3333558146428443e-03f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.618129107628477e-03f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550410866482158e-02f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.402265069591007e-01f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931471805599453e-01f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  return _mm512_mask_scalef_ps(p, kAll, p, n);
}

// acc[r][c] = a_r . bt[:, 16c : 16c + 16] for R rows starting at row r0:
// R x 4 accumulators, per d four loads of bt and R broadcasts.
template <int R>
PARALAB_AVX512 inline void dot_rows_avx512(const ScoreTile& t, int r0, __m512 (&acc)[R][4]) {
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < 4; ++c) acc[r][c] = _mm512_setzero_ps();
  const float* a = t.a + r0 * t.lda;
  for (int d = 0; d < t.D; ++d) {
    const float* b = t.bt + static_cast<size_t>(d) * kKeyBlock;
    const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
    const __m512 b2 = _mm512_load_ps(b + 32), b3 = _mm512_load_ps(b + 48);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 x = _mm512_set1_ps(a[r * t.lda + d]);
      acc[r][0] = _mm512_fmadd_ps(x, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(x, b1, acc[r][1]);
      acc[r][2] = _mm512_fmadd_ps(x, b2, acc[r][2]);
      acc[r][3] = _mm512_fmadd_ps(x, b3, acc[r][3]);
    }
  }
}

template <int R>
PARALAB_AVX512 void probabilities_rows_avx512(const ScoreTile& t, int r0) {
  __m512 acc[R][4];
  dot_rows_avx512<R>(t, r0, acc);
  const __m512 mul = _mm512_set1_ps(t.mul);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const __m512 bias = _mm512_set1_ps(t.bias[r0 + r]);
    const uint64_t mask = t.mask[r0 + r];
    float* out = t.out + (r0 + r) * kKeyBlock;
    for (int c = 0; c < 4; ++c) {
      const __m512 p = exp2_avx512(_mm512_fmsub_ps(acc[r][c], mul, bias));
      _mm512_store_ps(out + 16 * c, _mm512_maskz_mov_ps(static_cast<__mmask16>(mask >> 16 * c), p));
    }
  }
}

template <int R>
PARALAB_AVX512 void dscores_rows_avx512(const ScoreTile& t, int r0) {
  __m512 acc[R][4];
  dot_rows_avx512<R>(t, r0, acc);
  const __m512 mul = _mm512_set1_ps(t.mul);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const __m512 delta = _mm512_set1_ps(t.bias[r0 + r]);
    const float* p = t.p + (r0 + r) * kKeyBlock;
    float* out = t.out + (r0 + r) * kKeyBlock;
    for (int c = 0; c < 4; ++c) {
      const __m512 scaled_p = _mm512_mul_ps(mul, _mm512_load_ps(p + 16 * c));
      _mm512_store_ps(out + 16 * c, _mm512_mul_ps(scaled_p, _mm512_sub_ps(acc[r][c], delta)));
    }
  }
}

// Rows in blocks of 6 (24 accumulators), the remainder by a smaller block.
using RowsFn = void (*)(const ScoreTile&, int);
template <template <int> class Kernel>
void for_row_blocks(const ScoreTile& t) {
  static constexpr RowsFn by_rows[] = {Kernel<1>::run, Kernel<2>::run, Kernel<3>::run,
                                       Kernel<4>::run, Kernel<5>::run, Kernel<6>::run};
  for (int r0 = 0; r0 < t.rows; r0 += 6) by_rows[std::min(6, t.rows - r0) - 1](t, r0);
}
template <int R>
struct ProbabilitiesRows {
  static void run(const ScoreTile& t, int r0) { probabilities_rows_avx512<R>(t, r0); }
};
template <int R>
struct DscoresRows {
  static void run(const ScoreTile& t, int r0) { dscores_rows_avx512<R>(t, r0); }
};
void probabilities_avx512(const ScoreTile& t) {
  for_row_blocks<ProbabilitiesRows>(t);
}
void dscores_avx512(const ScoreTile& t) {
  for_row_blocks<DscoresRows>(t);
}

// c[i0 : i0+R, d0 : d0+16V) += a b: R x V accumulators held across all of K,
// the last vector masked by `tail` so that any D works.
template <int R, int V>
PARALAB_AVX512 void update_block_avx512(const Update& u, int i0, int d0, __mmask16 tail) {
  __m512 acc[R][V];
  float* c = u.c + i0 * u.ldc + d0;
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v)
      acc[r][v] = v + 1 < V ? _mm512_loadu_ps(c + r * u.ldc + 16 * v)
                            : _mm512_maskz_loadu_ps(tail, c + r * u.ldc + 16 * v);
  const float* a = u.a + i0 * u.a_row;
  for (int k = 0; k < u.K; ++k) {
    const float* b = u.b + k * u.ldb + d0;
    __m512 bv[V];
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v)
      bv[v] = v + 1 < V ? _mm512_loadu_ps(b + 16 * v) : _mm512_maskz_loadu_ps(tail, b + 16 * v);
    const float* ak = a + k * u.a_col;
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 x = _mm512_set1_ps(ak[r * u.a_row]);
      for (int v = 0; v < V; ++v) acc[r][v] = _mm512_fmadd_ps(x, bv[v], acc[r][v]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v) {
      if (v + 1 < V)
        _mm512_storeu_ps(c + r * u.ldc + 16 * v, acc[r][v]);
      else
        _mm512_mask_storeu_ps(c + r * u.ldc + 16 * v, tail, acc[r][v]);
    }
}

using UpdateFn = void (*)(const Update&, int, int, __mmask16);
template <int R>
constexpr UpdateFn update_fns[4] = {update_block_avx512<R, 1>, update_block_avx512<R, 2>,
                                    update_block_avx512<R, 3>, update_block_avx512<R, 4>};

// D in column chunks of 64 floats, rows in blocks of 6.
void update_avx512(const Update& u) {
  static constexpr const UpdateFn* by_rows[] = {update_fns<1>, update_fns<2>, update_fns<3>,
                                                update_fns<4>, update_fns<5>, update_fns<6>};
  for (int d0 = 0; d0 < u.D; d0 += 64) {
    const int width = std::min(64, u.D - d0);
    const int vectors = (width + 15) / 16;
    const int last = width - 16 * (vectors - 1);
    const auto tail = static_cast<__mmask16>((1u << last) - 1);
    for (int i0 = 0; i0 < u.I; i0 += 6)
      by_rows[std::min(6, u.I - i0) - 1][vectors - 1](u, i0, d0, tail);
  }
}

PARALAB_AVX512 void row_dots_avx512(int rows, int D, const float* a, const float* b, size_t ld,
                                    float* out) {
  for (int r = 0; r < rows; ++r) {
    __m512 sum = _mm512_setzero_ps();
    for (int d = 0; d < D; d += 16) {
      const auto m = static_cast<__mmask16>(D - d >= 16 ? 0xffff : (1u << (D - d)) - 1);
      sum = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + r * ld + d),
                            _mm512_maskz_loadu_ps(m, b + r * ld + d), sum);
    }
    alignas(64) float lanes[16];  // (not _mm512_reduce_add_ps: PR 105593 again)
    _mm512_store_ps(lanes, sum);
    double total = 0;
    for (float x : lanes) total += x;
    out[r] = static_cast<float>(total);
  }
}

}  // namespace

const TileOps& avx512_backward_ops() {
  static constexpr TileOps ops = {probabilities_avx512, dscores_avx512, update_avx512,
                                  row_dots_avx512};
  return ops;
}

}  // namespace paralab::kernels::cpu::backward

#endif  // __x86_64__
