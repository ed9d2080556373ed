// attention_backward_simd.cpp: the attention backward's block operations
// (attention_backward_ops.hpp) over Highway, compiled for every instruction-set tier
// (foreach_target re-includes this file once per target); the avx512 tiers run the hand-written
// ones instead, so this file is not compiled for them.
//
// Registers: as in the forward tiles, 6 rows x 2 vectors of N floats (12 accumulators) per
// micro-kernel, named variables rather than arrays (SVE vectors are sizeless). The score
// products run key chunk by key chunk (2N keys of the packed block, D x 2N floats that stay in
// L1) over every 6-row group of the query tile; the updates column chunk by column chunk
// (2N columns of the K rows of b) over every 6-row group of the output.
#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS (HWY_AVX3 | HWY_AVX3_DL)
#endif
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/attention_backward_simd.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cpu/attention_backward_ops.hpp"
#include "kernels/cpu/simd-inl.hpp"

HWY_BEFORE_NAMESPACE();
namespace paralab::kernels::cpu::HWY_NAMESPACE {
namespace {

using backward::kKeyBlock;
using backward::ScoreTile;
using backward::TileOps;
using backward::Update;

// At most 8 lanes: a key chunk of 2N keys then divides the 64 keys of a block on every target.
using TileTag = hn::CappedTag<float, 8>;
constexpr int kGroupRows = 6;

#define PARALAB_ZERO_ROWS(d)                 \
  auto a00 = hn::Zero(d), a01 = hn::Zero(d); \
  auto a10 = hn::Zero(d), a11 = hn::Zero(d); \
  auto a20 = hn::Zero(d), a21 = hn::Zero(d); \
  auto a30 = hn::Zero(d), a31 = hn::Zero(d); \
  auto a40 = hn::Zero(d), a41 = hn::Zero(d); \
  auto a50 = hn::Zero(d), a51 = hn::Zero(d)
#define PARALAB_FOR_ROWS(OP)              \
  do {                                    \
    if constexpr (R > 0) OP(0, a00, a01); \
    if constexpr (R > 1) OP(1, a10, a11); \
    if constexpr (R > 2) OP(2, a20, a21); \
    if constexpr (R > 3) OP(3, a30, a31); \
    if constexpr (R > 4) OP(4, a40, a41); \
    if constexpr (R > 5) OP(5, a50, a51); \
  } while (0)

// For rows [r0, r0 + R) of the tile and keys [k0, k0 + 2N): acc = a_r . bt[:, k], then
// finish(r, acc_lo, acc_hi) per row (r counted from r0).
template <int R, class Finish>
HWY_INLINE void DotChunk(const ScoreTile& t, int r0, int k0, const Finish& finish) {
  const TileTag d;
  const size_t N = hn::Lanes(d);
  PARALAB_ZERO_ROWS(d);
  const float* HWY_RESTRICT a = t.a + r0 * t.lda;
  const float* HWY_RESTRICT b = t.bt + k0;
  for (int x = 0; x < t.D; ++x, b += kKeyBlock) {
    const auto b_lo = hn::LoadU(d, b), b_hi = hn::LoadU(d, b + N);
#define PARALAB_DOT(r, lo, hi)                    \
  {                                               \
    const auto ar = hn::Set(d, a[(r)*t.lda + x]); \
    lo = hn::MulAdd(ar, b_lo, lo);                \
    hi = hn::MulAdd(ar, b_hi, hi);                \
  }
    PARALAB_FOR_ROWS(PARALAB_DOT);
#undef PARALAB_DOT
  }
#define PARALAB_FINISH(r, lo, hi) finish(r, lo, hi)
  PARALAB_FOR_ROWS(PARALAB_FINISH);
#undef PARALAB_FINISH
}

template <int R>
HWY_INLINE void ProbabilitiesChunk(const ScoreTile& t, int r0, int k0) {
  const TileTag d;
  const int N = static_cast<int>(hn::Lanes(d));
  const auto mul = hn::Set(d, t.mul);
  DotChunk<R>(t, r0, k0, [&](int r, auto lo, auto hi) {
    const int row = r0 + r;
    const auto bias = hn::Set(d, t.bias[row]);
    const uint64_t bits = t.mask[row] >> k0;
    float* out = t.out + row * kKeyBlock + k0;
    const auto p_lo = Exp2(d, hn::MulSub(lo, mul, bias));
    const auto p_hi = Exp2(d, hn::MulSub(hi, mul, bias));
    hn::StoreU(hn::IfThenElseZero(MaskFromBits(d, static_cast<uint32_t>(bits)), p_lo), d, out);
    hn::StoreU(hn::IfThenElseZero(MaskFromBits(d, static_cast<uint32_t>(bits >> N)), p_hi), d,
               out + N);
  });
}

template <int R>
HWY_INLINE void DscoresChunk(const ScoreTile& t, int r0, int k0) {
  const TileTag d;
  const int N = static_cast<int>(hn::Lanes(d));
  const auto mul = hn::Set(d, t.mul);
  DotChunk<R>(t, r0, k0, [&](int r, auto lo, auto hi) {
    const int row = r0 + r;
    const auto delta = hn::Set(d, t.bias[row]);
    const float* p = t.p + row * kKeyBlock + k0;
    float* out = t.out + row * kKeyBlock + k0;
    hn::StoreU(hn::Mul(hn::Mul(mul, hn::LoadU(d, p)), hn::Sub(lo, delta)), d, out);
    hn::StoreU(hn::Mul(hn::Mul(mul, hn::LoadU(d, p + N)), hn::Sub(hi, delta)), d, out + N);
  });
}

// Every 6-row group of the tile on one key chunk before the next chunk.
template <template <int> class Chunk>
HWY_INLINE void ForChunksAndRows(const ScoreTile& t) {
  const TileTag d;
  const int N2 = 2 * static_cast<int>(hn::Lanes(d));
  for (int k0 = 0; k0 < kKeyBlock; k0 += N2) {
    int r0 = 0;
    for (; r0 + kGroupRows <= t.rows; r0 += kGroupRows) Chunk<kGroupRows>::Run(t, r0, k0);
    switch (t.rows - r0) {
      case 1:
        Chunk<1>::Run(t, r0, k0);
        break;
      case 2:
        Chunk<2>::Run(t, r0, k0);
        break;
      case 3:
        Chunk<3>::Run(t, r0, k0);
        break;
      case 4:
        Chunk<4>::Run(t, r0, k0);
        break;
      case 5:
        Chunk<5>::Run(t, r0, k0);
        break;
      default:
        break;
    }
  }
}

template <int R>
struct ProbabilitiesOp {
  static HWY_INLINE void Run(const ScoreTile& t, int r0, int k0) {
    ProbabilitiesChunk<R>(t, r0, k0);
  }
};
template <int R>
struct DscoresOp {
  static HWY_INLINE void Run(const ScoreTile& t, int r0, int k0) { DscoresChunk<R>(t, r0, k0); }
};

void Probabilities(const ScoreTile& t) {
  ForChunksAndRows<ProbabilitiesOp>(t);
}
void Dscores(const ScoreTile& t) {
  ForChunksAndRows<DscoresOp>(t);
}

// c[i0 + r, col : col + 2N) += sum_k a[(i0 + r) * a_row + k * a_col] * b[k * ldb + col ...].
template <int R>
HWY_INLINE void UpdateBlock(const Update& u, int i0, size_t col) {
  const TileTag d;
  const size_t N = hn::Lanes(d);
  float* HWY_RESTRICT c = u.c + i0 * u.ldc + col;
  PARALAB_ZERO_ROWS(d);
#define PARALAB_LOAD(r, lo, hi)           \
  {                                       \
    lo = hn::LoadU(d, c + (r)*u.ldc);     \
    hi = hn::LoadU(d, c + (r)*u.ldc + N); \
  }
  PARALAB_FOR_ROWS(PARALAB_LOAD);
#undef PARALAB_LOAD
  const float* HWY_RESTRICT a = u.a + i0 * u.a_row;
  const float* HWY_RESTRICT b = u.b + col;
  for (int k = 0; k < u.K; ++k, b += u.ldb) {
    const auto b_lo = hn::LoadU(d, b), b_hi = hn::LoadU(d, b + N);
    const float* ak = a + k * u.a_col;
#define PARALAB_FMA(r, lo, hi)                  \
  {                                             \
    const auto x = hn::Set(d, ak[(r)*u.a_row]); \
    lo = hn::MulAdd(x, b_lo, lo);               \
    hi = hn::MulAdd(x, b_hi, hi);               \
  }
    PARALAB_FOR_ROWS(PARALAB_FMA);
#undef PARALAB_FMA
  }
#define PARALAB_STORE(r, lo, hi)          \
  {                                       \
    hn::StoreU(lo, d, c + (r)*u.ldc);     \
    hn::StoreU(hi, d, c + (r)*u.ldc + N); \
  }
  PARALAB_FOR_ROWS(PARALAB_STORE);
#undef PARALAB_STORE
}

// Column chunks of 2N (each over every 6-row group of the output, so the chunk of b stays
// in L1), then the remaining columns one at a time.
void UpdateOp(const Update& u) {
  const TileTag d;
  const size_t N2 = 2 * hn::Lanes(d);
  const size_t D = static_cast<size_t>(u.D);
  size_t col = 0;
  for (; col + N2 <= D; col += N2) {
    int i0 = 0;
    for (; i0 + kGroupRows <= u.I; i0 += kGroupRows) UpdateBlock<kGroupRows>(u, i0, col);
    switch (u.I - i0) {
      case 1:
        UpdateBlock<1>(u, i0, col);
        break;
      case 2:
        UpdateBlock<2>(u, i0, col);
        break;
      case 3:
        UpdateBlock<3>(u, i0, col);
        break;
      case 4:
        UpdateBlock<4>(u, i0, col);
        break;
      case 5:
        UpdateBlock<5>(u, i0, col);
        break;
      default:
        break;
    }
  }
  for (; col < D; ++col)
    for (int i = 0; i < u.I; ++i) {
      float acc = u.c[i * u.ldc + col];
      for (int k = 0; k < u.K; ++k) acc += u.a[i * u.a_row + k * u.a_col] * u.b[k * u.ldb + col];
      u.c[i * u.ldc + col] = acc;
    }
}

#undef PARALAB_ZERO_ROWS
#undef PARALAB_FOR_ROWS

// out[r] = a_r . b_r: FP32 lanes, summed in double at the end.
void RowDots(int rows, int D, const float* a, const float* b, size_t ld, float* out) {
  const TileTag d;
  const int N = static_cast<int>(hn::Lanes(d));
  for (int r = 0; r < rows; ++r) {
    const float* ar = a + r * ld;
    const float* br = b + r * ld;
    auto sum = hn::Zero(d);
    int x = 0;
    for (; x + N <= D; x += N) sum = hn::MulAdd(hn::LoadU(d, ar + x), hn::LoadU(d, br + x), sum);
    alignas(64) float lanes[8];
    hn::Store(sum, d, lanes);
    double total = 0;
    for (int i = 0; i < N; ++i) total += lanes[i];
    for (; x < D; ++x) total += static_cast<double>(ar[x]) * br[x];
    out[r] = static_cast<float>(total);
  }
}

}  // namespace

const TileOps* BackwardOps() {
  static constexpr TileOps ops = {Probabilities, Dscores, UpdateOp, RowDots};
  return &ops;
}

}  // namespace paralab::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace paralab::kernels::cpu {
HWY_EXPORT(BackwardOps);
namespace backward {
const TileOps& simd_backward_ops() {
  return *HWY_DYNAMIC_DISPATCH(BackwardOps)();
}
}  // namespace backward
}  // namespace paralab::kernels::cpu
#endif
