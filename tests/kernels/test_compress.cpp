// kernels/compress.hpp: the error bound on every element for every codec
// that claims one (random, constant, huge-range, subnormal, NaN/inf/-0 and
// adversarial inputs, both bound modes, both predictors, both CPU paths),
// lossless at eb = 0, the Huffman stage on arbitrary symbol streams, dedup
// exactness, every codec's round trip at edge shapes, rejection of
// corrupted and truncated streams, the compression ratio on Zipf-repeated
// embedding rows, and the size estimate behind the codec choice.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <queue>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "kernel_test_support.hpp"
#include "kernels/compress.hpp"
#include "kernels/cpu/huffman.hpp"

namespace paralab::kernels::compress {
namespace {

using test::for_each_isa;
using Problem = StreamError::Problem;

float from_bits(uint32_t bits) {
  return std::bit_cast<float>(bits);
}
uint32_t to_bits(float x) {
  return std::bit_cast<uint32_t>(x);
}

std::vector<std::byte> pack(const std::vector<float>& in, size_t rows, size_t dim,
                            const Params& params) {
  std::vector<std::byte> stream;
  const size_t bytes = compress(in.data(), rows, dim, params, stream);
  EXPECT_EQ(bytes, stream.size());
  EXPECT_LE(bytes, max_compressed_bytes(rows, dim, params));
  return stream;
}

std::vector<float> unpack(std::span<const std::byte> stream, size_t rows, size_t dim,
                          const DecodeOptions& options = {}) {
  std::vector<float> out(rows * dim, from_bits(0x7fbadbadu));
  decompress(stream, out.data(), rows, dim, options);
  return out;
}

Params params_for(Codec codec, ErrorBound bound = {}, Predictor predictor = Predictor::none) {
  Params p;
  p.codec = codec;
  p.bound = bound;
  p.predictor = predictor;
  return p;
}

// |out - in| <= eb, decided exactly: TwoSum gives s + e = out - in with no
// rounding (floats are exact doubles), so only |s| == eb needs e's sign.
bool within(float out, float in, double eb) {
  const double a = out, b = -static_cast<double>(in);
  const double s = a + b, bb = s - a;
  const double e = (a - (s - bb)) + (b - bb);
  const double d = std::fabs(s);
  if (d != eb) return d < eb;
  return s > 0 ? e <= 0 : e >= 0;
}

// The bound relative mode promises: value x (max - min) of the finite values.
double absolute_for(const std::vector<float>& in, ErrorBound bound) {
  if (bound.mode == ErrorBound::absolute) return bound.value;
  float lo = std::numeric_limits<float>::infinity(), hi = -lo;
  for (const float x : in)
    if (std::isfinite(x)) lo = std::min(lo, x), hi = std::max(hi, x);
  if (!(lo <= hi)) return 0;
  return bound.value * (static_cast<double>(hi) - static_cast<double>(lo));
}

// Every element within eb; NaN, inf and -0 (and everything when eb = 0) bit-exact.
void expect_bounded(const std::vector<float>& in, const std::vector<float>& out, double eb) {
  ASSERT_EQ(in.size(), out.size());
  size_t failures = 0;
  for (size_t i = 0; i < in.size() && failures < 5; ++i) {
    const bool special = !std::isfinite(in[i]) || to_bits(in[i]) == 0x80000000u || eb == 0;
    const bool ok = special ? to_bits(out[i]) == to_bits(in[i]) : within(out[i], in[i], eb);
    if (!ok) {
      ++failures;
      ADD_FAILURE() << "element " << i << ": in " << in[i] << " (0x" << std::hex << to_bits(in[i])
                    << ") out " << out[i] << " (0x" << to_bits(out[i]) << std::dec << ") bound "
                    << eb;
    }
  }
}

const Codec kQuantizing[] = {Codec::quantize_huffman, Codec::dedup_quantize_huffman};
const Predictor kPredictors[] = {Predictor::none, Predictor::lorenzo_row};

// Compresses in with every quantising codec and predictor at `bound`, on
// every CPU path, and checks every element.
void check_bound(const std::vector<float>& in, size_t rows, size_t dim, ErrorBound bound) {
  const double eb = absolute_for(in, bound);
  for_each_isa([&] {
    for (const Codec codec : kQuantizing) {
      for (const Predictor predictor : kPredictors) {
        SCOPED_TRACE(std::string(codec_name(codec)) +
                     (predictor == Predictor::none ? ", predictor none" : ", predictor lorenzo"));
        const auto stream = pack(in, rows, dim, params_for(codec, bound, predictor));
        const StreamInfo info = inspect(stream);
        EXPECT_TRUE(info.error_bounded);
        EXPECT_EQ(info.absolute_bound, eb);
        expect_bounded(in, unpack(stream, rows, dim), eb);
      }
    }
  });
}

std::vector<float> normal_values(size_t n, unsigned seed, float sigma = 0.05f) {
  std::mt19937 generator(seed);
  std::normal_distribution<float> normal(0.0f, sigma);
  std::vector<float> values(n);
  for (float& x : values) x = normal(generator);
  return values;
}

// rows x dim embedding-like rows: each row one of `vocabulary` distinct
// N(0, 0.05) rows, drawn with Zipf(alpha) popularity.
std::vector<float> zipf_rows(size_t rows, size_t dim, size_t vocabulary, double alpha,
                             unsigned seed) {
  const std::vector<float> table = normal_values(vocabulary * dim, seed);
  std::vector<double> cdf(vocabulary);
  double sum = 0;
  for (size_t k = 0; k < vocabulary; ++k) cdf[k] = sum += 1.0 / std::pow(double(k + 1), alpha);
  std::mt19937 generator(seed + 1);
  std::uniform_real_distribution<double> uniform(0.0, sum);
  std::vector<float> out(rows * dim);
  for (size_t r = 0; r < rows; ++r) {
    const size_t k = static_cast<size_t>(
        std::lower_bound(cdf.begin(), cdf.end(), uniform(generator)) - cdf.begin());
    std::copy_n(table.begin() + static_cast<std::ptrdiff_t>(std::min(k, vocabulary - 1) * dim), dim,
                out.begin() + static_cast<std::ptrdiff_t>(r * dim));
  }
  return out;
}

// NaNs with payloads and both signs, infinities, zeros of both signs.
const uint32_t kSpecials[] = {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xff812345u, 0x7fbfffffu,
                              0x7fffffffu, 0x7f800000u, 0xff800000u, 0x80000000u, 0x00000000u};

// --- CRC32C ---------------------------------------------------------------------------

std::vector<std::byte> bytes_of(const std::string& text) {
  std::vector<std::byte> out(text.size());
  std::memcpy(out.data(), text.data(), text.size());
  return out;
}

// CRC-32C one bit at a time: the definition, sharing no code with the kernels' tables or the
// CRC instructions (aarch64 has no tier without them, so no tier can serve as the reference).
uint32_t crc32c_bitwise(std::span<const std::byte> data, uint32_t crc) {
  crc = ~crc;
  for (const std::byte b : data) {
    crc ^= static_cast<uint8_t>(b);
    for (int bit = 0; bit < 8; ++bit) crc = (crc & 1u) ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
  }
  return ~crc;
}

TEST(CompressCrc32c, KnownValuesOnEveryTier) {
  for_each_isa([] {
    EXPECT_EQ(crc32c(bytes_of("123456789")), 0xe3069283u);
    EXPECT_EQ(crc32c({}), 0u);
    EXPECT_EQ(crc32c(bytes_of(std::string(32, '\0'))), 0x8a9136aau);  // RFC 3720 B.4
    const auto text = bytes_of("The quick brown fox jumps over the lazy dog, twice over.");
    const uint32_t whole = crc32c(text);
    for (size_t cut = 0; cut <= text.size(); ++cut)
      EXPECT_EQ(crc32c(std::span(text).subspan(cut), crc32c(std::span(text).first(cut))), whole);
  });
  // Long buffers (the hardware path runs three lanes at once) agree across paths.
  std::mt19937 generator(1);
  std::vector<std::byte> long_buffer(100000);
  for (std::byte& b : long_buffer) b = std::byte{static_cast<uint8_t>(generator())};
  for (const size_t n : {size_t{24575}, size_t{24576}, size_t{24577}, size_t{100000}}) {
    const auto part = std::span(long_buffer).first(n);
    const uint32_t expected = crc32c_bitwise(part, 0x12345678u);
    test::for_each_isa([&] { EXPECT_EQ(crc32c(part, 0x12345678u), expected) << n; });
  }
}

// --- Huffman ----------------------------------------------------------------------------

void expect_round_trip(const std::vector<uint16_t>& symbols, size_t block, int threads) {
  std::vector<std::byte> blob;
  huffman::encode(symbols, block, threads, blob);
  std::vector<uint16_t> back(symbols.size(), 0xdead);
  huffman::decode(blob, back, block, threads);
  EXPECT_EQ(back, symbols);
}

TEST(Huffman, RoundTripsArbitraryStreams) {
  std::mt19937 generator(7);
  std::vector<std::pair<std::string, std::vector<uint16_t>>> cases;
  cases.push_back({"empty", {}});
  cases.push_back({"one symbol", {42}});
  cases.push_back({"all equal", std::vector<uint16_t>(50000, 65535)});
  cases.push_back({"two symbols", {}});
  for (int i = 0; i < 1001; ++i) cases.back().second.push_back(i % 3 == 0 ? 9 : 1000);
  cases.push_back({"uniform bytes", {}});
  for (int i = 0; i < 40000; ++i) cases.back().second.push_back(generator() & 0xff);
  cases.push_back({"geometric", {}});
  std::geometric_distribution<int> geometric(0.01);
  for (int i = 0; i < 40000; ++i)
    cases.back().second.push_back(static_cast<uint16_t>(std::min(geometric(generator), 65535)));
  cases.push_back({"max alphabet", {}});
  for (uint32_t s = 0; s < 65536; ++s) cases.back().second.push_back(static_cast<uint16_t>(s));
  for (int i = 0; i < 30000; ++i) cases.back().second.push_back(generator() & 0x3f);
  std::shuffle(cases.back().second.begin(), cases.back().second.end(), generator);
  cases.push_back({"fibonacci counts (deep tree, length-limited)", {}});
  uint64_t a = 1, b = 1;
  for (uint16_t s = 0; s < 30; ++s) {
    for (uint64_t k = 0; k < a; ++k) cases.back().second.push_back(s);
    const uint64_t c = a + b;
    a = b;
    b = c;
  }
  for (const auto& [name, symbols] : cases) {
    SCOPED_TRACE(name);
    for (const size_t block : {size_t{1}, size_t{7}, size_t{16384}}) {
      if (block == 1 && symbols.size() > 2000) continue;  // one table per symbol: slow
      for (const int threads : {1, 2}) expect_round_trip(symbols, block, threads);
    }
  }
}

TEST(Huffman, CodeLengthsAreCompleteAndLimited) {
  std::vector<uint64_t> fibonacci(40);
  fibonacci[0] = fibonacci[1] = 1;
  for (size_t i = 2; i < fibonacci.size(); ++i) fibonacci[i] = fibonacci[i - 1] + fibonacci[i - 2];
  std::vector<uint64_t> all(65536, 1);
  all[7] = uint64_t{1} << 40;
  for (const auto& counts : {fibonacci, all}) {
    const std::vector<uint8_t> lengths = huffman::code_lengths(counts);
    double kraft = 0;
    int longest = 0;
    for (const uint8_t length : lengths) {
      ASSERT_GT(length, 0);
      kraft += std::ldexp(1.0, -length);
      longest = std::max<int>(longest, length);
    }
    EXPECT_EQ(kraft, 1.0);
    EXPECT_LE(longest, huffman::kMaxLength);
  }
  // Unlimited, Fibonacci weights would need a 39-bit code: the limit bites.
  const std::vector<uint8_t> limited = huffman::code_lengths(fibonacci);
  EXPECT_EQ(*std::max_element(limited.begin(), limited.end()), huffman::kMaxLength);
  const std::vector<uint8_t> short_codes = huffman::code_lengths(fibonacci, 14);
  EXPECT_EQ(*std::max_element(short_codes.begin(), short_codes.end()), 14);
  EXPECT_THROW(huffman::code_lengths(all, 14), std::invalid_argument);  // 65536 > 2^14 symbols
}

TEST(Huffman, DecoderRejectsInvalidTablesAndBlocks) {
  const std::vector<std::vector<uint8_t>> bad = {
      {1, 1, 1},  // over-subscribed
      {1, 2},     // incomplete
      {21, 1},    // too long
      {0, 2, 0},  // a lone symbol must have length 1
  };
  for (const auto& lengths : bad) EXPECT_THROW(huffman::Decoder{lengths}, StreamError);

  std::vector<uint16_t> symbols;
  for (int i = 0; i < 1000; ++i) symbols.push_back(static_cast<uint16_t>(i % 37));
  std::vector<std::byte> blob;
  huffman::encode(symbols, 4096, 1, blob);
  std::vector<uint16_t> back(symbols.size());
  // A symbol more than coded, ten fewer (one fewer may end in the padding
  // bits of the last byte: the count comes from the header), a byte short,
  // a byte too many.
  std::vector<uint16_t> more(symbols.size() + 1), fewer(symbols.size() - 10);
  EXPECT_THROW(huffman::decode(blob, more, 4096, 1), StreamError);
  EXPECT_THROW(huffman::decode(blob, fewer, 4096, 1), StreamError);
  auto shorter = blob;
  shorter.pop_back();
  EXPECT_THROW(huffman::decode(shorter, back, 4096, 1), StreamError);
  auto longer = blob;
  longer.push_back(std::byte{0});
  EXPECT_THROW(huffman::decode(longer, back, 4096, 1), StreamError);
}

// Symbols drawn with probability 2^-length (the distribution the lengths
// are optimal for), so every code, long ones included, occurs in proportion.
std::vector<uint16_t> draw_symbols(const std::vector<uint8_t>& lengths, size_t n,
                                   std::mt19937& generator) {
  std::vector<double> weights;
  for (const uint8_t length : lengths) weights.push_back(length ? std::ldexp(1.0, -length) : 0.0);
  std::discrete_distribution<int> pick(weights.begin(), weights.end());
  std::vector<uint16_t> symbols(n);
  for (uint16_t& s : symbols) s = static_cast<uint16_t>(pick(generator));
  return symbols;
}

// Lengths with count.second symbols of length count.first, in order.
std::vector<uint8_t> lengths_with(const std::vector<std::pair<int, size_t>>& count) {
  std::vector<uint8_t> lengths;
  for (const auto& [length, n] : count)
    lengths.insert(lengths.end(), n, static_cast<uint8_t>(length));
  return lengths;
}

TEST(Huffman, EncodesTheCanonicalBitsLsbFirst) {
  // Codes 0, 10, 110, 111 (MSB first), written LSB first: 1 2 3 0 is the
  // bits 1,0 | 1,1,0 | 1,1,1 | 0 = 0xed then one 0 bit.
  const std::vector<uint8_t> lengths = {1, 2, 3, 3};
  const huffman::Encoder encoder(lengths);
  const uint16_t symbols[] = {1, 2, 3, 0};
  std::vector<std::byte> out(huffman::Encoder::max_bytes(4));
  ASSERT_EQ(encoder.encode(symbols, 4, out.data()), 2u);
  EXPECT_EQ(out[0], std::byte{0xed});
  EXPECT_EQ(out[1], std::byte{0x00});
  std::vector<uint16_t> back(4);
  huffman::Decoder(lengths).decode(std::span(out).first(2), back.data(), 4);
  EXPECT_EQ(back, std::vector<uint16_t>(symbols, symbols + 4));
}

// Every decode path: primary tables narrower than kTableBits, exactly it,
// widened by one bit and to kWideTableBits, second-level tables for codes up to kMaxLength,
// and alphabets at the 65536-symbol limit; decode() and decode2() with two
// different codes, at block sizes that end mid-refill.
TEST(Huffman, DecodesEveryTableWidthAndLongCodes) {
  using huffman::kMaxLength;
  using huffman::kTableBits;
  using huffman::kWideTableBits;
  struct Case {
    std::string name;
    std::vector<uint8_t> lengths;
    int table_bits;  // the width the decoder should pick
  };
  std::vector<Case> cases;
  cases.push_back({"short codes: a 9-bit table", lengths_with({{8, 255}, {9, 2}}), 9});
  // 5002 symbols of 12 and 13 bits (embedding rows at 1e-4): a 13-bit
  // table, one level.
  cases.push_back({"12 and 13 bits", lengths_with({{12, 3190}, {13, 1812}}), 13});
  // Half the symbols in 14-bit codes: the table widens.
  cases.push_back({"many 14-bit codes", lengths_with({{2, 1}, {3, 1}, {13, 1024}, {14, 8192}}),
                   kWideTableBits});
  // A few long codes (under 1/32 of the symbols): a kTableBits table and a
  // second level down to kMaxLength bits.
  std::vector<std::pair<int, size_t>> tail = {{1, 1}};
  for (int length = 2; length < kMaxLength; ++length) tail.push_back({length, 1});
  tail.push_back({kMaxLength, 2});
  cases.push_back({"one code of each length to the limit", lengths_with(tail), kTableBits});
  // 65536 symbols of 15 to 20 bits: every lookup through the second level.
  cases.push_back(
      {"65536 symbols", lengths_with({{15, 15}, {16, 65505}, {20, 16}}), kWideTableBits});
  std::mt19937 generator(11);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    double kraft = 0;
    for (const uint8_t length : c.lengths) kraft += length ? std::ldexp(1.0, -length) : 0.0;
    ASSERT_EQ(kraft, 1.0);
    const huffman::Encoder encoder(c.lengths);
    const huffman::Decoder decoder(c.lengths);
    EXPECT_EQ(decoder.table_bits(), c.table_bits);
    // The second code for decode2: a different table over 300 symbols.
    const std::vector<uint8_t> other_lengths = lengths_with({{8, 212}, {9, 88}});
    const huffman::Encoder other_encoder(other_lengths);
    const huffman::Decoder other_decoder(other_lengths);
    for (const size_t n : {size_t{1}, size_t{5}, size_t{4097}, size_t{70001}}) {
      const std::vector<uint16_t> symbols = draw_symbols(c.lengths, n, generator);
      const std::vector<uint16_t> others = draw_symbols(other_lengths, n / 2 + 3, generator);
      std::vector<std::byte> coded(huffman::Encoder::max_bytes(n));
      std::vector<std::byte> other_coded(huffman::Encoder::max_bytes(others.size()));
      const auto bytes = std::span(coded).first(encoder.encode(symbols.data(), n, coded.data()));
      const auto other_bytes =
          std::span(other_coded)
              .first(other_encoder.encode(others.data(), others.size(), other_coded.data()));
      std::vector<uint16_t> back(n, 0xdead), other_back(others.size(), 0xdead);
      decoder.decode(bytes, back.data(), n);
      EXPECT_EQ(back, symbols) << n << " symbols, decode";
      std::fill(back.begin(), back.end(), 0xdead);
      decoder.decode2(bytes, back.data(), n, other_bytes, other_back.data(), others.size(),
                      &other_decoder);
      EXPECT_EQ(back, symbols) << n << " symbols, decode2";
      EXPECT_EQ(other_back, others) << n << " symbols, decode2 (second stream)";
      // The same stream one byte short must not decode.
      if (bytes.size() > 1) {
        EXPECT_THROW(decoder.decode(bytes.first(bytes.size() - 1), back.data(), n), StreamError);
      }
    }
  }
}

// Against the optimal cost (the sum of the merged weights of Huffman's
// algorithm, by a priority queue): counts from 1 to 2^50, so the radix sort
// of the weights takes up to seven byte passes.
TEST(Huffman, CodeLengthsAreOptimalWhenTheLimitDoesNotBite) {
  std::mt19937_64 generator(5);
  for (const int magnitude : {4, 12, 30, 50}) {
    SCOPED_TRACE(magnitude);
    std::vector<uint64_t> counts(3000);
    for (uint64_t& c : counts) c = (generator() >> (64 - magnitude)) + (generator() % 3 == 0);
    std::priority_queue<uint64_t, std::vector<uint64_t>, std::greater<>> queue;
    for (const uint64_t c : counts)
      if (c) queue.push(c);
    uint64_t optimal = 0;
    while (queue.size() > 1) {
      const uint64_t a = queue.top();
      queue.pop();
      const uint64_t b = queue.top();
      queue.pop();
      optimal += a + b;
      queue.push(a + b);
    }
    const std::vector<uint8_t> lengths = huffman::code_lengths(counts);
    uint64_t cost = 0;
    int longest = 0;
    for (size_t s = 0; s < counts.size(); ++s) {
      EXPECT_EQ(lengths[s] == 0, counts[s] == 0);
      cost += counts[s] * lengths[s];
      longest = std::max<int>(longest, lengths[s]);
    }
    ASSERT_LE(longest, huffman::kMaxLength);
    if (longest < huffman::kMaxLength) {
      EXPECT_EQ(cost, optimal);
    }
  }
}

// --- the error bound ------------------------------------------------------------------------

TEST(CompressBound, HoldsOnRandomEmbeddingValues) {
  const std::vector<float> in = normal_values(257 * 64, 1);
  for (const double eb : {0.1, 1e-3, 3.3e-5, 1e-7})
    check_bound(in, 257, 64, {ErrorBound::absolute, eb});
  for (const double eb : {0.05, 1e-4, 1e-6}) check_bound(in, 257, 64, {ErrorBound::relative, eb});
  // Odd shapes: rows not multiples of 16 values, tails in every block.
  const std::vector<float> odd = normal_values(33 * 37, 2, 3.0f);
  check_bound(odd, 33, 37, {ErrorBound::absolute, 0.01});
  check_bound(odd, 33, 37, {ErrorBound::relative, 0.01});
  // Many blocks (4096 values each) on two threads.
  const std::vector<float> large = normal_values(700 * 64, 3);
  Params p = params_for(Codec::quantize_huffman, {ErrorBound::absolute, 1e-3});
  p.threads = 2;
  DecodeOptions options;
  options.threads = 2;
  expect_bounded(large, unpack(pack(large, 700, 64, p), 700, 64, options), 1e-3);
}

TEST(CompressBound, HoldsOnConstantAndHugeRangeInputs) {
  check_bound(std::vector<float>(100 * 8, 0.3f), 100, 8, {ErrorBound::absolute, 1e-3});
  check_bound(std::vector<float>(100 * 8, 0.3f), 100, 8, {ErrorBound::relative, 1e-3});
  std::mt19937 generator(3);
  std::vector<float> huge(64 * 32);
  for (float& x : huge) {
    const float magnitude = (generator() & 1) ? 1e30f : 1e-30f;
    const float scale = 1.0f + static_cast<float>(generator() % 1000) / 1000.0f;
    x = ((generator() & 2) ? -1.0f : 1.0f) * magnitude * scale;
  }
  for (const double eb : {1e-3, 1e25, 1e29, 1e300})
    check_bound(huge, 64, 32, {ErrorBound::absolute, eb});
  for (const double eb : {1e-3, 1e-9, 0.7}) check_bound(huge, 64, 32, {ErrorBound::relative, eb});
  // FLT_MAX of both signs: the range (2 FLT_MAX) only fits in double.
  std::vector<float> extreme = {3.4028235e38f, -3.4028235e38f, 1.0f, -2.5f, 0.0f, 7.0e37f};
  check_bound(extreme, 2, 3, {ErrorBound::relative, 1e-3});
  check_bound(extreme, 2, 3, {ErrorBound::relative, 0.6});
}

TEST(CompressBound, HoldsOnSubnormals) {
  std::mt19937 generator(4);
  std::vector<float> in(40 * 16);
  for (float& x : in) x = from_bits((generator() & 0x807fffffu));
  for (const double eb : {1e-45, 1e-41, 1e-39, 1e-38, 1e-30})
    check_bound(in, 40, 16, {ErrorBound::absolute, eb});
  check_bound(in, 40, 16, {ErrorBound::relative, 1e-3});
}

TEST(CompressBound, KeepsNanInfAndNegativeZeroBitExactly) {
  std::vector<float> in = normal_values(30 * 10, 5);
  std::mt19937 generator(5);
  for (size_t i = 0; i < in.size(); i += 3) in[i] = from_bits(kSpecials[generator() % 10]);
  for (const double eb : {1e-3, 1.0}) check_bound(in, 30, 10, {ErrorBound::absolute, eb});
  check_bound(in, 30, 10, {ErrorBound::relative, 1e-2});
  std::vector<float> only_specials(10 * 4);
  for (size_t i = 0; i < only_specials.size(); ++i) only_specials[i] = from_bits(kSpecials[i % 10]);
  check_bound(only_specials, 10, 4, {ErrorBound::absolute, 1e-3});
  check_bound(only_specials, 10, 4, {ErrorBound::relative, 1e-3});  // range 0: lossless
}

TEST(CompressBound, HoldsAtQuantisationBoundariesAndMaximumCodes) {
  for (const double eb : {0x1p-10, 1e-3, 0.37}) {
    SCOPED_TRACE("eb = " + std::to_string(eb));
    std::vector<float> in;
    // The step the compressor uses: 2 x (eb rounded down to a float).
    float bound = static_cast<float>(eb);
    if (static_cast<double>(bound) > eb) bound = std::nextafter(bound, 0.0f);
    const float step = 2 * bound;
    for (int k = -40000; k <= 40000; k += 7) {
      const float boundary = (static_cast<float>(k) + 0.5f) * step;  // halfway between codes
      in.push_back(boundary);
      in.push_back(std::nextafter(boundary, 0.0f));
      in.push_back(std::nextafter(boundary, 1e30f));
    }
    // Alternating signs at and around the largest code.
    for (const float k : {32766.5f, 32767.0f, 32767.49f, 32767.5f, 32767.51f, 32768.0f}) {
      for (int repeat = 0; repeat < 8; ++repeat) {
        in.push_back(k * step);
        in.push_back(-k * step);
      }
    }
    while (in.size() % 16 != 0) in.push_back(0.0f);
    check_bound(in, in.size() / 16, 16, {ErrorBound::absolute, eb});
  }
}

TEST(CompressBound, HoldsWhenTheBoundIsNearTheValuesUlp) {
  std::mt19937 generator(6);
  std::uniform_real_distribution<float> uniform(1000.0f, 1100.0f);
  std::vector<float> in(50 * 16);
  for (size_t i = 0; i < in.size(); ++i) in[i] = (i % 2 ? -1.0f : 1.0f) * uniform(generator);
  const double ulp = 0x1p-14;  // of values in [1024, 2048); half of that in [1000, 1024)
  for (const double k : {0.25, 0.5, 0.75, 1.0, 1.5, 3.0, 100.0})
    check_bound(in, 50, 16, {ErrorBound::absolute, k * ulp});
}

TEST(CompressBound, ZeroBoundIsLossless) {
  std::vector<float> in = normal_values(64 * 16, 8);
  std::mt19937 generator(8);
  for (size_t i = 0; i < in.size(); i += 5) in[i] = from_bits(generator());  // any bits
  for (size_t i = 1; i < in.size(); i += 7) in[i] = from_bits(kSpecials[generator() % 10]);
  std::copy_n(in.begin(), 16, in.begin() + 32);  // a repeated row
  for_each_isa([&] {
    for (const Codec codec : kBoundedCodecs) {
      for (const ErrorBound bound :
           {ErrorBound{ErrorBound::absolute, 0.0}, ErrorBound{ErrorBound::relative, 0.0},
            ErrorBound{ErrorBound::absolute, 1e-46}}) {
        SCOPED_TRACE(codec_name(codec));
        const auto stream = pack(in, 64, 16, params_for(codec, bound));
        EXPECT_EQ(inspect(stream).step, 0.0f);
        expect_bounded(in, unpack(stream, 64, 16), 0.0);
      }
    }
    // Relative bound on constant rows: range 0, so lossless, and tiny.
    const std::vector<float> constant(1000 * 16, -1.25f);
    const auto stream =
        pack(constant, 1000, 16, params_for(Codec::quantize_huffman, {ErrorBound::relative, 0.1}));
    expect_bounded(constant, unpack(stream, 1000, 16), 0.0);
    EXPECT_LT(stream.size(), 2500u);
  });
}

TEST(CompressBound, TiersAndThreadsGiveIdenticalStreams) {
  std::vector<float> in = normal_values(1100 * 64, 9);
  for (size_t i = 0; i < in.size(); i += 101) in[i] = from_bits(kSpecials[i % 10]);
  for (size_t i = 0; i < in.size(); i += 997) in[i] = 1e6f;
  for (const Codec codec : kAllCodecs) {
    for (const Predictor predictor : kPredictors) {
      SCOPED_TRACE(codec_name(codec));
      Params p = params_for(codec, {ErrorBound::absolute, 1e-3}, predictor);
      if (!(codec == Codec::quantize_huffman || codec == Codec::dedup_quantize_huffman))
        p.predictor = Predictor::none;
      const auto fast = pack(in, 1100, 64, p);
      const auto fast_out = unpack(fast, 1100, 64);
      test::for_each_isa([&] {
        Params tier = p;
        const auto stream = pack(in, 1100, 64, tier);
        const auto out = unpack(fast, 1100, 64);
        tier.threads = 2;
        const auto threaded = pack(in, 1100, 64, tier);
        EXPECT_EQ(fast, stream);
        EXPECT_EQ(fast, threaded);
        EXPECT_EQ(0, std::memcmp(fast_out.data(), out.data(), 4 * fast_out.size()));
      });
    }
  }
}

// --- dedup -----------------------------------------------------------------------------

TEST(CompressDedup, RepeatedRowsComeBackExactly) {
  const size_t dim = 24;
  std::vector<float> distinct = normal_values(6 * dim, 10);
  distinct[dim + 3] = from_bits(0x7fc01234u);                            // a NaN row
  std::fill_n(distinct.begin() + 2 * dim, dim, 0.0f);                    // +0 row
  std::fill_n(distinct.begin() + 3 * dim, dim, from_bits(0x80000000u));  // -0 row: differs
  std::vector<float> in;
  const int order[] = {0, 1, 1, 2, 3, 2, 3, 0, 0, 4, 5, 1, 1, 1, 5, 4, 2};
  for (const int k : order)
    in.insert(in.end(), distinct.begin() + k * dim, distinct.begin() + (k + 1) * dim);
  const size_t rows = std::size(order);
  for_each_isa([&] {
    const auto stream = pack(in, rows, dim, params_for(Codec::dedup));
    const auto out = unpack(stream, rows, dim);
    EXPECT_EQ(0, std::memcmp(out.data(), in.data(), 4 * in.size()));
    // 6 distinct rows of 96 bytes, 17 indices of 3 bits.
    EXPECT_EQ(inspect(stream).section_bytes[1], 6u * dim * 4);
    EXPECT_EQ(inspect(stream).section_bytes[0], 8u + (17 * 3 + 7) / 8);
    const auto lossy = pack(
        in, rows, dim, params_for(Codec::dedup_quantize_huffman, {ErrorBound::absolute, 1e-3}));
    expect_bounded(in, unpack(lossy, rows, dim), 1e-3);
  });
}

TEST(CompressDedup, AllRowsEqualAndAllDistinct) {
  const std::vector<float> row = normal_values(16, 11);
  std::vector<float> same;
  for (int r = 0; r < 500; ++r) same.insert(same.end(), row.begin(), row.end());
  const auto stream = pack(same, 500, 16, params_for(Codec::dedup));
  EXPECT_EQ(stream.size(), 80u + 8 + 64);  // width 0: no index bits
  EXPECT_EQ(unpack(stream, 500, 16), same);
  const std::vector<float> all = normal_values(300 * 16, 12);
  EXPECT_EQ(unpack(pack(all, 300, 16, params_for(Codec::dedup)), 300, 16), all);
}

// --- every codec, every shape ------------------------------------------------------------------

TEST(CompressCodecs, EveryCodecRoundTripsEveryShape) {
  const std::pair<size_t, size_t> shapes[] = {{0, 0}, {0, 7},   {7, 0},    {1, 1},   {5, 1},
                                              {1, 5}, {33, 16}, {3, 1000}, {300, 64}};
  for_each_isa([&] {
    for (const auto& [rows, dim] : shapes) {
      const std::vector<float> in =
          normal_values(rows * dim, static_cast<unsigned>(rows + dim), 2.0f);
      for (const Codec codec : kAllCodecs) {
        SCOPED_TRACE(std::string(codec_name(codec)) + " " + std::to_string(rows) + " x " +
                     std::to_string(dim));
        const auto stream = pack(in, rows, dim, params_for(codec, {ErrorBound::relative, 1e-3}));
        const StreamInfo info = inspect(stream);
        EXPECT_EQ(info.codec, codec);
        EXPECT_EQ(info.rows, rows);
        EXPECT_EQ(info.dim, dim);
        EXPECT_EQ(info.stream_bytes, stream.size());
        EXPECT_EQ(info.error_bounded, is_error_bounded(codec));
        const std::vector<float> out = unpack(stream, rows, dim);
        if (codec == Codec::raw || codec == Codec::dedup) {
          EXPECT_EQ(out, in);
        } else if (is_error_bounded(codec)) {
          expect_bounded(in, out, absolute_for(in, {ErrorBound::relative, 1e-3}));
        } else {
          for (size_t i = 0; i < in.size(); ++i) {
            if (codec == Codec::fp16) {
              ASSERT_EQ(out[i], half_to_float(float_to_half(in[i])));
            }
            if (codec == Codec::bf16) {
              ASSERT_EQ(out[i], bf16_to_float(float_to_bf16_rne(in[i])));
            }
            if (codec == Codec::int8) {
              float largest = 0;
              for (size_t j = i / dim * dim; j < (i / dim + 1) * dim; ++j)
                largest = std::max(largest, std::fabs(in[j]));
              ASSERT_LE(std::fabs(out[i] - in[i]), largest / 254 * 1.0001f + 1e-30f) << i;
            }
          }
        }
      }
    }
  });
}

TEST(CompressCodecs, Fp16MatchesItsScalarDefinition) {
  struct Case {
    uint32_t in;
    uint16_t out;
  };
  const Case cases[] = {
      {0x3f800000u, 0x3c00}, {0xc0000000u, 0xc000}, {0x477fe000u, 0x7bff},  // 1, -2, 65504
      {0x477fefffu, 0x7bff}, {0x477ff000u, 0x7c00}, {0x7f7fffffu, 0x7c00},  // overflow at 65520
      {0x7f800000u, 0x7c00}, {0xff800000u, 0xfc00}, {0x33800000u, 0x0001},  // inf, 2^-24
      {0x33000000u, 0x0000}, {0x33000001u, 0x0001}, {0x33c00000u, 0x0002},  // ties in subnormals
      {0x38800000u, 0x0400}, {0x387ff000u, 0x0400}, {0x80000000u, 0x8000},  // smallest normal, -0
      {0x3f801000u, 0x3c00}, {0x3f803000u, 0x3c02}, {0x7fc00000u, 0x7e00},  // ties, NaN
      {0x7f802000u, 0x7e01}, {0xffffffffu, 0xffff},                         // NaN payloads
  };
  for (const Case& c : cases) EXPECT_EQ(float_to_half(from_bits(c.in)), c.out) << std::hex << c.in;
  std::mt19937 generator(13);
  std::vector<float> in(100003);
  for (size_t i = 0; i < in.size(); ++i)
    in[i] = i < std::size(cases) ? from_bits(cases[i].in) : from_bits(generator());
  std::vector<float> all_halves(65536);
  for_each_isa([&] {
    const auto stream = pack(in, in.size(), 1, params_for(Codec::fp16));
    const std::vector<float> out = unpack(stream, in.size(), 1);
    for (size_t i = 0; i < in.size(); ++i)
      ASSERT_EQ(to_bits(out[i]), to_bits(half_to_float(float_to_half(in[i]))))
          << std::hex << to_bits(in[i]);
    // Every half decodes like half_to_float (a crafted fp16 section).
    Params p = params_for(Codec::fp16);
    auto halves = pack(std::vector<float>(65536), 65536, 1, p);
    for (uint32_t h = 0; h < 65536; ++h) std::memcpy(halves.data() + 80 + 2 * h, &h, 2);
    DecodeOptions unchecked;
    unchecked.verify_checksum = false;
    decompress(halves, all_halves.data(), 65536, 1, unchecked);
    for (uint32_t h = 0; h < 65536; ++h)
      ASSERT_EQ(to_bits(all_halves[h]), to_bits(half_to_float(static_cast<uint16_t>(h)))) << h;
  });
}

TEST(CompressCodecs, AppendsAndConcatenatedStreamsSplit) {
  const std::vector<float> a = normal_values(10 * 8, 14), b = normal_values(20 * 8, 15);
  std::vector<std::byte> buffer;
  const size_t first = compress(a.data(), 10, 8, params_for(Codec::raw), buffer);
  const size_t second = compress(
      b.data(), 20, 8, params_for(Codec::quantize_huffman, {ErrorBound::absolute, 1e-2}), buffer);
  ASSERT_EQ(buffer.size(), first + second);
  const StreamInfo info = inspect(buffer);  // the first stream, with more bytes behind it
  EXPECT_EQ(info.stream_bytes, first);
  EXPECT_EQ(unpack(std::span(buffer).first(first), 10, 8), a);
  expect_bounded(b, unpack(std::span(buffer).subspan(first), 20, 8), 1e-2);
  EXPECT_THROW(unpack(buffer, 10, 8), StreamError);  // trailing bytes
}

TEST(CompressCodecs, InvalidParametersThrow) {
  const std::vector<float> in(16, 1.0f);
  std::vector<std::byte> out;
  Params p;
  p.bound = {ErrorBound::absolute, -1.0};
  EXPECT_THROW(compress(in.data(), 4, 4, p, out), std::invalid_argument);
  p.bound = {ErrorBound::absolute, std::nan("")};
  EXPECT_THROW(compress(in.data(), 4, 4, p, out), std::invalid_argument);
  p.bound = {ErrorBound::relative, std::numeric_limits<double>::infinity()};
  EXPECT_THROW(compress(in.data(), 4, 4, p, out), std::invalid_argument);
  p.bound = {};
  p.threads = 0;
  EXPECT_THROW(compress(in.data(), 4, 4, p, out), std::invalid_argument);
  p.threads = 1;
  p.codec = static_cast<Codec>(77);
  EXPECT_THROW(compress(in.data(), 4, 4, p, out), std::invalid_argument);
  p.codec = Codec::raw;
  EXPECT_THROW(compress(in.data(), SIZE_MAX / 2, 4, p, out), std::invalid_argument);
}

// --- corrupted and truncated streams ---------------------------------------------------------

// Small streams of every codec (with a repeated row and special values).
std::vector<std::pair<std::string, std::vector<std::byte>>> small_streams() {
  std::vector<float> in = normal_values(8 * 4, 16, 0.5f);
  std::copy_n(in.begin(), 4, in.begin() + 12);
  in[5] = from_bits(0x7fc00001u);
  in[9] = -std::numeric_limits<float>::infinity();
  in[10] = 1e20f;
  std::vector<std::pair<std::string, std::vector<std::byte>>> streams;
  for (const Codec codec : kAllCodecs)
    for (const Predictor predictor : kPredictors) {
      const bool quantizing =
          codec == Codec::quantize_huffman || codec == Codec::dedup_quantize_huffman;
      if (!quantizing && predictor != Predictor::none) continue;
      // Appended piece by piece: GCC 12 warns falsely (-Wrestrict, its bug
      // 105651) on "literal" + std::string here, depending on inlining.
      std::string name = codec_name(codec);
      if (quantizing) {
        name += '/';
        name += std::to_string(int(predictor));
      }
      streams.push_back(
          {name, pack(in, 8, 4, params_for(codec, {ErrorBound::absolute, 1e-2}, predictor))});
    }
  streams.push_back({"lossless", pack(in, 8, 4, params_for(Codec::quantize_huffman))});
  return streams;
}

TEST(CompressStream, EveryFlippedByteIsRejected) {
  for (const auto& [name, stream] : small_streams()) {
    SCOPED_TRACE(name);
    EXPECT_NO_THROW(unpack(stream, 8, 4));
    for (size_t at = 0; at < stream.size(); ++at) {
      for (const uint8_t flip : {0x01, 0x80, 0xff}) {
        auto bad = stream;
        bad[at] ^= std::byte{flip};
        EXPECT_THROW(unpack(bad, 8, 4), StreamError) << "byte " << at << " ^ " << int(flip);
      }
    }
  }
}

TEST(CompressStream, EveryTruncationIsRejected) {
  for (const auto& [name, stream] : small_streams()) {
    SCOPED_TRACE(name);
    for (size_t length = 0; length < stream.size(); ++length) {
      try {
        unpack(std::span(stream).first(length), 8, 4);
        ADD_FAILURE() << "a " << length << "-byte prefix decoded";
      } catch (const StreamError& e) {
        EXPECT_EQ(e.problem(), Problem::truncated) << length << ": " << e.what();
        EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos);
      }
    }
    EXPECT_THROW(inspect(std::span(stream).first(stream.size() - 1)), StreamError);
  }
}

// Rewrites the stream's checksum after an edit, to reach the checks behind it.
void reseal(std::vector<std::byte>& stream) {
  std::vector<std::byte> copy = stream;
  std::memset(copy.data() + 12, 0, 4);
  const uint32_t crc = crc32c(copy);
  std::memcpy(stream.data() + 12, &crc, 4);
}

Problem problem_of(const std::vector<std::byte>& stream, size_t rows, size_t dim) {
  try {
    unpack(stream, rows, dim);
  } catch (const StreamError& e) {
    return e.problem();
  }
  ADD_FAILURE() << "no error";
  return Problem::corrupt;
}

std::string message_of(const std::vector<std::byte>& stream, size_t rows, size_t dim) {
  try {
    unpack(stream, rows, dim);
  } catch (const StreamError& e) {
    return e.what();
  }
  return "no error";
}

TEST(CompressStream, EachProblemIsNamed) {
  const std::vector<float> in = normal_values(6 * 5, 17);
  const auto good =
      pack(in, 6, 5, params_for(Codec::quantize_huffman, {ErrorBound::absolute, 1e-3}));
  auto bad = good;
  bad[0] = std::byte{'X'};
  EXPECT_EQ(problem_of(bad, 6, 5), Problem::bad_magic);
  EXPECT_NE(message_of(bad, 6, 5).find("bad magic"), std::string::npos);
  bad = good;
  bad[8] = std::byte{99};
  reseal(bad);
  EXPECT_EQ(problem_of(bad, 6, 5), Problem::unknown_codec);
  EXPECT_NE(message_of(bad, 6, 5).find("unknown codec"), std::string::npos);
  bad = good;
  bad[4] = std::byte{2};
  EXPECT_EQ(problem_of(bad, 6, 5), Problem::unsupported_version);
  bad = good;
  bad[good.size() - 1] ^= std::byte{4};
  EXPECT_EQ(problem_of(bad, 6, 5), Problem::checksum_mismatch);
  EXPECT_NE(message_of(bad, 6, 5).find("checksum mismatch"), std::string::npos);
  bad = good;
  bad.push_back(std::byte{0});
  EXPECT_EQ(problem_of(bad, 6, 5), Problem::trailing_bytes);
  EXPECT_EQ(problem_of(good, 5, 6), Problem::shape_mismatch);
  EXPECT_EQ(problem_of(good, 6, 4), Problem::shape_mismatch);
  // Consistent-looking lies behind a valid checksum.
  bad = good;
  bad[52] = std::byte{3};  // sections
  reseal(bad);
  EXPECT_EQ(problem_of(bad, 6, 5), Problem::corrupt);
  bad = good;
  const float step = 0.0f;  // claims lossless, but holds codes
  std::memcpy(bad.data() + 48, &step, 4);
  reseal(bad);
  EXPECT_EQ(problem_of(bad, 6, 5), Problem::corrupt);
}

// Behind a matching checksum (as a fuzzer without it sees the parsers), any
// corruption either throws StreamError or decodes something: never a crash
// or an access outside the buffers (run under AddressSanitizer to see).
TEST(CompressStream, CorruptionBehindAValidChecksumNeverCrashes) {
  DecodeOptions unchecked;
  unchecked.verify_checksum = false;
  for (const auto& [name, stream] : small_streams()) {
    SCOPED_TRACE(name);
    for (size_t at = 0; at < stream.size(); ++at) {
      for (const uint8_t flip : {0x01, 0x10, 0x80, 0xff}) {
        auto bad = stream;
        bad[at] ^= std::byte{flip};
        try {
          unpack(bad, 8, 4, unchecked);
        } catch (const StreamError&) {
        }
      }
    }
  }
  // Larger streams (several blocks), random multi-byte damage.
  std::vector<float> in = zipf_rows(600, 64, 400, 1.1, 18);
  in[77] = from_bits(0xffc00000u);
  std::mt19937 generator(19);
  for (const Codec codec : {Codec::quantize_huffman, Codec::dedup_quantize_huffman, Codec::dedup}) {
    for (const double eb : {1e-3, 0.0}) {
      const auto stream = pack(in, 600, 64, params_for(codec, {ErrorBound::absolute, eb}));
      for (int trial = 0; trial < 150; ++trial) {
        auto bad = stream;
        for (int k = 0; k < 1 + trial % 4; ++k)
          bad[generator() % bad.size()] ^= std::byte{static_cast<uint8_t>(1 + generator() % 255)};
        try {
          unpack(bad, 600, 64, unchecked);
        } catch (const StreamError&) {
        }
      }
    }
  }
}

// Regression (found by tests/fuzz/fuzz_decompress): a header with dim 0 and
// rows >= 2^62 passed the shape check, 4 x rows (int8's per-row scales)
// wrapped around, and the decoder read scales far past the stream. Such a
// row count must be rejected as corrupt by inspect and decompress alike.
TEST(CompressStream, RowCountsWhoseScaleBytesOverflowAreRejected) {
  const auto good = pack(std::vector<float>{}, 3, 0, params_for(Codec::int8));
  ASSERT_EQ(inspect(good).section_bytes[0], 12u);  // 3 scales of 4 bytes
  // 4 x (2^62 + 3) = 12 (mod 2^64): the section size the stream really has.
  auto bad = good;
  const uint64_t rows = (uint64_t{1} << 62) + 3;
  std::memcpy(bad.data() + 16, &rows, 8);
  reseal(bad);
  EXPECT_THROW(inspect(bad), StreamError);
  EXPECT_EQ(problem_of(bad, static_cast<size_t>(rows), 0), Problem::corrupt);
  EXPECT_NE(message_of(bad, static_cast<size_t>(rows), 0).find("shape too large"),
            std::string::npos);
  // Any row count up to the limit still round-trips when its bytes add up.
  EXPECT_EQ(unpack(good, 3, 0).size(), 0u);
}

// --- ratio and the codec choice ------------------------------------------------------------------

TEST(CompressRatio, ZipfRepeatedEmbeddingsCompressMoreThanTwice) {
  const size_t rows = 4096, dim = 64;
  const std::vector<float> in = zipf_rows(rows, dim, 20000, 1.05, 20);
  const double raw = 4.0 * rows * dim;
  const ErrorBound bound{ErrorBound::absolute, 1e-3};
  const auto quantized = pack(in, rows, dim, params_for(Codec::quantize_huffman, bound));
  const auto deduped = pack(in, rows, dim, params_for(Codec::dedup));
  const auto both = pack(in, rows, dim, params_for(Codec::dedup_quantize_huffman, bound));
  EXPECT_GT(raw / static_cast<double>(quantized.size()), 2.0);
  EXPECT_GT(raw / static_cast<double>(both.size()), raw / static_cast<double>(quantized.size()));
  EXPECT_GT(raw / static_cast<double>(deduped.size()), 1.2);
  expect_bounded(in, unpack(both, rows, dim), 1e-3);
}

TEST(CompressEstimate, PredictsSizesAndChoosesTheFastestCodec) {
  const size_t rows = 8192, dim = 64;
  const std::vector<float> in = zipf_rows(rows, dim, 30000, 1.05, 21);
  const ErrorBound bound{ErrorBound::absolute, 1e-3};
  const Estimate e = estimate(in.data(), rows, dim, bound, Predictor::none, 1024);
  EXPECT_EQ(e.sample_rows, 1024u);
  for (const Codec codec : kAllCodecs) {
    SCOPED_TRACE(codec_name(codec));
    const double actual = static_cast<double>(pack(in, rows, dim, params_for(codec, bound)).size());
    EXPECT_NEAR(e.predicted_bytes(codec) / actual, 1.0, 0.05);
  }
  // With every rate equal, the smallest stream wins on a slow link; on an
  // infinitely fast one, the fastest codec.
  Throughputs rates;
  rates.fill({2e9, 2e9});
  rates[static_cast<size_t>(Codec::raw)] = {20e9, 20e9};
  EXPECT_EQ(choose_codec(e, 1e15, rates).codec, Codec::raw);
  EXPECT_EQ(choose_codec(e, 1e6, rates).codec, Codec::dedup_quantize_huffman);
  const Choice choice = choose_codec(e, 1e9, rates);
  for (const Codec codec : kBoundedCodecs)
    EXPECT_LE(choice.seconds, choice.seconds_of[static_cast<size_t>(codec)]);
  // Measured rates: positive and finite (their size is the benchmark's business).
  const Throughput measured =
      measure_throughput(in.data(), 256, dim, params_for(Codec::quantize_huffman, bound), 1);
  EXPECT_TRUE(measured.compress > 0 && std::isfinite(measured.compress));
  EXPECT_TRUE(measured.decompress > 0 && std::isfinite(measured.decompress));
  EXPECT_THROW(choose_codec(e, 0.0, rates), std::invalid_argument);
}

}  // namespace
}  // namespace paralab::kernels::compress
