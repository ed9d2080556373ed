// simd-inl.hpp: vector helpers the Highway kernels share (2^x, lane masks, 64-bit multiply),
// compiled once per instruction-set tier. Include it after hwy/highway.h inside a file that
// foreach_target.h re-includes per target; the guard below toggles with each target (Highway's
// convention for per-target headers).

#if defined(PARALAB_KERNELS_CPU_SIMD_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef PARALAB_KERNELS_CPU_SIMD_INL_H_
#undef PARALAB_KERNELS_CPU_SIMD_INL_H_
#else
#define PARALAB_KERNELS_CPU_SIMD_INL_H_
#endif

#include <hwy/highway.h>

#include <cstdint>

HWY_BEFORE_NAMESPACE();
namespace paralab::kernels::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// The float vectors of the kernels: the target's full width, capped at 16 lanes (512 bits)
// so that a block of 64 keys is a whole number of pairs of vectors on every target,
// SVE's up-to-2048-bit vectors included.
using FloatTag = hn::CappedTag<float, 16>;

// 2^x to about 1e-7 relative for x <= 128: 2^x = 2^n 2^f with n = round(x), |f| <= 1/2, 2^f
// by a degree-6 polynomial (max relative error 1e-7 in float), 2^n put into the exponent
// bits. Below -126 (where 2^x is subnormal or less) the result is exactly 0: the kernels
// only take such values for probabilities far too small to matter, and masked lanes.
template <class D, class V = hn::Vec<D>>
HWY_INLINE V Exp2(D d, V x) {
  const hn::RebindToSigned<D> di;
  const auto tiny = hn::Lt(x, hn::Set(d, -126.0f));
  x = hn::Min(hn::Max(x, hn::Set(d, -126.0f)), hn::Set(d, 127.0f));
  const V n = hn::Round(x);
  const V f = hn::Sub(x, n);
  V p = hn::Set(d, 1.533757750e-4f);
  p = hn::MulAdd(p, f, hn::Set(d, 1.339985989e-3f));
  p = hn::MulAdd(p, f, hn::Set(d, 9.618519805e-3f));
  p = hn::MulAdd(p, f, hn::Set(d, 5.550329015e-2f));
  p = hn::MulAdd(p, f, hn::Set(d, 2.402264625e-1f));
  p = hn::MulAdd(p, f, hn::Set(d, 6.931471825e-1f));
  p = hn::MulAdd(p, f, hn::Set(d, 1.0f));
  const auto exponent = hn::ShiftLeft<23>(hn::Add(hn::ConvertTo(di, n), hn::Set(di, 127)));
  return hn::IfThenZeroElse(tiny, hn::Mul(p, hn::BitCast(d, exponent)));
}

// Lanes j0 + i (i < lanes) that fall in [lo, hi).
template <class D>
HWY_INLINE hn::Mask<D> LanesIn(D d, int j0, int lo, int hi) {
  const hn::RebindToSigned<D> di;
  const auto index = hn::Iota(di, j0);
  // (index > lo - 1: Highway 1.0 has no integer >= on x86.)
  return hn::RebindMask(
      d, hn::And(hn::Gt(index, hn::Set(di, lo - 1)), hn::Lt(index, hn::Set(di, hi))));
}

// Lanes i whose bit i of `bits` is set (lane counts up to 32).
template <class D>
HWY_INLINE hn::Mask<D> MaskFromBits(D d, uint32_t bits) {
  const hn::RebindToUnsigned<D> du;
  alignas(64) static constexpr uint32_t kLaneBits[32] = {
      1u << 0,  1u << 1,  1u << 2,  1u << 3,  1u << 4,  1u << 5,  1u << 6,  1u << 7,
      1u << 8,  1u << 9,  1u << 10, 1u << 11, 1u << 12, 1u << 13, 1u << 14, 1u << 15,
      1u << 16, 1u << 17, 1u << 18, 1u << 19, 1u << 20, 1u << 21, 1u << 22, 1u << 23,
      1u << 24, 1u << 25, 1u << 26, 1u << 27, 1u << 28, 1u << 29, 1u << 30, 1u << 31};
  return hn::RebindMask(d, hn::TestBit(hn::Set(du, bits), hn::LoadU(du, kLaneBits)));
}

// The low 64 bits of a * b per 64-bit lane, from 32 x 32 -> 64-bit products (MulEven), for
// targets without a 64-bit multiply: lo(a) lo(b) + ((hi(a) lo(b) + lo(a) hi(b)) << 32).
template <class D64, class V = hn::Vec<D64>>
HWY_INLINE V MulLow64(D64 d64, V a, V b) {
  const hn::Repartition<uint32_t, D64> d32;
  const V low = hn::MulEven(hn::BitCast(d32, a), hn::BitCast(d32, b));
  const V a_hi = hn::ShiftRight<32>(a), b_hi = hn::ShiftRight<32>(b);
  const V cross = hn::Add(hn::MulEven(hn::BitCast(d32, a_hi), hn::BitCast(d32, b)),
                          hn::MulEven(hn::BitCast(d32, a), hn::BitCast(d32, b_hi)));
  (void)d64;
  return hn::Add(low, hn::ShiftLeft<32>(cross));
}

}  // namespace paralab::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // PARALAB_KERNELS_CPU_SIMD_INL_H_
