// compress_simd.cpp: the compressor's vector stages (compress_simd.hpp) over Highway, compiled
// for every instruction-set tier but the avx512 ones, which keep their hand-written stages
// (foreach_target re-includes this file once per target). A loop runs whole vectors; tails
// run the scalar definitions, so the decisions and IEEE operations are those of the scalar
// code, lane by lane (this file is compiled with -ffp-contract=off: no product may fuse with
// a sum the decompressor computes apart).
#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS (HWY_AVX3 | HWY_AVX3_DL)
#endif
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/compress_simd.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "kernels/compress.hpp"
#include "kernels/compress_detail.hpp"
#include "kernels/cpu/compress_simd.hpp"
#include "kernels/cpu/simd-inl.hpp"

HWY_BEFORE_NAMESPACE();
namespace paralab::kernels::cpu::HWY_NAMESPACE {
namespace {

using compress::detail::kCodeOffset;
using compress::detail::kRadius;

using DF = FloatTag;
using DI32 = hn::RebindToSigned<DF>;
using DU32 = hn::RebindToUnsigned<DF>;
using DU16 = hn::Rebind<uint16_t, DF>;
using DI8 = hn::Rebind<int8_t, DF>;

constexpr uint32_t kNegativeZero = 0x80000000u;

// Whether the target's FP16 conversions are the hardware's, rounding to nearest even (F16C on
// AVX2, the Arm conversions); elsewhere Highway emulates them with truncation.
#if HWY_TARGET <= HWY_AVX2 || HWY_ARCH_ARM_A64
constexpr bool kHardwareHalf = true;
#else
constexpr bool kHardwareHalf = false;
#endif

}  // namespace

size_t QuantizeNone(const float* x, size_t n, float inverse, float step, float bound,
                    uint16_t* symbols, float* outliers, uint32_t* outlier_count, int32_t* code_lo,
                    int32_t* code_hi) {
  const DF df;
  const DI32 di;
  const DU32 du;
  const DU16 d16;
  const size_t N = hn::Lanes(df);
  const auto vinverse = hn::Set(df, inverse), vstep = hn::Set(df, step);
  const auto vbound = hn::Set(df, bound), radius = hn::Set(df, static_cast<float>(kRadius));
  const auto offset = hn::Set(di, static_cast<int32_t>(kCodeOffset));
  auto lo = hn::Set(di, std::numeric_limits<int32_t>::max());
  auto hi = hn::Set(di, std::numeric_limits<int32_t>::min());
  uint32_t kept_out = 0;
  size_t i = 0;
  for (; i + N <= n; i += N) {
    const auto v = hn::LoadU(df, x + i);
    const auto c = hn::Round(hn::Mul(v, vinverse));
    const auto recon = hn::Mul(c, vstep);
    const auto error = hn::Abs(hn::Sub(recon, v));
    auto good = hn::Le(hn::Abs(c), radius);  // false for NaN and inf
    good = hn::And(good, hn::Or(hn::Lt(error, vbound), hn::Eq(recon, v)));
    const auto negative_zero = hn::Eq(hn::BitCast(du, v), hn::Set(du, kNegativeZero));
    good = hn::AndNot(hn::RebindMask(df, negative_zero), good);
    const auto code = hn::NearestInt(hn::IfThenElseZero(good, c));
    const auto good_i = hn::RebindMask(di, good);
    lo = hn::IfThenElse(good_i, hn::Min(lo, code), lo);
    hi = hn::IfThenElse(good_i, hn::Max(hi, code), hi);
    const auto symbol = hn::IfThenElseZero(good_i, hn::Add(code, offset));
    hn::StoreU(hn::DemoteTo(d16, symbol), d16, symbols + i);  // symbols fit in 16 bits
    const auto bad = hn::Not(good);
    if (!hn::AllFalse(df, bad))
      kept_out += static_cast<uint32_t>(hn::CompressStore(v, bad, df, outliers + kept_out));
  }
  *outlier_count = kept_out;
  *code_lo = hn::GetLane(hn::MinOfLanes(di, lo));
  *code_hi = hn::GetLane(hn::MaxOfLanes(di, hi));
  return i;
}

size_t Dequantize(const uint16_t* h, size_t n, int32_t code_lo, float step, const float* outliers,
                  size_t count, float* out, size_t* used_out) {
  const DF df;
  const DI32 di;
  const DU32 du;
  const DU16 d16;
  const size_t N = hn::Lanes(df);
  const auto bias = hn::Set(di, code_lo - 1);
  const auto vstep = hn::Set(df, step);
  size_t used = 0, i = 0;
  for (; i + N <= n; i += N) {
    const auto symbols = hn::BitCast(di, hn::PromoteTo(du, hn::LoadU(d16, h + i)));
    hn::StoreU(hn::Mul(hn::ConvertTo(df, hn::Add(symbols, bias)), vstep), df, out + i);
    if (hn::AllFalse(di, hn::Eq(symbols, hn::Zero(di)))) continue;
    for (size_t j = i; j < i + N; ++j) {  // escapes take the next outliers, in order
      if (h[j] != 0) continue;
      if (used == count) {
        *used_out = count + 1;
        return j;
      }
      out[j] = outliers[used++];
    }
  }
  *used_out = used;
  return i;
}

size_t FiniteRange(const float* x, size_t n, float* lo_out, float* hi_out) {
  const DF df;
  const DU32 du;
  const size_t N = hn::Lanes(df);
  const float inf = std::numeric_limits<float>::infinity();
  auto lo = hn::Set(df, inf), hi = hn::Set(df, -inf);
  const auto exponent = hn::Set(du, 0x7f800000u);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    const auto v = hn::LoadU(df, x + i);
    const auto finite =
        hn::RebindMask(df, hn::Not(hn::Eq(hn::And(hn::BitCast(du, v), exponent), exponent)));
    lo = hn::IfThenElse(finite, hn::Min(lo, v), lo);
    hi = hn::IfThenElse(finite, hn::Max(hi, v), hi);
  }
  *lo_out = hn::GetLane(hn::MinOfLanes(df, lo));
  *hi_out = hn::GetLane(hn::MaxOfLanes(df, hi));
  return i;
}

void ToHalf(const float* in, uint16_t* out, size_t n) {
  size_t i = 0;
  if constexpr (kHardwareHalf) {
    const DF df;
    const hn::Rebind<hwy::float16_t, DF> dh;
    const size_t N = hn::Lanes(df);
    for (; i + N <= n; i += N)
      hn::StoreU(hn::DemoteTo(dh, hn::LoadU(df, in + i)), dh,
                 reinterpret_cast<hwy::float16_t*>(out + i));
  }
  for (; i < n; ++i) out[i] = compress::float_to_half(in[i]);
}

void FromHalf(const uint16_t* in, float* out, size_t n) {
  size_t i = 0;
  if constexpr (kHardwareHalf) {
    const DF df;
    const hn::Rebind<hwy::float16_t, DF> dh;
    const size_t N = hn::Lanes(df);
    for (; i + N <= n; i += N)
      hn::StoreU(hn::PromoteTo(df, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(in + i))),
                 df, out + i);
  }
  for (; i < n; ++i) out[i] = compress::half_to_float(in[i]);
}

float Int8Row(const float* x, size_t dim, int8_t* q) {
  const DF df;
  const DI8 d8;
  const size_t N = hn::Lanes(df);
  const auto finite_max = hn::Set(df, std::numeric_limits<float>::max());
  auto largest_v = hn::Zero(df);
  size_t i = 0;
  for (; i + N <= dim; i += N) {
    const auto a = hn::Abs(hn::LoadU(df, x + i));
    largest_v = hn::IfThenElse(hn::Le(a, finite_max), hn::Max(largest_v, a), largest_v);
  }
  float largest = hn::GetLane(hn::MaxOfLanes(df, largest_v));
  for (; i < dim; ++i) {
    const float a = std::fabs(x[i]);
    largest = a <= std::numeric_limits<float>::max() && a > largest ? a : largest;
  }
  const float scale = largest / 127.0f;
  const float inverse = largest > 0.0f ? 127.0f / largest : 0.0f;
  const auto vinverse = hn::Set(df, inverse);
  const auto high = hn::Set(df, 127.0f), low = hn::Set(df, -127.0f);
  for (i = 0; i + N <= dim; i += N) {
    auto v = hn::Mul(hn::LoadU(df, x + i), vinverse);
    v = hn::IfThenElseZero(hn::Eq(v, v), v);  // NaN (and 0 x inf) to 0
    v = hn::Round(hn::Min(high, hn::Max(low, v)));
    hn::StoreU(hn::DemoteTo(d8, hn::NearestInt(v)), d8, q + i);
  }
  for (; i < dim; ++i) {
    float v = x[i] * inverse;
    v = v == v ? v : 0.0f;
    v = std::min(127.0f, std::max(-127.0f, v));
    v = (v + 12582912.0f) - 12582912.0f;  // round to nearest even
    q[i] = static_cast<int8_t>(v);
  }
  return scale;
}

}  // namespace paralab::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace paralab::kernels::cpu {
HWY_EXPORT(QuantizeNone);
HWY_EXPORT(Dequantize);
HWY_EXPORT(FiniteRange);
HWY_EXPORT(ToHalf);
HWY_EXPORT(FromHalf);
HWY_EXPORT(Int8Row);
}  // namespace paralab::kernels::cpu

namespace paralab::kernels::compress::detail::simd {
size_t quantize_none(const float* x, size_t n, float inverse, float step, float bound,
                     uint16_t* symbols, float* outliers, uint32_t* outlier_count, int32_t* lo,
                     int32_t* hi) {
  return HWY_DYNAMIC_DISPATCH(cpu::QuantizeNone)(x, n, inverse, step, bound, symbols, outliers,
                                                 outlier_count, lo, hi);
}
size_t dequantize(const uint16_t* h, size_t n, int32_t code_lo, float step, const float* outliers,
                  size_t count, float* out, size_t* used) {
  return HWY_DYNAMIC_DISPATCH(cpu::Dequantize)(h, n, code_lo, step, outliers, count, out, used);
}
size_t finite_range(const float* x, size_t n, float* lo, float* hi) {
  return HWY_DYNAMIC_DISPATCH(cpu::FiniteRange)(x, n, lo, hi);
}
void to_half(const float* in, uint16_t* out, size_t n) {
  HWY_DYNAMIC_DISPATCH(cpu::ToHalf)(in, out, n);
}
void from_half(const uint16_t* in, float* out, size_t n) {
  HWY_DYNAMIC_DISPATCH(cpu::FromHalf)(in, out, n);
}
float int8_row(const float* x, size_t dim, int8_t* q) {
  return HWY_DYNAMIC_DISPATCH(cpu::Int8Row)(x, dim, q);
}
}  // namespace paralab::kernels::compress::detail::simd
#endif
