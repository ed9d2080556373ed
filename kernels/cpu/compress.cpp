// kernels/compress.hpp: the stream header, CRC32C, the baseline codecs (raw,
// FP16, BF16, INT8) and compress / inspect / decompress, which put the
// stages of compress_quantize.cpp and compress_dedup.cpp together.
//
// Header (80 bytes, little-endian; docs/compress.md):
//    0  4  magic "PLZC"            32  8  f64 requested bound value
//    4  2  version (1)             40  8  f64 absolute bound used
//    6  2  header bytes (80)       48  4  f32 quantisation step (0: lossless)
//    8  1  codec                   52  4  u32 sections (<= 3)
//    9  1  dtype (1: f32)          56 24  u64 bytes of each section
//   10  1  bound mode (0 none, 1 absolute, 2 relative)
//   11  1  predictor
//   12  4  CRC32C of the header (this field as 0) and all sections
//   16  8  u64 rows               24  8  u64 dim

#include <omp.h>
#include "kernels/cpu/x86_intrinsics.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <limits>
#include <string>

#include "kernels/bf16.hpp"
#include "kernels/compress_detail.hpp"
#include "kernels/cpu/compress_simd.hpp"
#include "kernels/cpu/isa.hpp"

#if defined(__aarch64__)
#include <arm_acle.h>
#include <sys/auxv.h>
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1 << 7)
#endif
#endif

namespace paralab::kernels::compress {

namespace detail {

void fail(StreamError::Problem problem, const std::string& message) {
  throw StreamError(problem, "compress: " + message);
}

void corrupt(const std::string& message) {
  fail(StreamError::Problem::corrupt, "corrupt stream: " + message);
}

void for_blocks(size_t n, int threads, const std::function<void(size_t)>& f) {
  if (threads <= 1 || n <= 1) {
    for (size_t b = 0; b < n; ++b) f(b);
    return;
  }
  const int team = static_cast<int>(std::min<size_t>(static_cast<size_t>(threads), n));
  std::exception_ptr error;
#pragma omp parallel for num_threads(team) schedule(dynamic, 1)
  for (size_t b = 0; b < n; ++b) {
    try {
      f(b);
    } catch (...) {
#pragma omp critical(paralab_compress_error)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace detail

namespace {

using namespace detail;
using paralab::kernels::cpu::Isa;
using paralab::kernels::cpu::isa_enabled;
using Problem = StreamError::Problem;

constexpr std::array<std::byte, 4> kMagic = {std::byte{'P'}, std::byte{'L'}, std::byte{'Z'},
                                             std::byte{'C'}};

size_t expected_sections(Codec codec) {
  switch (codec) {
    case Codec::raw:
    case Codec::fp16:
    case Codec::bf16:
      return 1;
    case Codec::int8:
    case Codec::quantize_huffman:
    case Codec::dedup:
      return 2;
    case Codec::dedup_quantize_huffman:
      return 3;
  }
  return 0;
}

bool known(Codec codec) {
  return static_cast<uint8_t>(codec) < kCodecs;
}

// Whether rows x dim float values, and one float per row (the int8 codec's
// scales), fit in size_t bytes. Without the per-row bound, a header with dim
// 0 and rows >= 2^62 passed, 4 x rows wrapped to 0 bytes of scales, and
// int8's decoder read scales past the stream (found by tests/fuzz).
bool shape_fits(uint64_t rows, uint64_t dim) {
  constexpr uint64_t max_floats = std::numeric_limits<size_t>::max() / sizeof(float);
  if (rows > max_floats || dim > max_floats) return false;
  if (rows == 0 || dim == 0) return true;
  return rows <= max_floats / dim;
}

// --- CRC32C ----------------------------------------------------------------------------

constexpr uint32_t kCastagnoli = 0x82f63b78u;  // reflected

constexpr std::array<std::array<uint32_t, 256>, 8> make_crc_tables() {
  std::array<std::array<uint32_t, 256>, 8> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1u) ? (c >> 1) ^ kCastagnoli : c >> 1;
    t[0][i] = c;
  }
  for (size_t k = 1; k < 8; ++k)
    for (uint32_t i = 0; i < 256; ++i) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xffu];
  return t;
}
constexpr auto kCrcTables = make_crc_tables();

// Slicing by 8 (state not inverted here).
uint32_t crc_portable(const unsigned char* p, size_t n, uint32_t crc) {
  const auto& t = kCrcTables;
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    w ^= crc;
    crc = t[7][w & 0xff] ^ t[6][(w >> 8) & 0xff] ^ t[5][(w >> 16) & 0xff] ^ t[4][(w >> 24) & 0xff] ^
          t[3][(w >> 32) & 0xff] ^ t[2][(w >> 40) & 0xff] ^ t[1][(w >> 48) & 0xff] ^ t[0][w >> 56];
  }
  for (; n > 0; --n) crc = (crc >> 8) ^ t[0][(crc ^ *p++) & 0xffu];
  return crc;
}

// a(x) b(x) mod P, both reflected (bit 31 holds x^0).
uint32_t multiply_mod(uint32_t a, uint32_t b) {
  uint32_t product = 0;
  for (int i = 0; i < 32; ++i, a <<= 1) {
    if (a & 0x80000000u) product ^= b;
    b = (b & 1u) ? (b >> 1) ^ kCastagnoli : b >> 1;
  }
  return product;
}

// The raw CRC state after `bytes` zero bytes, as a table: the map is linear,
// so the state's four bytes each look up their share.
struct ZeroBytes {
  std::array<std::array<uint32_t, 256>, 4> table{};
  explicit ZeroBytes(uint64_t bytes) {
    uint32_t power = 0x80000000u, square = 0x40000000u;  // x^0, x^1
    for (uint64_t k = 8 * bytes; k != 0; k >>= 1) {
      if (k & 1u) power = multiply_mod(square, power);
      square = multiply_mod(square, square);
    }
    for (uint32_t k = 0; k < 4; ++k)
      for (uint32_t v = 0; v < 256; ++v) table[k][v] = multiply_mod(power, v << (8 * k));
  }
  uint32_t operator()(uint32_t state) const {
    return table[0][state & 0xffu] ^ table[1][(state >> 8) & 0xffu] ^
           table[2][(state >> 16) & 0xffu] ^ table[3][state >> 24];
  }
};

// Three lanes of the CRC instruction side by side (one a cycle, 3 cycles of latency), joined:
// crc(A B C) = zeros(zeros(crc(A)) ^ crc(B)) ^ crc(C). Step8/Step1 are the instruction on 8
// bytes and on one byte.
template <class Step8, class Step1>
[[gnu::always_inline]] inline uint32_t crc_lanes(const unsigned char* p, size_t n, uint32_t crc,
                                                 Step8 step8, Step1 step1) {
  constexpr size_t kLane = 8192;
  if (n >= 3 * kLane) {
    static const ZeroBytes zeros(kLane);
    for (; n >= 3 * kLane; n -= 3 * kLane, p += 3 * kLane) {
      uint32_t a = crc, b = 0, c = 0;
      for (size_t j = 0; j < kLane; j += 8) {
        uint64_t wa, wb, wc;
        std::memcpy(&wa, p + j, 8);
        std::memcpy(&wb, p + kLane + j, 8);
        std::memcpy(&wc, p + 2 * kLane + j, 8);
        a = step8(a, wa);
        b = step8(b, wb);
        c = step8(c, wc);
      }
      crc = zeros(zeros(a) ^ b) ^ c;
    }
  }
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    crc = step8(crc, w);
  }
  for (; n > 0; --n) crc = step1(crc, *p++);
  return crc;
}

#if defined(__x86_64__)
// SSE4.2's crc32 instruction: the sse4 tier and above.
__attribute__((target("sse4.2"))) uint32_t crc_hardware(const unsigned char* p, size_t n,
                                                        uint32_t crc) {
  return crc_lanes(
      p, n, crc, [](uint32_t c, uint64_t w) __attribute__((target("sse4.2"))) {
        return static_cast<uint32_t>(_mm_crc32_u64(c, w));
      },
      [](uint32_t c, unsigned char b)
          __attribute__((target("sse4.2"))) { return _mm_crc32_u8(c, b); });
}
bool crc_in_hardware() {
  return isa_enabled(Isa::sse4);
}
#elif defined(__aarch64__)
// ARMv8's CRC32C instructions (optional in v8.0, required from v8.1: every Neoverse and
// Grace core has them), on the neon tier and above.
__attribute__((target("+crc"))) uint32_t crc_hardware(const unsigned char* p, size_t n,
                                                      uint32_t crc) {
  return crc_lanes(
      p, n, crc,
      [](uint32_t c, uint64_t w) __attribute__((target("+crc"))) { return __crc32cd(c, w); },
      [](uint32_t c, unsigned char b) __attribute__((target("+crc"))) { return __crc32cb(c, b); });
}
bool crc_in_hardware() {
  static const bool cpu_has = (getauxval(AT_HWCAP) & HWCAP_CRC32) != 0;
  return cpu_has && isa_enabled(Isa::neon);
}
#else
uint32_t crc_hardware(const unsigned char* p, size_t n, uint32_t crc) {
  return crc_portable(p, n, crc);
}
bool crc_in_hardware() {
  return false;
}
#endif

uint32_t crc_update(const std::byte* p, size_t n, uint32_t state) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(p);
  return crc_in_hardware() ? crc_hardware(bytes, n, state) : crc_portable(bytes, n, state);
}

// The stream's checksum: the header with its CRC field zeroed, then the rest.
uint32_t stream_crc(std::span<const std::byte> stream) {
  std::array<std::byte, kHeaderBytes> header;
  std::memcpy(header.data(), stream.data(), kHeaderBytes);
  std::memset(header.data() + 12, 0, 4);
  uint32_t state = crc_update(header.data(), kHeaderBytes, ~0u);
  state = crc_update(stream.data() + kHeaderBytes, stream.size() - kHeaderBytes, state);
  return ~state;
}

// --- FP16 --------------------------------------------------------------------------------

#if defined(__x86_64__)
#define PARALAB_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))

PARALAB_AVX512 __mmask16 lanes_left(size_t left) {
  return left >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << left) - 1);
}

PARALAB_AVX512 void to_half_avx512(const float* in, std::byte* out, size_t n) {
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 lanes = lanes_left(n - i);
    const __m512 v =
        lanes == 0xffff ? _mm512_loadu_ps(in + i) : _mm512_maskz_loadu_ps(lanes, in + i);
    const __m256i h = _mm512_cvt_roundps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    if (lanes == 0xffff)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 2 * i), h);
    else
      _mm256_mask_storeu_epi16(out + 2 * i, lanes, h);
  }
}

PARALAB_AVX512 void from_half_avx512(const std::byte* in, float* out, size_t n) {
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 lanes = lanes_left(n - i);
    const __m256i h = lanes == 0xffff
                          ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + 2 * i))
                          : _mm256_maskz_loadu_epi16(lanes, in + 2 * i);
    const __m512 v = _mm512_cvtph_ps(h);
    if (lanes == 0xffff)
      _mm512_storeu_ps(out + i, v);
    else
      _mm512_mask_storeu_ps(out + i, lanes, v);
  }
}

// One INT8 row: the scalar definition in to_int8 below, 16 lanes a step.
PARALAB_AVX512 void int8_row_avx512(const float* x, size_t dim, std::byte* scale, int8_t* q) {
  __m512 largest = _mm512_setzero_ps();
  const __m512 finite_max = _mm512_set1_ps(std::numeric_limits<float>::max());
  for (size_t i = 0; i < dim; i += 16) {
    const __mmask16 lanes = lanes_left(dim - i);
    const __m512 a = _mm512_abs_ps(_mm512_maskz_loadu_ps(lanes, x + i));
    const __mmask16 finite = lanes & _mm512_cmp_ps_mask(a, finite_max, _CMP_LE_OQ);
    largest = _mm512_mask_max_ps(largest, finite, largest, a);
  }
  const float top = _mm512_reduce_max_ps(largest);
  store(scale, top / 127.0f);
  const __m512 inverse = _mm512_set1_ps(top > 0.0f ? 127.0f / top : 0.0f);
  const __m512 high = _mm512_set1_ps(127.0f), low = _mm512_set1_ps(-127.0f);
  for (size_t i = 0; i < dim; i += 16) {
    const __mmask16 lanes = lanes_left(dim - i);
    __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(lanes, x + i), inverse);
    v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, v, _CMP_ORD_Q), v);  // NaN to 0
    v = _mm512_min_ps(high, _mm512_max_ps(low, v));
    v = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm512_mask_cvtsepi32_storeu_epi8(q + i, lanes, _mm512_cvtps_epi32(v));
  }
}

#undef PARALAB_AVX512
#endif  // __x86_64__

// The hand-written AVX-512 stages on the avx512 tier; Highway's elsewhere.
bool hand_written() {
#if defined(__x86_64__)
  return isa_enabled(Isa::avx512);
#else
  return false;
#endif
}

constexpr size_t kChunk = size_t{1} << 16;

// Stream bytes hold the 16-bit values at any alignment: misaligned chunks go through an
// aligned buffer.
void to_half(const float* in, std::byte* out, size_t n, int threads) {
  [[maybe_unused]] const bool hand = hand_written();
  for_blocks((n + kChunk - 1) / kChunk, threads, [&](size_t c) {
    const size_t first = c * kChunk, count = std::min(kChunk, n - first);
#if defined(__x86_64__)
    if (hand) return to_half_avx512(in + first, out + 2 * first, count);
#endif
    std::byte* at = out + 2 * first;
    if (reinterpret_cast<uintptr_t>(at) % alignof(uint16_t) == 0)
      return simd::to_half(in + first, reinterpret_cast<uint16_t*>(at), count);
    uint16_t* buffer = scratch<uint16_t, 13>(kChunk);
    simd::to_half(in + first, buffer, count);
    std::memcpy(at, buffer, 2 * count);
  });
}

void from_half(const std::byte* in, float* out, size_t n, int threads) {
  [[maybe_unused]] const bool hand = hand_written();
  for_blocks((n + kChunk - 1) / kChunk, threads, [&](size_t c) {
    const size_t first = c * kChunk, count = std::min(kChunk, n - first);
#if defined(__x86_64__)
    if (hand) return from_half_avx512(in + 2 * first, out + first, count);
#endif
    const std::byte* at = in + 2 * first;
    if (reinterpret_cast<uintptr_t>(at) % alignof(uint16_t) == 0)
      return simd::from_half(reinterpret_cast<const uint16_t*>(at), out + first, count);
    uint16_t* buffer = scratch<uint16_t, 13>(kChunk);
    std::memcpy(buffer, at, 2 * count);
    simd::from_half(buffer, out + first, count);
  });
}

// --- BF16 (kernels/bf16.hpp), in chunks small enough that cpu::convert stays
// on the calling thread; misaligned targets go through an aligned buffer. --

void to_bf16(const float* in, std::byte* out, size_t n, int threads) {
  for_blocks((n + kChunk - 1) / kChunk, threads, [&](size_t c) {
    const size_t first = c * kChunk, count = std::min(kChunk, n - first);
    std::byte* at = out + 2 * first;
    if (reinterpret_cast<uintptr_t>(at) % alignof(bf16) == 0) {
      cpu::convert(in + first, reinterpret_cast<bf16*>(at), count, Rounding::nearest_even);
    } else {
      bf16* buffer = scratch<bf16, 10>(kChunk);
      cpu::convert(in + first, buffer, count, Rounding::nearest_even);
      std::memcpy(at, buffer, 2 * count);
    }
  });
}

void from_bf16(const std::byte* in, float* out, size_t n, int threads) {
  for_blocks((n + kChunk - 1) / kChunk, threads, [&](size_t c) {
    const size_t first = c * kChunk, count = std::min(kChunk, n - first);
    const std::byte* at = in + 2 * first;
    if (reinterpret_cast<uintptr_t>(at) % alignof(bf16) == 0) {
      cpu::convert(reinterpret_cast<const bf16*>(at), out + first, count);
    } else {
      bf16* buffer = scratch<bf16, 10>(kChunk);
      std::memcpy(buffer, at, 2 * count);
      cpu::convert(buffer, out + first, count);
    }
  });
}

// --- INT8: per row, scale = max |finite x| / 127, q = round(x / scale). ---

void to_int8(const float* in, size_t rows, size_t dim, std::byte* scales, std::byte* values,
             int threads) {
  const size_t rows_per_block = std::max<size_t>(1, kChunk / std::max<size_t>(dim, 1));
  [[maybe_unused]] const bool hand = hand_written();
  for_blocks((rows + rows_per_block - 1) / rows_per_block, threads, [&](size_t b) {
    const size_t end = std::min(rows, (b + 1) * rows_per_block);
    for (size_t r = b * rows_per_block; r < end; ++r) {
      const float* x = in + r * dim;
#if defined(__x86_64__)
      if (hand) {
        int8_row_avx512(x, dim, scales + 4 * r, reinterpret_cast<int8_t*>(values + r * dim));
        continue;
      }
#endif
      // The scalar definition (Highway's int8_row runs it on the tail): scale = max |finite
      // x| / 127, q = round to even of x * (127 / max) clamped to +-127, NaN to 0.
      store(scales + 4 * r, simd::int8_row(x, dim, reinterpret_cast<int8_t*>(values + r * dim)));
    }
  });
}

void from_int8(const std::byte* scales, const std::byte* values, size_t rows, size_t dim,
               float* out, int threads) {
  const size_t rows_per_block = std::max<size_t>(1, kChunk / std::max<size_t>(dim, 1));
  for_blocks((rows + rows_per_block - 1) / rows_per_block, threads, [&](size_t b) {
    const size_t end = std::min(rows, (b + 1) * rows_per_block);
    for (size_t r = b * rows_per_block; r < end; ++r) {
      const float scale = load<float>(scales + 4 * r);
      const auto* q = reinterpret_cast<const int8_t*>(values + r * dim);
      float* x = out + r * dim;
      for (size_t j = 0; j < dim; ++j) x[j] = static_cast<float>(q[j]) * scale;
    }
  });
}

// --- header ------------------------------------------------------------------------------

std::string bytes_text(uint64_t n) {
  return std::to_string(n) + (n == 1 ? " byte" : " bytes");
}

}  // namespace

namespace detail {

void write_header(const Header& h, std::byte* out) {
  std::memset(out, 0, kHeaderBytes);
  std::memcpy(out, kMagic.data(), 4);
  store(out + 4, kVersion);
  store(out + 6, static_cast<uint16_t>(kHeaderBytes));
  store(out + 8, static_cast<uint8_t>(h.codec));
  store(out + 9, h.dtype);
  store(out + 10, h.mode);
  store(out + 11, static_cast<uint8_t>(h.predictor));
  store(out + 12, h.crc);
  store(out + 16, h.rows);
  store(out + 24, h.dim);
  store(out + 32, h.bound_value);
  store(out + 40, h.absolute_bound);
  store(out + 48, h.step);
  store(out + 52, h.sections);
  for (size_t s = 0; s < kMaxSections; ++s) store(out + 56 + 8 * s, h.section_bytes[s]);
}

Header read_header(std::span<const std::byte> stream, size_t& stream_bytes) {
  const size_t size = stream.size();
  if (size < 4 || std::memcmp(stream.data(), kMagic.data(), 4) != 0) {
    if (size < 4 && (size == 0 || std::memcmp(stream.data(), kMagic.data(), size) == 0))
      fail(Problem::truncated,
           "truncated stream: " + bytes_text(size) + ", shorter than its magic");
    fail(Problem::bad_magic, "bad magic: not a paralab compressed stream (expected \"PLZC\")");
  }
  if (size < kHeaderBytes)
    fail(Problem::truncated, "truncated stream: " + bytes_text(size) + ", less than the " +
                                 std::to_string(kHeaderBytes) + "-byte header");
  const std::byte* p = stream.data();
  const auto version = load<uint16_t>(p + 4);
  if (version != kVersion)
    fail(Problem::unsupported_version,
         "unsupported version " + std::to_string(version) + " (this code reads version 1)");
  if (load<uint16_t>(p + 6) != kHeaderBytes) corrupt("header size is not 80");
  Header h;
  const auto codec = load<uint8_t>(p + 8);
  if (codec >= kCodecs) fail(Problem::unknown_codec, "unknown codec " + std::to_string(codec));
  h.codec = static_cast<Codec>(codec);
  h.dtype = load<uint8_t>(p + 9);
  if (h.dtype != kDtypeF32)
    fail(Problem::unknown_codec, "unknown dtype " + std::to_string(h.dtype) + " (only 1: f32)");
  h.mode = load<uint8_t>(p + 10);
  if (h.mode > ErrorBound::relative)
    fail(Problem::unknown_codec, "unknown error-bound mode " + std::to_string(h.mode));
  const auto predictor = load<uint8_t>(p + 11);
  if (predictor > static_cast<uint8_t>(Predictor::lorenzo_row))
    fail(Problem::unknown_codec, "unknown predictor " + std::to_string(predictor));
  h.predictor = static_cast<Predictor>(predictor);
  h.crc = load<uint32_t>(p + 12);
  h.rows = load<uint64_t>(p + 16);
  h.dim = load<uint64_t>(p + 24);
  h.bound_value = load<double>(p + 32);
  h.absolute_bound = load<double>(p + 40);
  h.step = load<float>(p + 48);
  h.sections = load<uint32_t>(p + 52);
  if (h.sections != expected_sections(h.codec))
    corrupt(std::to_string(h.sections) + " sections for codec " + codec_name(h.codec));
  if (!shape_fits(h.rows, h.dim)) corrupt("shape too large for this machine");
  uint64_t total = kHeaderBytes;
  for (size_t s = 0; s < kMaxSections; ++s) {
    h.section_bytes[s] = load<uint64_t>(p + 56 + 8 * s);
    if (s >= h.sections && h.section_bytes[s] != 0) corrupt("size given for an unused section");
    if (h.section_bytes[s] > std::numeric_limits<uint64_t>::max() - total)
      fail(Problem::truncated, "truncated stream: section sizes beyond any buffer");
    total += h.section_bytes[s];
  }
  if (total > size)
    fail(Problem::truncated,
         "truncated stream: " + bytes_text(size) + ", the header says " + bytes_text(total));
  stream_bytes = static_cast<size_t>(total);
  return h;
}

}  // namespace detail

// --- the interface ----------------------------------------------------------------------

const char* codec_name(Codec codec) {
  switch (codec) {
    case Codec::raw:
      return "raw";
    case Codec::fp16:
      return "fp16";
    case Codec::bf16:
      return "bf16";
    case Codec::int8:
      return "int8";
    case Codec::quantize_huffman:
      return "quantize_huffman";
    case Codec::dedup:
      return "dedup";
    case Codec::dedup_quantize_huffman:
      return "dedup_quantize_huffman";
  }
  return "unknown";
}

bool is_error_bounded(Codec codec) {
  return codec == Codec::raw || codec == Codec::quantize_huffman || codec == Codec::dedup ||
         codec == Codec::dedup_quantize_huffman;
}

uint32_t crc32c(std::span<const std::byte> data, uint32_t crc) {
  return ~crc_update(data.data(), data.size(), ~crc);
}

uint16_t float_to_half(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  const auto sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  uint32_t a = bits & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x1ffu));
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520, or inf
  if (a < 0x38800000u) {
    // Below half's smallest normal: adding 0.5 puts the half subnormal's
    // units (2^-24) in the float's last place, rounded to nearest even.
    const float shifted = std::bit_cast<float>(a) + 0.5f;
    return static_cast<uint16_t>(sign | (std::bit_cast<uint32_t>(shifted) - 0x3f000000u));
  }
  const uint32_t odd = (a >> 13) & 1u;
  a += 0xc8000fffu + odd;  // rebias the exponent (-112 << 23) and round
  return static_cast<uint16_t>(sign | (a >> 13));
}

float half_to_float(uint16_t half) {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
  const uint32_t exponent = (half >> 10) & 0x1fu, mantissa = half & 0x3ffu;
  if (exponent == 0x1f)
    return std::bit_cast<float>(sign | 0x7f800000u | mantissa << 13 | (mantissa ? 0x400000u : 0u));
  if (exponent == 0) {
    const float magnitude = static_cast<float>(mantissa) * 0x1p-24f;
    return std::bit_cast<float>(sign | std::bit_cast<uint32_t>(magnitude));
  }
  return std::bit_cast<float>(sign | (exponent + 112) << 23 | mantissa << 13);
}

size_t max_compressed_bytes(size_t rows, size_t dim, const Params& params) {
  const size_t n = rows * dim;
  const size_t blocks = n / 16 + 2;  // more than any block count
  const size_t quantized = 16 + 65536 + 4 * (8 + 256) + 16 * blocks + 10 * n;
  const size_t index = 8 + 4 * rows;
  switch (params.codec) {
    case Codec::raw:
      return kHeaderBytes + 4 * n;
    case Codec::fp16:
    case Codec::bf16:
      return kHeaderBytes + 2 * n;
    case Codec::int8:
      return kHeaderBytes + 4 * rows + n;
    case Codec::quantize_huffman:
      return kHeaderBytes + quantized;
    case Codec::dedup:
      return kHeaderBytes + index + 4 * n;
    case Codec::dedup_quantize_huffman:
      return kHeaderBytes + index + quantized;
  }
  return 0;
}

size_t compress(const float* in, size_t rows, size_t dim, const Params& params,
                std::vector<std::byte>& out) {
  if (!known(params.codec)) throw std::invalid_argument("compress: unknown codec");
  if (params.threads < 1) throw std::invalid_argument("compress: threads < 1");
  if (params.bound.mode != ErrorBound::absolute && params.bound.mode != ErrorBound::relative)
    throw std::invalid_argument("compress: unknown error-bound mode");
  if (!(params.bound.value >= 0) || std::isinf(params.bound.value))
    throw std::invalid_argument("compress: bound negative, infinite or NaN");
  if (static_cast<uint8_t>(params.predictor) > static_cast<uint8_t>(Predictor::lorenzo_row))
    throw std::invalid_argument("compress: unknown predictor");
  if (!shape_fits(rows, dim)) throw std::invalid_argument("compress: rows x dim too large");
  const bool dedup = params.codec == Codec::dedup || params.codec == Codec::dedup_quantize_huffman;
  if (dedup && rows > UINT32_MAX) throw std::invalid_argument("compress: dedup needs rows < 2^32");
  const size_t n = rows * dim;
  const int threads = params.threads;

  Header h;
  h.codec = params.codec;
  h.rows = rows;
  h.dim = dim;
  h.sections = static_cast<uint32_t>(expected_sections(params.codec));
  if (is_error_bounded(params.codec)) h.mode = ErrorBound::absolute;  // lossless: absolute 0
  const size_t start = out.size();
  out.resize(start + kHeaderBytes);
  auto section = [&](size_t s, size_t bytes) {  // appends room for a section
    h.section_bytes[s] = bytes;
    const size_t at = out.size();
    out.resize(at + bytes);
    return out.data() + at;
  };
  auto quantize = [&](const float* values, size_t value_rows, size_t first_section) {
    h.mode = params.bound.mode;
    h.bound_value = params.bound.value;
    h.absolute_bound = absolute_bound(values, value_rows * dim, params.bound);
    h.predictor = params.predictor;
    const Quantizer q = make_quantizer(h.absolute_bound);
    h.step = q.step;
    append_quantized(values, value_rows, dim, q, params.predictor, threads, out,
                     h.section_bytes[first_section], h.section_bytes[first_section + 1]);
  };

  switch (params.codec) {
    case Codec::raw: {
      std::byte* at = section(0, 4 * n);
      if (n > 0) std::memcpy(at, in, 4 * n);
      break;
    }
    case Codec::fp16:
      to_half(in, section(0, 2 * n), n, threads);
      break;
    case Codec::bf16:
      to_bf16(in, section(0, 2 * n), n, threads);
      break;
    case Codec::int8: {
      section(0, 4 * rows);
      section(1, n);
      std::byte* scales = out.data() + start + kHeaderBytes;
      to_int8(in, rows, dim, scales, scales + 4 * rows, threads);
      break;
    }
    case Codec::quantize_huffman:
      quantize(in, rows, 0);
      break;
    case Codec::dedup:
    case Codec::dedup_quantize_huffman: {
      const Distinct distinct = find_distinct(in, rows, dim);
      const size_t index_start = out.size();
      append_index(distinct, rows, out);
      h.section_bytes[0] = out.size() - index_start;
      const size_t count = distinct.first.size();
      if (params.codec == Codec::dedup) {
        std::byte* at = section(1, 4 * count * dim);
        for (size_t j = 0; j < count && dim > 0; ++j)
          std::memcpy(at + 4 * j * dim, in + size_t{distinct.first[j]} * dim, 4 * dim);
        break;
      }
      const float* values = in;
      if (count < rows && dim > 0) {
        float* gathered = scratch<float, 5>(count * dim);
        for (size_t j = 0; j < count; ++j)
          std::memcpy(gathered + j * dim, in + size_t{distinct.first[j]} * dim, 4 * dim);
        values = gathered;
      }
      quantize(values, count, 1);
      break;
    }
  }
  write_header(h, out.data() + start);
  const std::span<const std::byte> stream(out.data() + start, out.size() - start);
  store(out.data() + start + 12, stream_crc(stream));
  return stream.size();
}

StreamInfo inspect(std::span<const std::byte> stream) {
  size_t stream_bytes = 0;
  const Header h = read_header(stream, stream_bytes);
  StreamInfo info;
  info.codec = h.codec;
  info.predictor = h.predictor;
  info.rows = static_cast<size_t>(h.rows);
  info.dim = static_cast<size_t>(h.dim);
  info.error_bounded = is_error_bounded(h.codec);
  if (h.mode != kModeNone) info.bound = {static_cast<ErrorBound::Mode>(h.mode), h.bound_value};
  info.absolute_bound = h.absolute_bound;
  info.step = h.step;
  info.stream_bytes = stream_bytes;
  info.sections = h.sections;
  for (size_t s = 0; s < kMaxSections; ++s) info.section_bytes[s] = h.section_bytes[s];
  return info;
}

void decompress(std::span<const std::byte> stream, float* out, size_t rows, size_t dim,
                const DecodeOptions& options) {
  size_t total = 0;
  const Header h = read_header(stream, total);
  if (stream.size() != total)
    fail(Problem::trailing_bytes,
         bytes_text(stream.size() - total) + " after the stream's " + bytes_text(total));
  if (options.verify_checksum) {
    const uint32_t computed = stream_crc(stream);
    if (computed != h.crc) {
      char text[96];
      std::snprintf(text, sizeof text, "checksum mismatch (stored %08x, computed %08x)", h.crc,
                    computed);
      fail(Problem::checksum_mismatch, text);
    }
  }
  if (h.rows != rows || h.dim != dim)
    fail(Problem::shape_mismatch, "shape mismatch: the stream holds " + std::to_string(h.rows) +
                                      " x " + std::to_string(h.dim) + ", the caller expects " +
                                      std::to_string(rows) + " x " + std::to_string(dim));
  const int threads = std::max(1, options.threads);
  const size_t n = rows * dim;
  std::array<std::span<const std::byte>, kMaxSections> part;
  size_t at = kHeaderBytes;
  for (size_t s = 0; s < h.sections; ++s) {
    part[s] = stream.subspan(at, h.section_bytes[s]);
    at += h.section_bytes[s];
  }
  auto expect = [&](size_t s, uint64_t bytes, const char* what) {
    if (part[s].size() != bytes)
      corrupt(std::string(what) + " section holds " + bytes_text(part[s].size()) + ", expected " +
              bytes_text(bytes));
  };
  const bool quantizing =
      h.codec == Codec::quantize_huffman || h.codec == Codec::dedup_quantize_huffman;
  if (!quantizing && (h.step != 0.0f || h.predictor != Predictor::none))
    corrupt("a quantisation step or predictor for a codec that does not quantise");

  switch (h.codec) {
    case Codec::raw:
      expect(0, uint64_t{4} * n, "raw");
      if (n > 0) std::memcpy(out, part[0].data(), 4 * n);
      break;
    case Codec::fp16:
      expect(0, uint64_t{2} * n, "fp16");
      from_half(part[0].data(), out, n, threads);
      break;
    case Codec::bf16:
      expect(0, uint64_t{2} * n, "bf16");
      from_bf16(part[0].data(), out, n, threads);
      break;
    case Codec::int8:
      expect(0, uint64_t{4} * rows, "int8 scale");
      expect(1, n, "int8 value");
      from_int8(part[0].data(), part[1].data(), rows, dim, out, threads);
      break;
    case Codec::quantize_huffman:
      decode_quantized(part[0], part[1], out, rows, dim, h.step, h.predictor, threads);
      break;
    case Codec::dedup:
    case Codec::dedup_quantize_huffman: {
      size_t distinct = 0;
      const std::vector<uint32_t> index = read_index(part[0], rows, distinct);
      if (h.codec == Codec::dedup) {
        expect(1, uint64_t{4} * distinct * dim, "distinct rows");
        if (distinct * dim > 0) std::memcpy(out, part[1].data(), 4 * distinct * dim);
      } else {
        decode_quantized(part[1], part[2], out, distinct, dim, h.step, h.predictor, threads);
      }
      expand_rows(out, dim, index);
      break;
    }
  }
}

}  // namespace paralab::kernels::compress
