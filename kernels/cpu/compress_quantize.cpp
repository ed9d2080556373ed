// The error-bounded quantiser of kernels/compress.hpp and its Huffman
// stage: the codes and outlier sections, and the lossless byte-plane layout
// used when the bound is 0.
//
// Quantisation (predictor none): t = x * (1 / step), c = round_to_even(t),
// recon = c * step (one float multiply: the decompressor's arithmetic). A
// value is kept as code c when |c| <= 32767, fl(|recon - x|) < bound (the
// largest float <= the requested bound) or recon == x, and x is not -0;
// otherwise it is an outlier, stored verbatim. fl(d) < bound implies the
// exact |recon - x| < bound, because rounding is monotonic and bound is a
// float (docs/compress.md). Predictor lorenzo_row: recon = fma(c, step,
// pred), pred the previous reconstructed value in the row (an outlier's own
// value if finite, else 0).
//
// Every path (hand-written AVX-512 on the avx512 tier, Highway on the others:
// compress_simd.cpp, scalar tails) makes the same decisions with the same
// IEEE operations. The products and differences are kept apart from each
// other (embedded-rounding intrinsics on AVX-512, -ffp-contract=off and an
// optimisation barrier in scalar code), so the compiler cannot contract them
// into an FMA whose single rounding the decompressor would not reproduce.
//
// Sections. Codes: u32 values per block B, u32 blocks, i32 code_lo,
// blocks x u32 outliers in the block, then a Huffman blob over the symbols
// h = 0 (outlier) or code - code_lo + 1. Outliers: the outlier values' bits,
// in order. Lossless (step 0): u32 B, u32 blocks, then four Huffman blobs,
// one per byte of the values (least significant first); no outliers.

#include <omp.h>
#include "kernels/cpu/x86_intrinsics.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cfloat>
#include <climits>
#include <cmath>
#include <exception>
#include <limits>

#include "kernels/compress_detail.hpp"
#include "kernels/cpu/compress_simd.hpp"
#include "kernels/cpu/huffman.hpp"
#include "kernels/cpu/isa.hpp"

namespace paralab::kernels::compress::detail {

namespace {

using paralab::kernels::cpu::Isa;
using paralab::kernels::cpu::isa_enabled;

constexpr size_t kSymbols = size_t{1} << 16;
constexpr size_t kTargetBlock = 4096;
// (t + kMagic) - kMagic rounds |t| < 2^22 to an integer, ties to even.
constexpr float kMagic = 12582912.0f;
constexpr float kSmallEnough = 4194304.0f;  // 2^22
constexpr uint32_t kNegativeZero = 0x80000000u;

// Keeps the compiler from contracting the operation producing x with one
// consuming it (e.g. a product and a difference into one FMA).
inline float opaque(float x) {
#if defined(__x86_64__) || defined(__i386__)
  __asm__("" : "+x"(x));
#else
  volatile float v = x;
  x = v;
#endif
  return x;
}

uint32_t bits_of(float x) {
  return std::bit_cast<uint32_t>(x);
}
bool is_finite(float x) {
  return (bits_of(x) & 0x7f800000u) != 0x7f800000u;
}

// What one block's quantisation found: outliers and the range of codes kept.
struct BlockStats {
  uint32_t outliers = 0;
  int32_t lo = INT32_MAX, hi = INT32_MIN;  // lo > hi: no codes
};

// --- one value, the scalar definition ---------------------------------------------------

// Returns whether x is kept as code *code, given the prediction (0 for
// predictor none); *recon is the decompressor's value.
template <bool kLorenzo>
[[gnu::always_inline]] inline bool quantize_one(float x, float prediction, const Quantizer& q,
                                                int32_t* code, float* recon) {
  const float t = opaque((kLorenzo ? x - prediction : x) * q.inverse);
  if (!(std::fabs(t) < kSmallEnough)) return false;  // also NaN and inf
  const float c = opaque(t + kMagic) - kMagic;
  if (!(std::fabs(c) <= static_cast<float>(kRadius))) return false;
  const float r = kLorenzo ? std::fma(c, q.step, prediction) : opaque(c * q.step);
  const float error = std::fabs(opaque(r - x));
  if (!(error < q.bound || r == x) || bits_of(x) == kNegativeZero) return false;
  *code = static_cast<int32_t>(c);
  *recon = r;
  return true;
}

// Values [first, n), after a vector path took [0, first) into stats.
BlockStats quantize_none_portable(const float* x, size_t first, size_t n, const Quantizer& q,
                                  uint16_t* symbols, float* outliers, BlockStats stats = {}) {
  for (size_t i = first; i < n; ++i) {
    int32_t code;
    float recon;
    if (quantize_one<false>(x[i], 0.0f, q, &code, &recon)) {
      symbols[i] = static_cast<uint16_t>(code + static_cast<int32_t>(kCodeOffset));
      stats.lo = std::min(stats.lo, code);
      stats.hi = std::max(stats.hi, code);
    } else {
      symbols[i] = 0;
      outliers[stats.outliers++] = x[i];
    }
  }
  return stats;
}

// Whole rows of dim values. Scalar on every path: the row is a chain. On
// x86-64 two copies: one where std::fma is an instruction (the avx2 tier and
// above have FMA), one where it is a call to the C library's fmaf; both are
// exact. (aarch64 always has the instruction.)
[[gnu::always_inline]] inline BlockStats lorenzo_body(const float* x, size_t n, size_t dim,
                                                      const Quantizer& q, uint16_t* symbols,
                                                      float* outliers) {
  BlockStats stats;
  for (size_t row = 0; row < n; row += dim) {
    float prediction = 0.0f;
    for (size_t i = row; i < row + dim; ++i) {
      int32_t code;
      float recon;
      if (quantize_one<true>(x[i], prediction, q, &code, &recon)) {
        symbols[i] = static_cast<uint16_t>(code + static_cast<int32_t>(kCodeOffset));
        stats.lo = std::min(stats.lo, code);
        stats.hi = std::max(stats.hi, code);
        prediction = recon;
      } else {
        symbols[i] = 0;
        outliers[stats.outliers++] = x[i];
        prediction = is_finite(x[i]) ? x[i] : 0.0f;
      }
    }
  }
  return stats;
}

BlockStats quantize_lorenzo_portable(const float* x, size_t n, size_t dim, const Quantizer& q,
                                     uint16_t* symbols, float* outliers) {
  return lorenzo_body(x, n, dim, q, symbols, outliers);
}

#if defined(__x86_64__)
__attribute__((target("fma"))) BlockStats quantize_lorenzo_fma(const float* x, size_t n, size_t dim,
                                                               const Quantizer& q,
                                                               uint16_t* symbols, float* outliers) {
  return lorenzo_body(x, n, dim, q, symbols, outliers);
}
#else
BlockStats quantize_lorenzo_fma(const float* x, size_t n, size_t dim, const Quantizer& q,
                                uint16_t* symbols, float* outliers) {
  return lorenzo_body(x, n, dim, q, symbols, outliers);
}
#endif

// Whether std::fma is an instruction on the tier in force.
bool fma_instruction() {
#if defined(__x86_64__)
  return isa_enabled(Isa::avx2);
#else
  return true;
#endif
}

// --- AVX-512: 16 values a step ------------------------------------------------------------
#if defined(__x86_64__)

#define PARALAB_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))
constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

PARALAB_AVX512 __mmask16 lanes_left(size_t left) {
  return left >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << left) - 1);
}

// Needs room for 16 values past the last outlier (whole vectors are stored).
PARALAB_AVX512 BlockStats quantize_none_avx512(const float* x, size_t n, const Quantizer& q,
                                               uint16_t* symbols, float* outliers) {
  const __m512 inverse = _mm512_set1_ps(q.inverse), step = _mm512_set1_ps(q.step);
  const __m512 bound = _mm512_set1_ps(q.bound), radius = _mm512_set1_ps(kRadius);
  const __m512i offset = _mm512_set1_epi32(static_cast<int>(kCodeOffset));
  const __m512i negative_zero = _mm512_set1_epi32(INT32_MIN);
  __m512i lo = _mm512_set1_epi32(INT32_MAX), hi = _mm512_set1_epi32(INT32_MIN);
  uint32_t kept_out = 0;
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 lanes = lanes_left(n - i);
    const __m512 v = lanes == 0xffff ? _mm512_loadu_ps(x + i) : _mm512_maskz_loadu_ps(lanes, x + i);
    const __m512 c = _mm512_roundscale_ps(_mm512_mul_round_ps(v, inverse, kRound), kRound);
    const __m512 recon = _mm512_mul_round_ps(c, step, kRound);
    const __m512 error = _mm512_abs_ps(_mm512_sub_round_ps(recon, v, kRound));
    __mmask16 good = _mm512_cmp_ps_mask(_mm512_abs_ps(c), radius, _CMP_LE_OQ);
    good &= _mm512_cmp_ps_mask(error, bound, _CMP_LT_OQ) | _mm512_cmp_ps_mask(recon, v, _CMP_EQ_OQ);
    good &= static_cast<__mmask16>(~_mm512_cmpeq_epi32_mask(_mm512_castps_si512(v), negative_zero));
    good &= lanes;
    const __m512i code = _mm512_cvtps_epi32(c);
    lo = _mm512_mask_min_epi32(lo, good, lo, code);
    hi = _mm512_mask_max_epi32(hi, good, hi, code);
    const __m256i s = _mm512_cvtepi32_epi16(_mm512_maskz_add_epi32(good, code, offset));
    if (lanes == 0xffff)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(symbols + i), s);
    else
      _mm256_mask_storeu_epi16(symbols + i, lanes, s);
    const __mmask16 bad = lanes & static_cast<__mmask16>(~good);
    if (bad) {
      _mm512_storeu_ps(outliers + kept_out, _mm512_maskz_compress_ps(bad, v));
      kept_out += static_cast<uint32_t>(std::popcount(static_cast<unsigned>(bad)));
    }
  }
  BlockStats stats;
  stats.outliers = kept_out;
  stats.lo = _mm512_reduce_min_epi32(lo);
  stats.hi = _mm512_reduce_max_epi32(hi);
  return stats;
}

// out[i] = (h[i] + code_lo - 1) * step, or the next outlier where h[i] = 0.
// Throws unless the block has exactly `count` outliers.
PARALAB_AVX512 void dequantize_avx512(const uint16_t* h, size_t n, int32_t code_lo, float step,
                                      const float* outliers, size_t count, float* out) {
  const __m512i bias = _mm512_set1_epi32(code_lo - 1);
  const __m512 vstep = _mm512_set1_ps(step);
  size_t used = 0;
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 lanes = lanes_left(n - i);
    const __m256i packed = lanes == 0xffff
                               ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(h + i))
                               : _mm256_maskz_loadu_epi16(lanes, h + i);
    const __m512i symbols = _mm512_cvtepu16_epi32(packed);
    __m512 r =
        _mm512_mul_round_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(symbols, bias)), vstep, kRound);
    const __mmask16 escape = _mm512_cmpeq_epi32_mask(symbols, _mm512_setzero_si512()) & lanes;
    if (escape) {
      const size_t k = static_cast<size_t>(std::popcount(static_cast<unsigned>(escape)));
      if (k > count - used) corrupt("codes section: a block has more outliers than it declares");
      const __m512 next =
          _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << k) - 1), outliers + used);
      r = _mm512_mask_expand_ps(r, escape, next);
      used += k;
    }
    if (lanes == 0xffff)
      _mm512_storeu_ps(out + i, r);
    else
      _mm512_mask_storeu_ps(out + i, lanes, r);
  }
  if (used != count) corrupt("codes section: a block has fewer outliers than it declares");
}

PARALAB_AVX512 void finite_range_avx512(const float* x, size_t n, float& lo, float& hi) {
  __m512 vlo = _mm512_set1_ps(std::numeric_limits<float>::infinity());
  __m512 vhi = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  const __m512i exponent = _mm512_set1_epi32(0x7f800000);
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 lanes = lanes_left(n - i);
    const __m512 v = _mm512_maskz_loadu_ps(lanes, x + i);
    const __mmask16 finite =
        lanes &
        _mm512_cmpneq_epi32_mask(_mm512_and_si512(_mm512_castps_si512(v), exponent), exponent);
    vlo = _mm512_mask_min_ps(vlo, finite, vlo, v);
    vhi = _mm512_mask_max_ps(vhi, finite, vhi, v);
  }
  lo = _mm512_reduce_min_ps(vlo);
  hi = _mm512_reduce_max_ps(vhi);
}

#undef PARALAB_AVX512
#endif  // __x86_64__

// Values [first, n), after a vector path took [0, first) and `used` outliers.
void dequantize_portable(const uint16_t* h, size_t first, size_t n, int32_t code_lo, float step,
                         const float* outliers, size_t count, float* out, size_t used = 0) {
  for (size_t i = first; i < n; ++i) {
    if (h[i] == 0) {
      if (used == count) corrupt("codes section: a block has more outliers than it declares");
      out[i] = outliers[used++];
    } else {
      out[i] = static_cast<float>(static_cast<int32_t>(h[i]) + code_lo - 1) * step;
    }
  }
  if (used != count) corrupt("codes section: a block has fewer outliers than it declares");
}

// Whole rows; the scalar definition on every path (two copies, as for
// quantize_lorenzo_*).
[[gnu::always_inline]] inline void unlorenzo_body(const uint16_t* h, size_t n, size_t dim,
                                                  int32_t code_lo, float step,
                                                  const float* outliers, size_t count, float* out) {
  size_t used = 0;
  for (size_t row = 0; row < n; row += dim) {
    float prediction = 0.0f;
    for (size_t i = row; i < row + dim; ++i) {
      if (h[i] == 0) {
        if (used == count) corrupt("codes section: a block has more outliers than it declares");
        const float v = outliers[used++];
        out[i] = v;
        prediction = is_finite(v) ? v : 0.0f;
      } else {
        const float c = static_cast<float>(static_cast<int32_t>(h[i]) + code_lo - 1);
        prediction = std::fma(c, step, prediction);
        out[i] = prediction;
      }
    }
  }
  if (used != count) corrupt("codes section: a block has fewer outliers than it declares");
}

void dequantize_lorenzo_portable(const uint16_t* h, size_t n, size_t dim, int32_t code_lo,
                                 float step, const float* outliers, size_t count, float* out) {
  unlorenzo_body(h, n, dim, code_lo, step, outliers, count, out);
}

#if defined(__x86_64__)
__attribute__((target("fma")))
#endif
void dequantize_lorenzo_fma(const uint16_t* h, size_t n, size_t dim, int32_t code_lo, float step,
                            const float* outliers, size_t count, float* out) {
  unlorenzo_body(h, n, dim, code_lo, step, outliers, count, out);
}

BlockStats quantize_block(const float* x, size_t n, size_t dim, const Quantizer& q,
                          Predictor predictor, uint16_t* symbols, float* outliers) {
  if (predictor == Predictor::lorenzo_row)
    return fma_instruction() ? quantize_lorenzo_fma(x, n, dim, q, symbols, outliers)
                             : quantize_lorenzo_portable(x, n, dim, q, symbols, outliers);
#if defined(__x86_64__)
  if (isa_enabled(Isa::avx512)) return quantize_none_avx512(x, n, q, symbols, outliers);
#endif
  BlockStats stats;
  const size_t done = simd::quantize_none(x, n, q.inverse, q.step, q.bound, symbols, outliers,
                                          &stats.outliers, &stats.lo, &stats.hi);
  return quantize_none_portable(x, done, n, q, symbols, outliers, stats);
}

// --- symbol counts -------------------------------------------------------------------

// A thread's counts of the 65536 symbols: four interleaved tables (so that
// runs of one symbol do not wait on their own increments), zero between
// calls outside the range touched since the last flush.
struct SymbolCounts {
  std::vector<uint32_t> table = std::vector<uint32_t>(4 * kSymbols, 0);
  uint32_t lo = UINT32_MAX, hi = 0;  // nonzero symbols touched
  uint64_t pending = 0;

  void add(const uint16_t* s, size_t n, const BlockStats& stats) {
    uint32_t* t = table.data();
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
      ++t[s[i]];
      ++t[kSymbols + s[i + 1]];
      ++t[2 * kSymbols + s[i + 2]];
      ++t[3 * kSymbols + s[i + 3]];
    }
    for (; i < n; ++i) ++t[s[i]];
    if (stats.lo <= stats.hi) {
      lo = std::min(lo, static_cast<uint32_t>(stats.lo + static_cast<int32_t>(kCodeOffset)));
      hi = std::max(hi, static_cast<uint32_t>(stats.hi + static_cast<int32_t>(kCodeOffset)));
    }
    pending += n;
  }
  // Adds the counts to total[65536] and zeroes them.
  void flush(uint64_t* total) {
    auto drain = [&](uint32_t s) {
      total[s] += uint64_t{table[s]} + table[kSymbols + s] + table[2 * kSymbols + s] +
                  table[3 * kSymbols + s];
      table[s] = table[kSymbols + s] = table[2 * kSymbols + s] = table[3 * kSymbols + s] = 0;
    };
    drain(0);
    for (uint32_t s = lo; s <= hi && s < kSymbols; ++s) drain(s);
    lo = UINT32_MAX;
    hi = 0;
    pending = 0;
  }
  // Before the 32-bit counts could overflow.
  bool full() const { return pending > (uint64_t{1} << 31); }
};

SymbolCounts& thread_counts() {
  thread_local SymbolCounts counts;
  return counts;
}

// Quantises every block into symbols[] and the outlier room (block b's
// outliers at b * (B + 16)), and adds all symbols' counts to total[65536].
void quantize_blocks(const float* in, size_t n, size_t dim, size_t block, const Quantizer& q,
                     Predictor predictor, int threads, uint16_t* symbols, float* room,
                     std::vector<BlockStats>& stats, uint64_t* total) {
  const size_t blocks = stats.size();
  auto one = [&](SymbolCounts& counts, size_t b) {
    const size_t first = b * block, count = std::min(block, n - first);
    stats[b] = quantize_block(in + first, count, dim, q, predictor, symbols + first,
                              room + b * (block + 16));
    counts.add(symbols + first, count, stats[b]);
  };
  if (threads <= 1 || blocks <= 1) {
    SymbolCounts& counts = thread_counts();
    for (size_t b = 0; b < blocks; ++b) {
      one(counts, b);
      if (counts.full()) counts.flush(total);
    }
    counts.flush(total);
    return;
  }
  const int team = static_cast<int>(std::min<size_t>(static_cast<size_t>(threads), blocks));
  std::exception_ptr error;
#pragma omp parallel num_threads(team)
  {
    SymbolCounts& counts = thread_counts();
    try {
#pragma omp for schedule(dynamic, 1) nowait
      for (size_t b = 0; b < blocks; ++b) {
        one(counts, b);
        if (counts.full()) {
#pragma omp critical(paralab_compress_counts)
          counts.flush(total);
        }
      }
    } catch (...) {
#pragma omp critical(paralab_compress_error)
      if (!error) error = std::current_exception();
    }
#pragma omp critical(paralab_compress_counts)
    counts.flush(total);
  }
  if (error) std::rethrow_exception(error);
}

size_t count_blocks(size_t n, size_t block) {
  return (n + block - 1) / block;
}

// --- lossless byte planes --------------------------------------------------------------

void append_planes(const float* in, size_t n, size_t block, int threads,
                   std::vector<std::byte>& out) {
  const size_t blocks = count_blocks(n, block);
  const auto* bytes = reinterpret_cast<const uint8_t*>(in);
  std::vector<std::array<uint64_t, 4 * 256>> block_counts(blocks);
  for_blocks(blocks, threads, [&](size_t b) {
    auto& c = block_counts[b];
    c.fill(0);
    const size_t first = b * block, count = std::min(block, n - first);
    for (size_t i = first; i < first + count; ++i)
      for (size_t k = 0; k < 4; ++k) ++c[k * 256 + bytes[4 * i + k]];
  });
  std::array<std::vector<uint8_t>, 4> lengths;
  std::vector<huffman::Encoder> encoders;
  for (size_t k = 0; k < 4; ++k) {
    std::vector<uint64_t> counts(256, 0);
    for (const auto& c : block_counts)
      for (size_t s = 0; s < 256; ++s) counts[s] += c[k * 256 + s];
    lengths[k] = huffman::code_lengths(counts);
    encoders.emplace_back(lengths[k]);
  }
  const size_t room = huffman::Encoder::max_bytes(block);
  std::byte* coded = scratch<std::byte, 7>(4 * blocks * room);
  std::vector<std::span<const std::byte>> parts(4 * blocks);
  for_blocks(blocks, threads, [&](size_t b) {
    const size_t first = b * block, count = std::min(block, n - first);
    uint16_t* plane = scratch<uint16_t, 8>(4 * block);
    const uint32_t* words = reinterpret_cast<const uint32_t*>(bytes) + first;
    for (size_t i = 0; i < count; ++i) {
      uint32_t w;
      std::memcpy(&w, words + i, 4);
      plane[i] = static_cast<uint16_t>(w & 0xffu);
      plane[block + i] = static_cast<uint16_t>((w >> 8) & 0xffu);
      plane[2 * block + i] = static_cast<uint16_t>((w >> 16) & 0xffu);
      plane[3 * block + i] = static_cast<uint16_t>(w >> 24);
    }
    for (size_t k = 0; k < 4; ++k) {
      std::byte* at = coded + (k * blocks + b) * room;
      parts[k * blocks + b] = {at, encoders[k].encode(plane + k * block, count, at)};
    }
  });
  put(out, static_cast<uint32_t>(block));
  put(out, static_cast<uint32_t>(blocks));
  for (size_t k = 0; k < 4; ++k)
    huffman::append_blob(lengths[k], std::span(parts).subspan(k * blocks, blocks), out);
}

void decode_planes(std::span<const std::byte> section, float* out, size_t n, size_t block,
                   int threads) {
  Reader reader(section, "lossless codes section");
  if (reader.get<uint32_t>("block size") != block) corrupt("lossless codes section: block size");
  const size_t blocks = count_blocks(n, block);
  if (reader.get<uint32_t>("block count") != blocks) corrupt("lossless codes section: block count");
  std::span<const std::byte> rest = reader.rest();
  std::vector<huffman::Blob> blobs;
  std::vector<huffman::Decoder> decoders;
  for (size_t k = 0; k < 4; ++k) {
    blobs.push_back(huffman::parse_blob(rest, blocks));
    if (blobs.back().lengths.size() > 256) corrupt("lossless codes section: alphabet over 256");
    decoders.emplace_back(blobs.back().lengths);
    rest = rest.subspan(blobs.back().bytes);
  }
  if (!rest.empty()) corrupt("lossless codes section: bytes after the last plane");
  for_blocks(blocks, threads, [&](size_t b) {
    const size_t first = b * block, count = std::min(block, n - first);
    uint16_t* plane = scratch<uint16_t, 9>(4 * block);
    for (size_t k = 0; k < 4; k += 2)
      decoders[k].decode2(blobs[k].blocks[b], plane + k * block, count, blobs[k + 1].blocks[b],
                          plane + (k + 1) * block, count, &decoders[k + 1]);
    for (size_t i = 0; i < count; ++i) {
      const uint32_t w = uint32_t{plane[i]} | uint32_t{plane[block + i]} << 8 |
                         uint32_t{plane[2 * block + i]} << 16 |
                         uint32_t{plane[3 * block + i]} << 24;
      std::memcpy(out + first + i, &w, 4);
    }
  });
}

}  // namespace

// --- the interface (compress_detail.hpp) ------------------------------------------------

int code_length_limit(size_t alphabet) {
  return alphabet <= 4096 ? 14 : huffman::kMaxLength;
}

size_t block_values(size_t dim) {
  if (dim == 0) return kTargetBlock;
  return std::max<size_t>(1, kTargetBlock / dim) * dim;
}

double absolute_bound(const float* in, size_t n, const ErrorBound& bound) {
  if (bound.mode == ErrorBound::absolute) return bound.value;
  float lo = std::numeric_limits<float>::infinity(), hi = -lo;
  size_t done = 0;
#if defined(__x86_64__)
  if (isa_enabled(Isa::avx512)) {
    finite_range_avx512(in, n, lo, hi);
    done = n;
  }
#endif
  if (done == 0) done = simd::finite_range(in, n, &lo, &hi);
  for (size_t i = done; i < n; ++i) {
    if (!is_finite(in[i])) continue;
    lo = std::min(lo, in[i]);
    hi = std::max(hi, in[i]);
  }
  if (!(lo <= hi)) return 0.0;  // no finite value
  return bound.value * (static_cast<double>(hi) - static_cast<double>(lo));
}

Quantizer make_quantizer(double absolute) {
  Quantizer q;
  if (!(absolute > 0)) return q;
  const double clamped = std::min(absolute, static_cast<double>(FLT_MAX));
  float bound = static_cast<float>(clamped);
  if (static_cast<double>(bound) > clamped) bound = std::nextafter(bound, 0.0f);
  float step = 2.0f * bound;
  if (std::isinf(step)) step = FLT_MAX;
  const float inverse = 1.0f / step;
  // A bound so small that 1 / step overflows keeps nothing as a code: lossless.
  if (bound == 0.0f || !std::isfinite(inverse)) return q;
  q.bound = bound;
  q.step = step;
  q.inverse = inverse;
  return q;
}

void append_quantized(const float* in, size_t rows, size_t dim, const Quantizer& q,
                      Predictor predictor, int threads, std::vector<std::byte>& out,
                      uint64_t& codes_bytes, uint64_t& outlier_bytes) {
  const size_t n = rows * dim;
  const size_t block = block_values(dim);
  const size_t blocks = count_blocks(n, block);
  const size_t codes_start = out.size();
  if (q.step == 0.0f) {
    append_planes(in, n, block, threads, out);
    codes_bytes = out.size() - codes_start;
    outlier_bytes = 0;
    return;
  }
  uint16_t* symbols = scratch<uint16_t, 1>(n);
  float* room = scratch<float, 2>(blocks * (block + 16));
  // Symbol counts: kept zero between calls outside [lo, hi] of the blocks
  // quantised (the only symbols counted), which the guard zeroes again.
  thread_local std::vector<uint64_t> totals(kSymbols, 0);
  uint64_t* total = totals.data();
  std::vector<BlockStats> stats(blocks);
  int32_t lo = INT32_MAX, hi = INT32_MIN;
  struct Zero {
    uint64_t* total;
    const std::vector<BlockStats>& stats;
    ~Zero() {
      total[0] = 0;
      for (const BlockStats& s : stats)
        if (s.lo <= s.hi)
          std::fill(total + s.lo + kCodeOffset, total + s.hi + kCodeOffset + 1, uint64_t{0});
    }
  } zero{total, stats};
  quantize_blocks(in, n, dim, block, q, predictor, threads, symbols, room, stats, total);

  // The alphabet: 0 for outliers, then the codes from the smallest kept.
  for (const BlockStats& s : stats) {
    lo = std::min(lo, s.lo);
    hi = std::max(hi, s.hi);
  }
  const bool any_code = lo <= hi;
  const int32_t code_lo = any_code ? lo : 0;
  const size_t alphabet = any_code ? static_cast<size_t>(hi - lo) + 2 : 1;
  const uint32_t base =
      any_code ? static_cast<uint32_t>(lo + static_cast<int32_t>(kCodeOffset)) - 1 : 0;
  std::vector<uint64_t> counts(alphabet);
  counts[0] = total[0];
  for (size_t h = 1; h < alphabet; ++h) counts[h] = total[base + h];
  const std::vector<uint8_t> lengths = huffman::code_lengths(counts, code_length_limit(alphabet));
  const huffman::Encoder encoder(lengths, static_cast<uint16_t>(base));

  const size_t room_bytes = huffman::Encoder::max_bytes(block);
  std::byte* coded = scratch<std::byte, 4>(blocks * room_bytes);
  std::vector<std::span<const std::byte>> parts(blocks);
  for_blocks(blocks, threads, [&](size_t b) {
    const size_t first = b * block, count = std::min(block, n - first);
    std::byte* at = coded + b * room_bytes;
    parts[b] = {at, encoder.encode(symbols + first, count, at)};
  });

  put(out, static_cast<uint32_t>(block));
  put(out, static_cast<uint32_t>(blocks));
  put(out, code_lo);
  for (const BlockStats& s : stats) put(out, s.outliers);
  huffman::append_blob(lengths, parts, out);
  codes_bytes = out.size() - codes_start;

  size_t kept_out = 0;
  for (const BlockStats& s : stats) kept_out += s.outliers;
  const size_t outliers_start = out.size();
  out.resize(outliers_start + 4 * kept_out);
  std::byte* at = out.data() + outliers_start;
  for (size_t b = 0; b < blocks; ++b) {
    if (stats[b].outliers == 0) continue;
    std::memcpy(at, room + b * (block + 16), 4 * size_t{stats[b].outliers});
    at += 4 * size_t{stats[b].outliers};
  }
  outlier_bytes = 4 * kept_out;
}

void decode_quantized(std::span<const std::byte> codes, std::span<const std::byte> outliers,
                      float* out, size_t rows, size_t dim, float step, Predictor predictor,
                      int threads) {
  const size_t n = rows * dim;
  const size_t block = block_values(dim);
  const size_t blocks = count_blocks(n, block);
  if (step == 0.0f) {
    if (!outliers.empty()) corrupt("a lossless stream with an outlier section");
    decode_planes(codes, out, n, block, threads);
    return;
  }
  if (!(step > 0.0f) || !std::isfinite(step)) corrupt("quantisation step not a positive float");

  Reader reader(codes, "codes section");
  if (reader.get<uint32_t>("block size") != block) corrupt("codes section: wrong block size");
  if (reader.get<uint32_t>("block count") != blocks) corrupt("codes section: wrong block count");
  const int32_t code_lo = reader.get<int32_t>("code_lo");
  const auto declared = reader.array(blocks, 4, "outlier counts");
  const std::span<const std::byte> rest = reader.rest();
  const huffman::Blob blob = huffman::parse_blob(rest, blocks);
  if (blob.bytes != rest.size()) corrupt("codes section: bytes after the Huffman blob");
  const size_t alphabet = blob.lengths.size();
  if (n > 0 && alphabet == 0) corrupt("codes section: empty alphabet");
  if (alphabet >= 2 &&
      (code_lo < -kRadius || code_lo > kRadius ||
       static_cast<int64_t>(code_lo) + static_cast<int64_t>(alphabet) - 2 > kRadius))
    corrupt("codes section: codes outside [-32767, 32767]");

  std::vector<size_t> first_outlier(blocks + 1, 0);
  for (size_t b = 0; b < blocks; ++b)
    first_outlier[b + 1] = first_outlier[b] + load<uint32_t>(declared.data() + 4 * b);
  if (outliers.size() % 4 != 0 || first_outlier[blocks] != outliers.size() / 4)
    corrupt("outlier section: " + std::to_string(outliers.size()) + " bytes for " +
            std::to_string(first_outlier[blocks]) + " outliers");
  // The outlier section may sit at any byte offset: copy it to aligned floats.
  std::vector<float> values(first_outlier[blocks]);
  if (!values.empty()) std::memcpy(values.data(), outliers.data(), outliers.size());

  const huffman::Decoder decoder(blob.lengths);
  const bool fma = fma_instruction();
#if defined(__x86_64__)
  const bool avx512 = isa_enabled(Isa::avx512);
#endif
  auto dequantize = [&](size_t b, const uint16_t* h) {
    const size_t first = b * block, count = std::min(block, n - first);
    const float* o = values.data() + first_outlier[b];
    const size_t k = first_outlier[b + 1] - first_outlier[b];
    if (predictor == Predictor::lorenzo_row) {
      if (fma) return dequantize_lorenzo_fma(h, count, dim, code_lo, step, o, k, out + first);
      return dequantize_lorenzo_portable(h, count, dim, code_lo, step, o, k, out + first);
    }
#if defined(__x86_64__)
    if (avx512) return dequantize_avx512(h, count, code_lo, step, o, k, out + first);
#endif
    size_t used = 0;
    const size_t done = simd::dequantize(h, count, code_lo, step, o, k, out + first, &used);
    if (used > k) corrupt("codes section: a block has more outliers than it declares");
    dequantize_portable(h, done, count, code_lo, step, o, k, out + first, used);
  };
  // Blocks in pairs, whose Huffman codes decode interleaved.
  for_blocks((blocks + 1) / 2, threads, [&](size_t pair) {
    const size_t b = 2 * pair;
    const size_t count = std::min(block, n - b * block);
    uint16_t* h = scratch<uint16_t, 6>(2 * block);
    if (b + 1 == blocks) {
      decoder.decode(blob.blocks[b], h, count);
      dequantize(b, h);
      return;
    }
    const size_t next = std::min(block, n - (b + 1) * block);
    decoder.decode2(blob.blocks[b], h, count, blob.blocks[b + 1], h + block, next);
    dequantize(b, h);
    dequantize(b + 1, h + block);
  });
}

void count_symbols(const float* in, size_t rows, size_t dim, const Quantizer& q,
                   Predictor predictor, std::vector<uint64_t>& counts) {
  counts.resize(kSymbols);
  const size_t n = rows * dim;
  if (q.step == 0.0f || n == 0) return;
  std::vector<uint16_t> symbols(n);
  std::vector<float> room(n + 16);
  const BlockStats stats =
      quantize_block(in, n, dim == 0 ? 1 : dim, q, predictor, symbols.data(), room.data());
  (void)stats;
  for (const uint16_t s : symbols) ++counts[s];
}

}  // namespace paralab::kernels::compress::detail
