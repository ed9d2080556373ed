// attention_forward_simd.cpp: the attention forward's tile kernels over Highway, compiled for
// every instruction-set tier (foreach_target re-includes this file once per target).
//
// Registers. A vector holds N floats (4 on SSE4/NEON, 8 on AVX2, up to 16 on SVE). S = Q K^T
// runs on chunks of 2N keys: 6 rows x 2 vectors = 12 accumulators, per dimension two key
// loads and six broadcasts of Q, which fits the 16 registers of SSE4/AVX2 and leaves NEON room.
// Scores go to a 6 x 64 array in L1; the online softmax works row by row on it; O += P V then
// runs on chunks of 2N columns of the head dimension, 6 rows x 2 vectors again, per key two
// loads of V and six broadcasts of P. Accumulators are named variables, not arrays: SVE's
// vectors are sizeless types, which cannot be array elements.
//
// The avx512 tiers run the hand-written tiles (attention_forward_avx512.cpp), so this file is
// not compiled for them.
#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS (HWY_AVX3 | HWY_AVX3_DL)
#endif
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/attention_forward_simd.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/cpu/attention_forward_tiles.hpp"
#include "kernels/cpu/simd-inl.hpp"

HWY_BEFORE_NAMESPACE();
namespace paralab::kernels::cpu::HWY_NAMESPACE {
namespace {

using forward::kKeyBlock;
using forward::kTileRows;
using forward::TileJob;

// Accumulator rows 0..5, two vectors each, declared zero.
#define PARALAB_ZERO_ROWS(d)                            \
  auto a00 = hn::Zero(d), a01 = hn::Zero(d);            \
  auto a10 = hn::Zero(d), a11 = hn::Zero(d);            \
  auto a20 = hn::Zero(d), a21 = hn::Zero(d);            \
  auto a30 = hn::Zero(d), a31 = hn::Zero(d);            \
  auto a40 = hn::Zero(d), a41 = hn::Zero(d);            \
  auto a50 = hn::Zero(d), a51 = hn::Zero(d)
// Applies OP(r, acc_lo, acc_hi) to the first R rows.
#define PARALAB_FOR_ROWS(OP)            \
  do {                                  \
    if constexpr (R > 0) OP(0, a00, a01); \
    if constexpr (R > 1) OP(1, a10, a11); \
    if constexpr (R > 2) OP(2, a20, a21); \
    if constexpr (R > 3) OP(3, a30, a31); \
    if constexpr (R > 4) OP(4, a40, a41); \
    if constexpr (R > 5) OP(5, a50, a51); \
  } while (0)

// s[r][k0, k0 + 2N) = q_r . k for the first R rows.
template <int R>
HWY_INLINE void Scores(const TileJob<float>& job, int k0, float* HWY_RESTRICT s) {
  const FloatTag d;
  const size_t N = hn::Lanes(d);
  PARALAB_ZERO_ROWS(d);
  const size_t D = static_cast<size_t>(job.D);
  const float* HWY_RESTRICT q = job.q;
  const float* HWY_RESTRICT kt = job.kt + k0;
  for (size_t x = 0; x < D; ++x, kt += kKeyBlock) {
    const auto k_lo = hn::LoadU(d, kt), k_hi = hn::LoadU(d, kt + N);
#define PARALAB_SCORE(r, lo, hi)                  \
  {                                               \
    const auto qr = hn::Set(d, q[(r) * D + x]);   \
    lo = hn::MulAdd(qr, k_lo, lo);                \
    hi = hn::MulAdd(qr, k_hi, hi);                \
  }
    PARALAB_FOR_ROWS(PARALAB_SCORE);
#undef PARALAB_SCORE
  }
#define PARALAB_STORE(r, lo, hi)                         \
  {                                                      \
    hn::StoreU(lo, d, s + (r) * kKeyBlock + k0);         \
    hn::StoreU(hi, d, s + (r) * kKeyBlock + k0 + N);     \
  }
  PARALAB_FOR_ROWS(PARALAB_STORE);
#undef PARALAB_STORE
}

// The online softmax of one row: its scores s[0, 64) become p = 2^(c s - m_new) on the
// visible keys [lo, hi) and 0 elsewhere; m and l move on; returns alpha = 2^(m_old - m_new),
// the factor for what the row accumulated before this block (1 when it sees no key here).
// Only the vectors that overlap [lo, hi) are read: the others may never have been computed.
HWY_INLINE float SoftmaxRow(float* HWY_RESTRICT s, int lo, int hi, float c, float& m, float& l) {
  const FloatTag d;
  const int N = static_cast<int>(hn::Lanes(d));
  if (lo >= hi) {
    for (int j = 0; j < kKeyBlock; j += N) hn::StoreU(hn::Zero(d), d, s + j);
    return 1.0f;
  }
  const int first = lo / N * N, end = (hi + N - 1) / N * N;
  auto peak = hn::Set(d, -std::numeric_limits<float>::infinity());
  for (int j = first; j < end; j += N)
    peak = hn::IfThenElse(LanesIn(d, j, lo, hi), hn::Max(peak, hn::LoadU(d, s + j)), peak);
  const float m_new = std::max(m, hn::GetLane(hn::MaxOfLanes(d, peak)) * c);
  const float alpha = hn::GetLane(Exp2(d, hn::Set(d, m - m_new)));
  const auto vc = hn::Set(d, c), vm = hn::Set(d, m_new);
  auto sum = hn::Zero(d);
  for (int j = 0; j < first; j += N) hn::StoreU(hn::Zero(d), d, s + j);
  for (int j = first; j < end; j += N) {
    const auto p = Exp2(d, hn::MulSub(hn::LoadU(d, s + j), vc, vm));
    const auto visible = hn::IfThenElseZero(LanesIn(d, j, lo, hi), p);
    hn::StoreU(visible, d, s + j);
    sum = hn::Add(sum, visible);
  }
  for (int j = end; j < kKeyBlock; j += N) hn::StoreU(hn::Zero(d), d, s + j);
  m = m_new;
  l = l * alpha + hn::GetLane(hn::SumOfLanes(d, sum));
  return alpha;
}

// O = alpha O + P V for the first R rows over the keys [klo, khi): columns in chunks of 2N,
// the rest (D not a multiple of 2N) one at a time.
template <int R>
HWY_INLINE void Accumulate(const TileJob<float>& job, const float* HWY_RESTRICT p,
                           const float* alpha, int klo, int khi) {
  const FloatTag d;
  const size_t N = hn::Lanes(d);
  const size_t D = static_cast<size_t>(job.D);
  float* HWY_RESTRICT o = job.o;
  size_t col = 0;
  for (; col + 2 * N <= D; col += 2 * N) {
    PARALAB_ZERO_ROWS(d);
#define PARALAB_LOAD(r, lo, hi)                                  \
  {                                                              \
    const auto ar = hn::Set(d, alpha[r]);                        \
    lo = hn::Mul(ar, hn::LoadU(d, o + (r) * D + col));           \
    hi = hn::Mul(ar, hn::LoadU(d, o + (r) * D + col + N));       \
  }
    PARALAB_FOR_ROWS(PARALAB_LOAD);
#undef PARALAB_LOAD
    const float* HWY_RESTRICT vrow = job.v + size_t(klo) * job.v_stride + col;
    for (int j = klo; j < khi; ++j, vrow += job.v_stride) {
      const auto v_lo = hn::LoadU(d, vrow), v_hi = hn::LoadU(d, vrow + N);
#define PARALAB_PV(r, lo, hi)                              \
  {                                                        \
    const auto pr = hn::Set(d, p[(r) * kKeyBlock + j]);    \
    lo = hn::MulAdd(pr, v_lo, lo);                         \
    hi = hn::MulAdd(pr, v_hi, hi);                         \
  }
      PARALAB_FOR_ROWS(PARALAB_PV);
#undef PARALAB_PV
    }
#define PARALAB_STORE(r, lo, hi)                     \
  {                                                  \
    hn::StoreU(lo, d, o + (r) * D + col);            \
    hn::StoreU(hi, d, o + (r) * D + col + N);        \
  }
    PARALAB_FOR_ROWS(PARALAB_STORE);
#undef PARALAB_STORE
  }
  for (; col < D; ++col) {
    for (int r = 0; r < R; ++r) {
      float acc = alpha[r] * o[r * D + col];
      for (int j = klo; j < khi; ++j) acc += p[r * kKeyBlock + j] * job.v[j * job.v_stride + col];
      o[r * D + col] = acc;
    }
  }
}

#undef PARALAB_ZERO_ROWS
#undef PARALAB_FOR_ROWS

template <int R>
void Tile(const TileJob<float>& job) {
  const FloatTag d;
  const int N2 = 2 * static_cast<int>(hn::Lanes(d));
  // The keys any row sees; P V and the score chunks skip the rest.
  int klo = kKeyBlock, khi = 0;
  for (int r = 0; r < R; ++r) {
    if (job.lo[r] >= job.hi[r]) continue;
    klo = std::min(klo, job.lo[r]);
    khi = std::max(khi, job.hi[r]);
  }
  if (klo >= khi) return;
  alignas(64) float s[R][kKeyBlock];
  for (int k0 = klo / N2 * N2; k0 < khi; k0 += N2) Scores<R>(job, k0, &s[0][0]);
  float alpha[R];
  for (int r = 0; r < R; ++r)
    alpha[r] = SoftmaxRow(s[r], job.lo[r], job.hi[r], job.c, job.m[r], job.l[r]);
  Accumulate<R>(job, &s[0][0], alpha, klo, khi);
}

}  // namespace

forward::TileKernels<float> ForwardTiles() {
  return {Tile<1>, Tile<2>, Tile<3>, Tile<4>, Tile<5>, Tile<6>};
}

}  // namespace paralab::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace paralab::kernels::cpu {
HWY_EXPORT(ForwardTiles);
namespace forward {
TileKernels<float> simd_forward_tiles() {
  return HWY_DYNAMIC_DISPATCH(ForwardTiles)();
}
}  // namespace forward
}  // namespace paralab::kernels::cpu
#endif
