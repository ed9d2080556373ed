// bf16_simd.cpp: the BF16 conversion paths of bf16_paths.hpp over Highway, compiled for every
// instruction-set tier (foreach_target re-includes this file once per target). All rounding is
// integer arithmetic on the FP32 bits, exactly the scalar definitions of core/bf16.hpp and
// kernels/bf16.hpp, so every tier gives the reference's bits (subnormals and NaN included).
// A loop runs whole vectors; a scalar head (to align streamed stores) and tail use the scalar
// definitions.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/bf16_simd.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <bit>
#include <cstdint>

#include "kernels/cpu/bf16_paths.hpp"
#include "kernels/cpu/simd-inl.hpp"

HWY_BEFORE_NAMESPACE();
namespace paralab::kernels::cpu::HWY_NAMESPACE {
namespace {

using DF = FloatTag;
using DU32 = hn::RebindToUnsigned<DF>;
using DI32 = hn::RebindToSigned<DF>;
using DU16 = hn::Rebind<uint16_t, DF>;
using VU32 = hn::Vec<DU32>;

constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ull;

// Whether the narrowed BF16 vector can be streamed: x86's non-temporal stores write whole
// 16-byte registers at 16-byte aligned addresses, which a half vector of SSE4's 4 lanes (8
// bytes) is not. (Arm's streaming stores take any vector.)
#if HWY_ARCH_X86
constexpr bool kStreamNarrow = hn::MaxLanes(DU16()) * sizeof(uint16_t) >= 16;
#else
constexpr bool kStreamNarrow = true;
#endif

// --- scalar definitions, for heads and tails -------------------------------------------------

uint16_t TruncateScalar(uint32_t bits) {
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  return static_cast<uint16_t>(bits >> 16);
}

uint16_t RoundScalar(float x, Rounding rounding, uint64_t seed, uint64_t index) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  switch (rounding) {
    case Rounding::nearest_even:
      return float_to_bf16_rne(x).bits;
    case Rounding::truncate:
      return TruncateScalar(bits);
    case Rounding::stochastic:
      return float_to_bf16_bits_sr(bits, stochastic_bits(seed, index));
  }
  return 0;
}

// --- vectors ---------------------------------------------------------------------------------

// NaN lanes (magnitude above the infinity's bits) as the reference makes them: the top half,
// quietened; others the plain top half.
HWY_INLINE VU32 TruncateWithNan(VU32 bits) {
  const DU32 du;
  const DI32 di;
  const auto magnitude = hn::BitCast(di, hn::And(bits, hn::Set(du, 0x7fffffffu)));
  const auto nan = hn::RebindMask(du, hn::Gt(magnitude, hn::Set(di, 0x7f800000)));
  const VU32 top = hn::ShiftRight<16>(bits);
  return hn::IfThenElse(nan, hn::Or(top, hn::Set(du, 0x40u)), top);
}

// Round to nearest even: (bits + 0x7fff + lsb) >> 16; NaN lanes quietened.
HWY_INLINE VU32 RoundNearestEven(VU32 bits) {
  const DU32 du;
  const auto lsb = hn::And(hn::ShiftRight<16>(bits), hn::Set(du, 1u));
  const VU32 rounded = hn::ShiftRight<16>(hn::Add(bits, hn::Add(hn::Set(du, 0x7fffu), lsb)));
  const DI32 di;
  const auto magnitude = hn::BitCast(di, hn::And(bits, hn::Set(du, 0x7fffffffu)));
  const auto nan = hn::RebindMask(du, hn::Gt(magnitude, hn::Set(di, 0x7f800000)));
  return hn::IfThenElse(nan, hn::Or(hn::ShiftRight<16>(bits), hn::Set(du, 0x40u)), rounded);
}

HWY_INLINE hn::Vec<DU16> Narrow(VU32 halves) {
  return hn::DemoteTo(DU16(), hn::BitCast(DI32(), halves));  // every lane <= 0xffff
}

HWY_INLINE hn::Vec<DF> Widen(hn::Vec<DU16> halves) {
  return hn::BitCast(DF(), hn::ShiftLeft<16>(hn::PromoteTo(DU32(), halves)));
}

#if HWY_TARGET != HWY_SCALAR
// stochastic_bits(seed, first + i + lane) for the N lanes of one float vector: SplitMix64's
// finaliser in 64-bit lanes (two vectors of N/2), the high words gathered in lane order.
HWY_INLINE VU32 RandomBits(uint64_t seed, uint64_t index) {
  const DU32 du;
  const hn::Repartition<uint64_t, DU32> d64;
  const size_t half = hn::Lanes(d64);
  alignas(64) static constexpr uint64_t kGoldenLanes[8] = {
      0, kGolden, 2 * kGolden, 3 * kGolden, 4 * kGolden, 5 * kGolden, 6 * kGolden, 7 * kGolden};
  const auto golden = hn::LoadU(d64, kGoldenLanes);
  const auto z0 = hn::Add(hn::Set(d64, seed + kGolden * (index + 1)), golden);
  const auto z1 = hn::Add(z0, hn::Set(d64, kGolden * half));
  const auto c1 = hn::Set(d64, 0xbf58476d1ce4e5b9ull), c2 = hn::Set(d64, 0x94d049bb133111ebull);
  auto mix = [&](auto z) {
    z = hn::Xor(z, hn::ShiftRight<30>(z));
    z = MulLow64(d64, z, c1);
    z = hn::Xor(z, hn::ShiftRight<27>(z));
    z = MulLow64(d64, z, c2);
    return hn::ShiftRight<32>(hn::Xor(z, hn::ShiftRight<31>(z)));
  };
  // The high words now sit in the even 32-bit lanes of each half.
  return hn::ConcatEven(du, hn::BitCast(du, mix(z1)), hn::BitCast(du, mix(z0)));
}
#endif

// Elements before p reaches a multiple of `bytes`.
template <class T>
size_t ToAlignment(const T* p, size_t bytes) {
  const size_t off = reinterpret_cast<uintptr_t>(p) % bytes;
  return off == 0 ? 0 : (bytes - off) / sizeof(T);
}

}  // namespace

void ConvertToBf16(const float* in, bf16* out, size_t n, Rounding rounding, uint64_t seed,
                   uint64_t first, bool stream) {
  const DF df;
  const DU32 du;
  const DU16 d16;
  const size_t N = hn::Lanes(df);
  auto* out16 = reinterpret_cast<uint16_t*>(out);
  stream = stream && kStreamNarrow;
#if HWY_TARGET == HWY_SCALAR
  if (rounding == Rounding::stochastic) {  // no 64-bit lanes to split the hash over
    for (size_t i = 0; i < n; ++i) out16[i] = RoundScalar(in[i], rounding, seed, first + i);
    return;
  }
#endif
  size_t i = stream ? std::min(n, ToAlignment(out16, N * sizeof(uint16_t))) : 0;
  for (size_t j = 0; j < i; ++j) out16[j] = RoundScalar(in[j], rounding, seed, first + j);
  for (; i + N <= n; i += N) {
    const VU32 bits = hn::BitCast(du, hn::LoadU(df, in + i));
    VU32 r;
    switch (rounding) {
      case Rounding::nearest_even:
        r = RoundNearestEven(bits);
        break;
      case Rounding::truncate:
        r = TruncateWithNan(bits);
        break;
      default: {
#if HWY_TARGET != HWY_SCALAR
        // float_to_bf16_bits_sr: add the low 16 random bits and truncate; lanes with an
        // all-ones exponent (inf, NaN) take the plain truncation.
        const auto random = hn::And(RandomBits(seed, first + i), hn::Set(du, 0xffffu));
        const VU32 exponent = hn::Set(du, 0x7f800000u);
        const auto special = hn::Eq(hn::And(bits, exponent), exponent);
        r = hn::IfThenElse(special, TruncateWithNan(bits),
                           hn::ShiftRight<16>(hn::Add(bits, random)));
#endif
        break;
      }
    }
    if (stream)
      hn::Stream(Narrow(r), d16, out16 + i);
    else
      hn::StoreU(Narrow(r), d16, out16 + i);
  }
  for (; i < n; ++i) out16[i] = RoundScalar(in[i], rounding, seed, first + i);
}

void WidenFromBf16(const bf16* in, float* out, size_t n, bool stream) {
  const DF df;
  const DU16 d16;
  const size_t N = hn::Lanes(df);
  const auto* in16 = reinterpret_cast<const uint16_t*>(in);
  size_t i = stream ? std::min(n, ToAlignment(out, N * sizeof(float))) : 0;
  for (size_t j = 0; j < i; ++j) out[j] = bf16_to_float(in[j]);
  for (; i + N <= n; i += N) {
    const auto wide = Widen(hn::LoadU(d16, in16 + i));
    if (stream)
      hn::Stream(wide, df, out + i);
    else
      hn::StoreU(wide, df, out + i);
  }
  for (; i < n; ++i) out[i] = bf16_to_float(in[i]);
}

// The reference's arithmetic lane by lane: each FP32 operation is the same IEEE operation.
void KahanAddBf16(bf16* w, bf16* c, const float* u, size_t n) {
  const DF df;
  const DU32 du;
  const DU16 d16;
  const size_t N = hn::Lanes(df);
  auto* w16 = reinterpret_cast<uint16_t*>(w);
  auto* c16 = reinterpret_cast<uint16_t*>(c);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    const auto weight = Widen(hn::LoadU(d16, w16 + i));
    const auto y = hn::Sub(hn::LoadU(df, u + i), Widen(hn::LoadU(d16, c16 + i)));
    const VU32 t = RoundNearestEven(hn::BitCast(du, hn::Add(weight, y)));
    const auto t_wide = hn::BitCast(df, hn::ShiftLeft<16>(t));
    const auto lost = hn::Sub(hn::Sub(t_wide, weight), y);
    hn::StoreU(Narrow(RoundNearestEven(hn::BitCast(du, lost))), d16, c16 + i);
    hn::StoreU(Narrow(t), d16, w16 + i);
  }
  for (; i < n; ++i) {
    const float weight = bf16_to_float(w[i]);
    const float y = u[i] - bf16_to_float(c[i]);
    const bf16 t = float_to_bf16_rne(weight + y);
    c[i] = float_to_bf16_rne((bf16_to_float(t) - weight) - y);
    w[i] = t;
  }
}

}  // namespace paralab::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace paralab::kernels::cpu {
HWY_EXPORT(ConvertToBf16);
HWY_EXPORT(WidenFromBf16);
HWY_EXPORT(KahanAddBf16);
namespace bf16_paths {
void simd_convert(const float* in, bf16* out, size_t n, Rounding rounding, uint64_t seed,
                  uint64_t first, bool stream) {
  HWY_DYNAMIC_DISPATCH(ConvertToBf16)(in, out, n, rounding, seed, first, stream);
}
void simd_widen(const bf16* in, float* out, size_t n, bool stream) {
  HWY_DYNAMIC_DISPATCH(WidenFromBf16)(in, out, n, stream);
}
void simd_kahan(bf16* w, bf16* c, const float* u, size_t n) {
  HWY_DYNAMIC_DISPATCH(KahanAddBf16)(w, c, u, n);
}
}  // namespace bf16_paths
}  // namespace paralab::kernels::cpu
#endif
