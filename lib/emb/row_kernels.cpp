// row_kernels.cpp: fused decode-and-add of one stored row (row_kernels.hpp).
#include "emb/row_kernels.hpp"

#include <bit>
#include <cstring>
#include <vector>

namespace paralab::emb {

namespace reference {

void accumulate_row(Format f, const uint8_t* row, int dim, float* out) {
  thread_local std::vector<float> decoded;
  decoded.resize(static_cast<size_t>(dim));
  dequantize_row(f, row, dim, decoded.data());
  for (int j = 0; j < dim; ++j) out[j] += decoded[static_cast<size_t>(j)];
}

}  // namespace reference

namespace {

void add_fp32(const uint8_t* row, int dim, float* out) {
  for (int j = 0; j < dim; ++j) {
    float v;
    std::memcpy(&v, row + 4 * j, 4);  // rows are byte buffers; memcpy is the legal load
    out[j] += v;
  }
}

void add_bf16(const uint8_t* row, int dim, float* out) {
  for (int j = 0; j < dim; ++j) {
    uint16_t b;
    std::memcpy(&b, row + 2 * j, 2);
    const uint32_t bits = static_cast<uint32_t>(b) << 16;
    float v;
    std::memcpy(&v, &bits, 4);
    out[j] += v;
  }
}

void add_fp16(const uint8_t* row, int dim, float* out) {
  // Branch-free decode (no F16C in the baseline ISA): the half's exponent and
  // mantissa shifted into a float's place and scaled by 2^112 rebias normals
  // and subnormals alike (a half subnormal becomes a float subnormal times
  // 2^112, exactly); inf and NaN get the all-ones exponent back.
  for (int j = 0; j < dim; ++j) {
    uint16_t b;
    std::memcpy(&b, row + 2 * j, 2);
    const uint32_t em = b & 0x7fffu;
    uint32_t bits = std::bit_cast<uint32_t>(std::bit_cast<float>(em << 13) * 0x1p112f);
    bits |= em >= 0x7c00u ? 0x7f800000u : 0u;
    bits |= static_cast<uint32_t>(b & 0x8000u) << 16;
    out[j] += std::bit_cast<float>(bits);
  }
}

void add_int8(const uint8_t* row, int dim, float* out) {
  float scale, bias;
  std::memcpy(&scale, row + dim, 4);
  std::memcpy(&bias, row + dim + 4, 4);
  for (int j = 0; j < dim; ++j) out[j] += static_cast<float>(row[j]) * scale + bias;
}

void add_int4(const uint8_t* row, int dim, float* out) {
  const int bytes = (dim + 1) / 2;
  uint16_t s, b;
  std::memcpy(&s, row + bytes, 2);
  std::memcpy(&b, row + bytes + 2, 2);
  const float scale = half_to_float(s), bias = half_to_float(b);
  const int pairs = dim / 2;
  for (int i = 0; i < pairs; ++i) {
    out[2 * i] += static_cast<float>(row[i] & 15) * scale + bias;
    out[2 * i + 1] += static_cast<float>(row[i] >> 4) * scale + bias;
  }
  if (dim & 1) out[dim - 1] += static_cast<float>(row[pairs] & 15) * scale + bias;
}

}  // namespace

void accumulate_row(Format f, const uint8_t* row, int dim, float* out) {
  switch (f) {
    case Format::fp32:
      add_fp32(row, dim, out);
      return;
    case Format::fp16:
      add_fp16(row, dim, out);
      return;
    case Format::bf16:
      add_bf16(row, dim, out);
      return;
    case Format::int8:
      add_int8(row, dim, out);
      return;
    case Format::int4:
      add_int4(row, dim, out);
      return;
  }
}

}  // namespace paralab::emb
