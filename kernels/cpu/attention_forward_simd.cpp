// attention_forward_simd.cpp: the attention forward's tile kernels over Highway, compiled for
// every instruction-set tier (foreach_target re-includes this file once per target).
//
// Registers. A vector holds N floats (4 on SSE4/NEON, 8 on AVX2, up to 16 on SVE). S = Q K^T
// runs on chunks of 2N keys: 6 rows x 2 vectors = 12 accumulators, per dimension two key
// loads and six broadcasts of Q, which fits the 16 registers of SSE4/AVX2 and leaves NEON room.
// Scores go to an array in L1; the online softmax works row by row on it; O += P V then runs
// on chunks of 2N columns of the head dimension, 6 rows x 2 vectors again, per key two loads
// of V and six broadcasts of P. Accumulators are named variables, not arrays: SVE's vectors
// are sizeless types, which cannot be array elements.
//
// Caches. A call takes up to kMaxRows = 24 rows, four groups of 6, and runs every group on a
// chunk of K (2N keys x D: 8 KiB on AVX2) or of V (64 keys x 2N columns) before the next
// chunk, so each chunk comes from L2 once per 24 rows instead of once per 6 (the whole key
// block, K and V, is 64 KiB, twice a Zen 3 L1). Measured on Zen 3 (AVX2, one thread, causal
// 2k, D 128): 57 GFLOP/s with 6 rows a call, NN with 24.
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
using forward::kPanel;
using forward::TileJob;

// At most 8 lanes, so that a pair of vectors (2N keys or columns) lies within one 16-wide
// panel of the packed operands on every target (SVE may have wider vectors).
using TileTag = hn::CappedTag<float, 8>;

constexpr int kGroupRows = 6;  // rows of one register tile
constexpr int kMaxRows = 24;   // rows of one call: four register tiles

// Accumulator rows 0..5, two vectors each, declared zero.
#define PARALAB_ZERO_ROWS(d)                 \
  auto a00 = hn::Zero(d), a01 = hn::Zero(d); \
  auto a10 = hn::Zero(d), a11 = hn::Zero(d); \
  auto a20 = hn::Zero(d), a21 = hn::Zero(d); \
  auto a30 = hn::Zero(d), a31 = hn::Zero(d); \
  auto a40 = hn::Zero(d), a41 = hn::Zero(d); \
  auto a50 = hn::Zero(d), a51 = hn::Zero(d)
// Applies OP(r, acc_lo, acc_hi) to the first R rows.
#define PARALAB_FOR_ROWS(OP)              \
  do {                                    \
    if constexpr (R > 0) OP(0, a00, a01); \
    if constexpr (R > 1) OP(1, a10, a11); \
    if constexpr (R > 2) OP(2, a20, a21); \
    if constexpr (R > 3) OP(3, a30, a31); \
    if constexpr (R > 4) OP(4, a40, a41); \
    if constexpr (R > 5) OP(5, a50, a51); \
  } while (0)

// s[r][k0, k0 + 2N) = q_r . k for R rows of Q from q (D apart).
template <int R>
HWY_INLINE void Scores(const TileJob<float>& job, const float* HWY_RESTRICT q, int k0,
                       float* HWY_RESTRICT s) {
  const TileTag d;
  const size_t N = hn::Lanes(d);
  PARALAB_ZERO_ROWS(d);
  const size_t D = static_cast<size_t>(job.D);
  // Keys [k0, k0 + 2N) of every dimension: one line of their panel per dimension.
  const float* HWY_RESTRICT kt = job.kt + (k0 / kPanel) * kPanel * D + k0 % kPanel;
  for (size_t x = 0; x < D; ++x, kt += kPanel) {
    const auto k_lo = hn::LoadU(d, kt), k_hi = hn::LoadU(d, kt + N);
#define PARALAB_SCORE(r, lo, hi)              \
  {                                           \
    const auto qr = hn::Set(d, q[(r)*D + x]); \
    lo = hn::MulAdd(qr, k_lo, lo);            \
    hi = hn::MulAdd(qr, k_hi, hi);            \
  }
    PARALAB_FOR_ROWS(PARALAB_SCORE);
#undef PARALAB_SCORE
  }
#define PARALAB_STORE(r, lo, hi)                   \
  {                                                \
    hn::StoreU(lo, d, s + (r)*kKeyBlock + k0);     \
    hn::StoreU(hi, d, s + (r)*kKeyBlock + k0 + N); \
  }
  PARALAB_FOR_ROWS(PARALAB_STORE);
#undef PARALAB_STORE
}

// The online softmax of one row: its scores s[0, 64) become p = 2^(c s - m_new) on the
// visible keys [lo, hi) and 0 elsewhere; m and l move on; returns alpha = 2^(m_old - m_new),
// the factor for what the row accumulated before this block (1 when it sees no key here).
// Only the vectors that overlap [lo, hi) are read: the others may never have been computed.
HWY_INLINE float SoftmaxRow(float* HWY_RESTRICT s, int lo, int hi, float c, float& m, float& l) {
  const TileTag d;
  const int N = static_cast<int>(hn::Lanes(d));
  if (lo >= hi) {
    for (int j = 0; j < kKeyBlock; j += N) hn::StoreU(hn::Zero(d), d, s + j);
    return 1.0f;
  }
  const int first = lo / N * N, end = (hi + N - 1) / N * N;
  // Whole rows (most rows of most blocks) need no lane masks.
  const bool whole = lo == 0 && hi == kKeyBlock;
  auto peak = hn::Set(d, -std::numeric_limits<float>::infinity());
  if (whole) {
    for (int j = 0; j < kKeyBlock; j += N) peak = hn::Max(peak, hn::LoadU(d, s + j));
  } else {
    for (int j = first; j < end; j += N)
      peak = hn::IfThenElse(LanesIn(d, j, lo, hi), hn::Max(peak, hn::LoadU(d, s + j)), peak);
  }
  const float m_new = std::max(m, hn::GetLane(hn::MaxOfLanes(d, peak)) * c);
  const float alpha = hn::GetLane(Exp2(d, hn::Set(d, m - m_new)));
  const auto vc = hn::Set(d, c), vm = hn::Set(d, m_new);
  auto sum = hn::Zero(d);
  for (int j = 0; j < first; j += N) hn::StoreU(hn::Zero(d), d, s + j);
  for (int j = first; j < end; j += N) {
    auto p = Exp2(d, hn::MulSub(hn::LoadU(d, s + j), vc, vm));
    if (!whole) p = hn::IfThenElseZero(LanesIn(d, j, lo, hi), p);
    hn::StoreU(p, d, s + j);
    sum = hn::Add(sum, p);
  }
  for (int j = end; j < kKeyBlock; j += N) hn::StoreU(hn::Zero(d), d, s + j);
  m = m_new;
  l = l * alpha + hn::GetLane(hn::SumOfLanes(d, sum));
  return alpha;
}

// O[:, col, col + 2N) = alpha O + P V for R rows of o and p over the keys [klo, khi).
template <int R>
HWY_INLINE void AccumulateColumns(const TileJob<float>& job, float* HWY_RESTRICT o,
                                  const float* HWY_RESTRICT p, const float* alpha, int klo, int khi,
                                  size_t col) {
  const TileTag d;
  const size_t N = hn::Lanes(d);
  const size_t D = static_cast<size_t>(job.D);
  {
    PARALAB_ZERO_ROWS(d);
#define PARALAB_LOAD(r, lo, hi)                          \
  {                                                      \
    const auto ar = hn::Set(d, alpha[r]);                \
    lo = hn::Mul(ar, hn::LoadU(d, o + (r)*D + col));     \
    hi = hn::Mul(ar, hn::LoadU(d, o + (r)*D + col + N)); \
  }
    PARALAB_FOR_ROWS(PARALAB_LOAD);
#undef PARALAB_LOAD
    // Columns [col, col + 2N) of every key: one line of their panel per key.
    const float* HWY_RESTRICT vrow =
        job.v + (col / kPanel * kKeyBlock + klo) * kPanel + col % kPanel;
    for (int j = klo; j < khi; ++j, vrow += kPanel) {
      const auto v_lo = hn::LoadU(d, vrow), v_hi = hn::LoadU(d, vrow + N);
#define PARALAB_PV(r, lo, hi)                         \
  {                                                   \
    const auto pr = hn::Set(d, p[(r)*kKeyBlock + j]); \
    lo = hn::MulAdd(pr, v_lo, lo);                    \
    hi = hn::MulAdd(pr, v_hi, hi);                    \
  }
      PARALAB_FOR_ROWS(PARALAB_PV);
#undef PARALAB_PV
    }
#define PARALAB_STORE(r, lo, hi)            \
  {                                         \
    hn::StoreU(lo, d, o + (r)*D + col);     \
    hn::StoreU(hi, d, o + (r)*D + col + N); \
  }
    PARALAB_FOR_ROWS(PARALAB_STORE);
#undef PARALAB_STORE
  }
}

#undef PARALAB_ZERO_ROWS
#undef PARALAB_FOR_ROWS

// Rows [r0, r0 + R) of a call, R < kGroupRows picked at run time.
template <template <int> class Op, class... Args>
HWY_INLINE void ForRows(int rows, Args&&... args) {
  switch (rows) {
    case 1:
      return Op<1>::Run(args...);
    case 2:
      return Op<2>::Run(args...);
    case 3:
      return Op<3>::Run(args...);
    case 4:
      return Op<4>::Run(args...);
    case 5:
      return Op<5>::Run(args...);
    default:
      return Op<6>::Run(args...);
  }
}
template <int R>
struct ScoresOp {
  static HWY_INLINE void Run(const TileJob<float>& job, const float* q, int k0, float* s) {
    Scores<R>(job, q, k0, s);
  }
};
template <int R>
struct AccumulateOp {
  static HWY_INLINE void Run(const TileJob<float>& job, float* o, const float* p,
                             const float* alpha, int klo, int khi, size_t col) {
    AccumulateColumns<R>(job, o, p, alpha, klo, khi, col);
  }
};

// Up to kMaxRows rows against the key block, in groups of kGroupRows that each chunk of K and
// V serves in turn.
void Block(const TileJob<float>& job) {
  const TileTag d;
  const int N = static_cast<int>(hn::Lanes(d));
  const size_t D = static_cast<size_t>(job.D);
  const int groups = (job.rows + kGroupRows - 1) / kGroupRows;
  // Per group, the keys any of its rows sees; score chunks and P V skip the rest.
  int klo[kMaxRows / kGroupRows], khi[kMaxRows / kGroupRows];
  int all_lo = kKeyBlock, all_hi = 0;
  for (int g = 0; g < groups; ++g) {
    klo[g] = kKeyBlock, khi[g] = 0;
    for (int r = g * kGroupRows; r < std::min(job.rows, (g + 1) * kGroupRows); ++r) {
      if (job.lo[r] >= job.hi[r]) continue;
      klo[g] = std::min(klo[g], job.lo[r]);
      khi[g] = std::max(khi[g], job.hi[r]);
    }
    all_lo = std::min(all_lo, klo[g]);
    all_hi = std::max(all_hi, khi[g]);
  }
  if (all_lo >= all_hi) return;
  auto group_rows = [&](int g) { return std::min(kGroupRows, job.rows - g * kGroupRows); };

  alignas(64) float s[kMaxRows][kKeyBlock];
  for (int k0 = all_lo / (2 * N) * (2 * N); k0 < all_hi; k0 += 2 * N)
    for (int g = 0; g < groups; ++g)
      if (k0 < khi[g] && k0 + 2 * N > klo[g])
        ForRows<ScoresOp>(group_rows(g), job, job.q + g * kGroupRows * D, k0, s[g * kGroupRows]);

  float alpha[kMaxRows];
  for (int r = 0; r < job.rows; ++r)
    alpha[r] = SoftmaxRow(s[r], job.lo[r], job.hi[r], job.c, job.m[r], job.l[r]);

  size_t col = 0;
  for (; col + 2 * N <= D; col += 2 * N)
    for (int g = 0; g < groups; ++g)
      ForRows<AccumulateOp>(group_rows(g), job, job.o + g * kGroupRows * D, s[g * kGroupRows],
                            alpha + g * kGroupRows, klo[g], std::max(klo[g], khi[g]), col);
  // Columns past the last whole chunk (D not a multiple of 2N), one at a time.
  for (; col < D; ++col) {
    for (int r = 0; r < job.rows; ++r) {
      float acc = alpha[r] * job.o[r * D + col];
      for (int j = all_lo; j < all_hi; ++j)
        acc += s[r][j] * job.v[forward::packed_value_index(col, j)];
      job.o[r * D + col] = acc;
    }
  }
}

}  // namespace

forward::Tiles<float> ForwardTiles() {
  return {Block, kMaxRows, forward::Layout::panels};
}

}  // namespace paralab::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace paralab::kernels::cpu {
HWY_EXPORT(ForwardTiles);
namespace forward {
Tiles<float> simd_forward_tiles() {
  return HWY_DYNAMIC_DISPATCH(ForwardTiles)();
}
}  // namespace forward
}  // namespace paralab::kernels::cpu
#endif
