// format.cpp: row layouts, quantisation and rounding (format.hpp).
#include "emb/format.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "core/bf16.hpp"
#include "core/errors.hpp"

namespace paralab::emb {

namespace {

constexpr float kInt8Epsilon = 1e-8f;  // FBGEMM's kEpsilon: keeps the inverse finite

void put_f32(uint8_t* p, float v) {
  std::memcpy(p, &v, 4);
}
float get_f32(const uint8_t* p) {
  float v;
  std::memcpy(&v, p, 4);
  return v;
}
void put_u16(uint8_t* p, uint16_t v) {
  std::memcpy(p, &v, 2);
}
uint16_t get_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// round((x - bias) * inverse) by the chosen rounding, clamped to [0, top].
int quantize_value(float x, float bias, float inverse, int top, RoundingKey r, int j) {
  const float v = (x - bias) * inverse;
  float q;
  if (r.mode == Rounding::nearest) {
    q = std::nearbyint(v);  // ties to even, as FBGEMM's lrintf
  } else {
    q = std::floor(v + static_cast<float>(uniform01(r.key, static_cast<uint64_t>(j))));
  }
  return static_cast<int>(std::clamp(q, 0.0f, static_cast<float>(top)));
}

void minmax(const float* x, int dim, float& lo, float& hi) {
  lo = x[0];
  hi = x[0];
  for (int j = 1; j < dim; ++j) {
    lo = std::min(lo, x[j]);
    hi = std::max(hi, x[j]);
  }
}

void quantize_int8(const float* x, int dim, uint8_t* out, RoundingKey r) {
  float lo, hi;
  minmax(x, dim, lo, hi);
  const float range = hi - lo;
  const float inverse = 255.0f / (range + kInt8Epsilon);
  for (int j = 0; j < dim; ++j)
    out[j] = static_cast<uint8_t>(quantize_value(x[j], lo, inverse, 255, r, j));
  put_f32(out + dim, range / 255.0f);
  put_f32(out + dim + 4, lo);
}

void quantize_int4(const float* x, int dim, uint8_t* out, RoundingKey r) {
  float lo, hi;
  minmax(x, dim, lo, hi);
  // FBGEMM rounds the bias and the scale to fp16 first, so the codes are
  // computed against the values the row will decode with.
  const uint16_t bias_h = float_to_half(lo);
  const float bias = half_to_float(bias_h);
  float scale = (hi - bias) / 15.0f;
  uint16_t scale_h = float_to_half(scale);
  scale = half_to_float(scale_h);
  if (!(scale > 0) || !std::isfinite(1.0f / scale)) {
    scale_h = float_to_half(1.0f);
    scale = 1.0f;
  }
  const float inverse = 1.0f / scale;
  const int bytes = (dim + 1) / 2;
  std::fill(out, out + bytes, uint8_t{0});
  for (int j = 0; j < dim; ++j) {
    const int q = quantize_value(x[j], bias, inverse, 15, r, j);
    out[j / 2] |= static_cast<uint8_t>(q << ((j & 1) * 4));
  }
  put_u16(out + bytes, scale_h);
  put_u16(out + bytes + 2, bias_h);
}

uint16_t float_to_bf16(float v) {
  return float_to_bf16_rne(v).bits;
}

}  // namespace

std::string to_string(Format f) {
  switch (f) {
    case Format::fp32:
      return "fp32";
    case Format::fp16:
      return "fp16";
    case Format::bf16:
      return "bf16";
    case Format::int8:
      return "int8";
    case Format::int4:
      return "int4";
  }
  return "?";
}

Format parse_format(const std::string& text) {
  for (Format f : {Format::fp32, Format::fp16, Format::bf16, Format::int8, Format::int4})
    if (text == to_string(f)) return f;
  throw UsageError("unknown row format '" + text + "' (known: fp32, fp16, bf16, int8, int4)");
}

std::string to_string(Rounding r) {
  return r == Rounding::nearest ? "nearest" : "stochastic";
}

Rounding parse_rounding(const std::string& text) {
  if (text == "nearest") return Rounding::nearest;
  if (text == "stochastic") return Rounding::stochastic;
  throw UsageError("unknown rounding '" + text + "' (known: nearest, stochastic)");
}

size_t row_bytes(Format f, int dim) {
  const auto d = static_cast<size_t>(dim);
  switch (f) {
    case Format::fp32:
      return 4 * d;
    case Format::fp16:
    case Format::bf16:
      return 2 * d;
    case Format::int8:
      return d + 8;
    case Format::int4:
      return (d + 1) / 2 + 4;
  }
  return 0;
}

size_t row_qparam_bytes(Format f) {
  return f == Format::int8 ? 8 : f == Format::int4 ? 4 : 0;
}

uint64_t hash_mix(uint64_t a, uint64_t b) {
  uint64_t z = a * 0x9e3779b97f4a7c15ull + b + 0x632be59bd9b4e019ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint16_t float_to_half(float value) {
  const uint32_t x = std::bit_cast<uint32_t>(value);
  const auto sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);   // NaN
  if (ax >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520: inf
  if (ax < 0x38800000u) {  // below 2^-14: a subnormal half, units of 2^-24
    const float units = std::bit_cast<float>(ax) * 16777216.0f;  // exact scaling
    return static_cast<uint16_t>(sign | static_cast<uint16_t>(std::nearbyint(units)));
  }
  const uint32_t rounded = ax + 0xfffu + ((ax >> 13) & 1u) - (112u << 23);
  return static_cast<uint16_t>(sign | (rounded >> 13));
}

float half_to_float(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t e = (bits >> 10) & 0x1fu, m = bits & 0x3ffu;
  if (e == 0) {
    const float v = static_cast<float>(m) * (1.0f / 16777216.0f);
    return sign ? -v : v;
  }
  if (e == 31) return std::bit_cast<float>(sign | 0x7f800000u | (m << 13));
  return std::bit_cast<float>(sign | ((e + 112u) << 23) | (m << 13));
}

float decode_16(Format f, uint16_t bits) {
  return f == Format::fp16 ? half_to_float(bits) : bf16_to_float(bf16{bits});
}

uint16_t round_to_16(Format f, float value, Rounding mode, double u) {
  const uint16_t a = f == Format::fp16 ? float_to_half(value) : float_to_bf16(value);
  if (mode == Rounding::nearest) return a;
  const float xa = decode_16(f, a);
  if (xa == value || !std::isfinite(value) || !std::isfinite(xa)) return a;
  // The other neighbour of value: one code further from or nearer to zero
  // (sign-magnitude codes), or the smallest subnormal of value's sign.
  uint16_t b;
  if ((a & 0x7fffu) == 0)
    b = static_cast<uint16_t>((std::signbit(value) ? 0x8000u : 0u) | 1u);
  else
    b = static_cast<uint16_t>(std::fabs(value) > std::fabs(xa) ? a + 1 : a - 1);
  const float xb = decode_16(f, b);
  if (!std::isfinite(xb)) return a;
  const double p = (static_cast<double>(value) - xa) / (static_cast<double>(xb) - xa);
  return u < p ? b : a;
}

void quantize_row(Format f, const float* x, int dim, uint8_t* out, RoundingKey rounding) {
  switch (f) {
    case Format::fp32:
      std::memcpy(out, x, 4 * static_cast<size_t>(dim));
      return;
    case Format::fp16:
    case Format::bf16:
      for (int j = 0; j < dim; ++j) {
        const double u = rounding.mode == Rounding::stochastic
                             ? uniform01(rounding.key, static_cast<uint64_t>(j))
                             : 0.0;
        put_u16(out + 2 * j, round_to_16(f, x[j], rounding.mode, u));
      }
      return;
    case Format::int8:
      quantize_int8(x, dim, out, rounding);
      return;
    case Format::int4:
      quantize_int4(x, dim, out, rounding);
      return;
  }
}

void dequantize_row(Format f, const uint8_t* row, int dim, float* out) {
  switch (f) {
    case Format::fp32:
      std::memcpy(out, row, 4 * static_cast<size_t>(dim));
      return;
    case Format::fp16:
    case Format::bf16:
      for (int j = 0; j < dim; ++j) out[j] = decode_16(f, get_u16(row + 2 * j));
      return;
    case Format::int8: {
      const float scale = get_f32(row + dim), bias = get_f32(row + dim + 4);
      for (int j = 0; j < dim; ++j) out[j] = static_cast<float>(row[j]) * scale + bias;
      return;
    }
    case Format::int4: {
      const int bytes = (dim + 1) / 2;
      const float scale = half_to_float(get_u16(row + bytes));
      const float bias = half_to_float(get_u16(row + bytes + 2));
      for (int j = 0; j < dim; ++j)
        out[j] = static_cast<float>((row[j / 2] >> ((j & 1) * 4)) & 15) * scale + bias;
      return;
    }
  }
}

}  // namespace paralab::emb
