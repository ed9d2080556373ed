// The codec-choice model of kernels/compress.hpp: estimate() predicts each
// codec's stream size from a sample of rows, choose_codec() weighs sizes
// against measured rates and the link's bandwidth.

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "kernels/compress_detail.hpp"
#include "kernels/cpu/huffman.hpp"

namespace paralab::kernels::compress {

namespace {

using namespace detail;

constexpr double kHeader = 80;

// Bytes of a codes section (with its outliers) for `count` values at
// `bits` per value, alphabet symbols in the table.
double quantized_bytes(double count, size_t dim, double bits, double alphabet, bool lossless) {
  const double block = static_cast<double>(block_values(dim));
  const double blocks = std::ceil(count / block);
  if (lossless) return 8 + 4 * (4 + 256 + 4 * blocks) + count * bits / 8;
  return 12 + 4 * blocks + 4 + alphabet + 4 * blocks + count * bits / 8;
}

struct Bits {
  double per_value = 32;  // codes and outliers
  double outliers = 0;    // fraction
  double alphabet = 1;
};

// Bits per value of quantize_huffman over values[rows x dim].
Bits coded_bits(const float* values, size_t rows, size_t dim, const Quantizer& q,
                Predictor predictor) {
  Bits bits;
  const size_t n = rows * dim;
  if (n == 0) return bits;
  if (q.step == 0.0f) {  // lossless byte planes
    bits.per_value = 0;
    const auto* bytes = reinterpret_cast<const uint8_t*>(values);
    for (size_t k = 0; k < 4; ++k) {
      std::vector<uint64_t> counts(256, 0);
      for (size_t i = 0; i < n; ++i) ++counts[bytes[4 * i + k]];
      bits.per_value += huffman::coded_bits(counts, huffman::code_lengths(counts));
    }
    bits.alphabet = 4 * 256;
    return bits;
  }
  std::vector<uint64_t> all;
  count_symbols(values, rows, dim, q, predictor, all);
  size_t lo = all.size(), hi = 0;
  for (size_t s = 1; s < all.size(); ++s)
    if (all[s] != 0) lo = std::min(lo, s), hi = std::max(hi, s);
  std::vector<uint64_t> counts{all[0]};
  for (size_t s = lo; s <= hi && s < all.size(); ++s) counts.push_back(all[s]);
  bits.outliers = static_cast<double>(all[0]) / static_cast<double>(n);
  bits.per_value =
      huffman::coded_bits(counts, huffman::code_lengths(counts, code_length_limit(counts.size()))) +
      32 * bits.outliers;
  bits.alphabet = static_cast<double>(counts.size());
  return bits;
}

// A row's fingerprint: the hash of its first and last four values (all of
// a row of up to 8). Embedding rows that differ, differ there.
uint64_t fingerprint(const float* row, size_t dim) {
  if (dim <= 8) return hash_row(row, dim);
  float ends[8];
  std::memcpy(ends, row, 4 * sizeof(float));
  std::memcpy(ends + 4, row + dim - 4, 4 * sizeof(float));
  return hash_row(ends, 8) ^ dim;
}

// Linear counting (Whang, Vander-Zanden and Taylor 1990): hash each row
// into a bitmap of m >= 8 x rows bits; distinct ~ m ln(m / zero bits), with
// a relative error of about 1% at that load.
double count_distinct(const float* in, size_t rows, size_t dim) {
  if (rows == 0) return 0;
  size_t m = 1024;
  while (m < 8 * rows) m *= 2;
  std::vector<uint64_t> bitmap(m / 64, 0);
  for (size_t r = 0; r < rows; ++r) {
    const uint64_t bit = fingerprint(in + r * dim, dim) & (m - 1);
    bitmap[bit / 64] |= uint64_t{1} << (bit % 64);
  }
  size_t ones = 0;
  for (const uint64_t word : bitmap) ones += static_cast<size_t>(std::popcount(word));
  const double md = static_cast<double>(m);
  const double distinct =
      ones == m ? static_cast<double>(rows) : md * std::log(md / static_cast<double>(m - ones));
  return std::clamp(distinct, 1.0, static_cast<double>(rows));
}

}  // namespace

Estimate estimate(const float* in, size_t rows, size_t dim, const ErrorBound& bound,
                  Predictor predictor, size_t sample_rows) {
  if (!(bound.value >= 0) || std::isinf(bound.value))
    throw std::invalid_argument("estimate: bound negative, infinite or NaN");
  Estimate e;
  e.rows = rows;
  e.dim = dim;
  const size_t n = rows * dim;
  const auto count = static_cast<double>(n);
  e.absolute_bound = absolute_bound(in, n, bound);
  const Quantizer q = make_quantizer(e.absolute_bound);

  // Evenly spaced rows.
  const size_t s = std::min(rows, std::max<size_t>(sample_rows, 1));
  e.sample_rows = s;
  std::vector<float> sample(s * dim);
  for (size_t i = 0; i < s; ++i) {
    const size_t row = s == rows ? i : i * rows / s;
    std::copy_n(in + row * dim, dim, sample.begin() + static_cast<std::ptrdiff_t>(i * dim));
  }

  // Distinct rows: linear counting over every row's fingerprint.
  const double distinct = count_distinct(in, rows, dim);
  e.distinct_fraction = rows == 0 ? 1.0 : distinct / static_cast<double>(rows);
  const Distinct d = find_distinct(sample.data(), s, dim);

  const Bits all = coded_bits(sample.data(), s, dim, q, predictor);
  e.bits_per_value = all.per_value;
  e.outlier_fraction = all.outliers;
  // The dedup codec quantises only distinct rows: their bits, from the sample's.
  std::vector<float> unique(d.first.size() * dim);
  for (size_t j = 0; j < d.first.size(); ++j)
    std::copy_n(sample.begin() + static_cast<std::ptrdiff_t>(size_t{d.first[j]} * dim), dim,
                unique.begin() + static_cast<std::ptrdiff_t>(j * dim));
  const Bits once = coded_bits(unique.data(), d.first.size(), dim, q, predictor);

  const bool lossless = q.step == 0.0f;
  const double index = static_cast<double>(index_bytes(rows, static_cast<size_t>(distinct)));
  const double distinct_values = distinct * static_cast<double>(dim);
  auto set = [&](Codec codec, double bytes) { e.bytes[static_cast<size_t>(codec)] = bytes; };
  set(Codec::raw, kHeader + 4 * count);
  set(Codec::fp16, kHeader + 2 * count);
  set(Codec::bf16, kHeader + 2 * count);
  set(Codec::int8, kHeader + 4 * static_cast<double>(rows) + count);
  set(Codec::quantize_huffman,
      kHeader + quantized_bytes(count, dim, all.per_value, all.alphabet, lossless));
  set(Codec::dedup, kHeader + index + 4 * distinct_values);
  set(Codec::dedup_quantize_huffman,
      kHeader + index +
          quantized_bytes(distinct_values, dim, once.per_value, once.alphabet, lossless));
  return e;
}

Throughputs default_throughputs() {
  // bench_compress, one thread, 65536 x 64 Zipf-repeated embedding rows
  // (21% distinct), absolute bound 1e-3 (docs/compress.md, 2026-11-22,
  // 2-core AMD EPYC Zen 5 VM).
  Throughputs t;
  auto set = [&](Codec codec, double compress_GBps, double decompress_GBps) {
    t[static_cast<size_t>(codec)] = {compress_GBps * 1e9, decompress_GBps * 1e9};
  };
  set(Codec::raw, 11.0, 10.7);
  set(Codec::fp16, 18.5, 22.1);
  set(Codec::bf16, 16.1, 19.8);
  set(Codec::int8, 17.4, 25.1);
  set(Codec::quantize_huffman, 3.6, 2.5);
  set(Codec::dedup, 7.7, 25.0);
  set(Codec::dedup_quantize_huffman, 5.3, 8.7);
  return t;
}

Throughput measure_throughput(const float* in, size_t rows, size_t dim, const Params& params,
                              int repeats) {
  using clock = std::chrono::steady_clock;
  const double bytes = 4.0 * static_cast<double>(rows) * static_cast<double>(dim);
  std::vector<std::byte> stream;
  std::vector<float> out(rows * dim);
  double compress_s = std::numeric_limits<double>::infinity(), decompress_s = compress_s;
  DecodeOptions options;
  options.threads = params.threads;
  for (int r = 0; r < std::max(1, repeats); ++r) {
    stream.clear();
    auto start = clock::now();
    compress(in, rows, dim, params, stream);
    compress_s = std::min(compress_s, std::chrono::duration<double>(clock::now() - start).count());
    start = clock::now();
    decompress(stream, out.data(), rows, dim, options);
    decompress_s =
        std::min(decompress_s, std::chrono::duration<double>(clock::now() - start).count());
  }
  const double tiny = 1e-9;
  return {bytes / std::max(compress_s, tiny), bytes / std::max(decompress_s, tiny)};
}

Choice choose_codec(const Estimate& e, double link_bytes_per_s, const Throughputs& rates,
                    std::span<const Codec> candidates) {
  if (!(link_bytes_per_s > 0)) throw std::invalid_argument("choose_codec: link bandwidth <= 0");
  if (candidates.empty()) throw std::invalid_argument("choose_codec: no candidates");
  const double in = e.input_bytes();
  auto rate = [&](Codec codec) { return rates[static_cast<size_t>(codec)]; };
  Choice choice;
  choice.seconds = std::numeric_limits<double>::infinity();
  for (const Codec codec : candidates) {
    double seconds = e.predicted_bytes(codec) / link_bytes_per_s;
    if (codec == Codec::dedup_quantize_huffman) {
      const double once = e.distinct_fraction * in;
      seconds += in / rate(Codec::dedup).compress + once / rate(Codec::quantize_huffman).compress;
      seconds +=
          in / rate(Codec::dedup).decompress + once / rate(Codec::quantize_huffman).decompress;
    } else {
      seconds += in / rate(codec).compress + in / rate(codec).decompress;
    }
    choice.seconds_of[static_cast<size_t>(codec)] = seconds;
    if (seconds < choice.seconds) {
      choice.seconds = seconds;
      choice.codec = codec;
    }
  }
  return choice;
}

}  // namespace paralab::kernels::compress
