// cpu:: BF16 conversions and the Kahan update against the reference, bit for
// bit, on both CPU paths (AVX-512 and portable), plus the statistical
// properties of stochastic rounding and the point of Kahan compensation.
#include <gtest/gtest.h>
#include <omp.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "kernel_test_support.hpp"
#include "kernels/bf16.hpp"

namespace paralab::kernels {
namespace {

using test::for_each_isa;
using test::ThreadCount;

float from_bits(uint32_t bits) {
  return std::bit_cast<float>(bits);
}
uint32_t to_bits(float x) {
  return std::bit_cast<uint32_t>(x);
}

std::vector<uint16_t> bits_of(const std::vector<bf16>& values) {
  std::vector<uint16_t> bits(values.size());
  for (size_t i = 0; i < values.size(); ++i) bits[i] = values[i].bits;
  return bits;
}

std::vector<uint16_t> cpu_convert(const std::vector<float>& in, Rounding rounding,
                                  uint64_t seed = 0, uint64_t first = 0) {
  std::vector<bf16> out(in.size());
  cpu::convert(in.data(), out.data(), in.size(), rounding, seed, first);
  return bits_of(out);
}

std::vector<uint16_t> reference_convert(const std::vector<float>& in, Rounding rounding,
                                        uint64_t seed = 0, uint64_t first = 0) {
  std::vector<bf16> out(in.size());
  reference::convert(in.data(), out.data(), in.size(), rounding, seed, first);
  return bits_of(out);
}

// --- hand-picked values ------------------------------------------------------

struct Case {
  uint32_t in;
  uint16_t nearest_even, truncated;
  const char* what;
};

const Case kCases[] = {
    {0x3f800000, 0x3f80, 0x3f80, "1.0"},
    {0x3f808000, 0x3f80, 0x3f80, "tie, even below: stays"},
    {0x3f818000, 0x3f82, 0x3f81, "tie, odd below: up to even"},
    {0x3f808001, 0x3f81, 0x3f80, "just above a tie"},
    {0x3f817fff, 0x3f81, 0x3f81, "just below a tie"},
    {0xbf808000, 0xbf80, 0xbf80, "negative tie, even"},
    {0xbf818000, 0xbf82, 0xbf81, "negative tie, odd"},
    {0x3fffffff, 0x4000, 0x3fff, "carry into the exponent"},
    {0x7f7f0000, 0x7f7f, 0x7f7f, "largest finite BF16"},
    {0x7f7f7fff, 0x7f7f, 0x7f7f, "just below the tie above the largest"},
    {0x7f7f8000, 0x7f80, 0x7f7f, "tie above the largest: odd, so to inf"},
    {0x7f7fffff, 0x7f80, 0x7f7f, "FLT_MAX overflows to inf"},
    {0xff7fffff, 0xff80, 0xff7f, "-FLT_MAX overflows to -inf"},
    {0xff7f0000, 0xff7f, 0xff7f, "most negative finite BF16"},
    {0x7f800000, 0x7f80, 0x7f80, "inf"},
    {0xff800000, 0xff80, 0xff80, "-inf"},
    {0x7fc00000, 0x7fc0, 0x7fc0, "quiet NaN"},
    {0xffc00000, 0xffc0, 0xffc0, "negative quiet NaN"},
    {0x7f800001, 0x7fc0, 0x7fc0, "signalling NaN, payload only in the low half"},
    {0xff800001, 0xffc0, 0xffc0, "negative signalling NaN"},
    {0x7fa00000, 0x7fe0, 0x7fe0, "signalling NaN with a high payload bit"},
    {0x7f812345, 0x7fc1, 0x7fc1, "NaN payload top bits kept"},
    {0xffffffff, 0xffff, 0xffff, "all-ones NaN"},
    {0x7fff8000, 0x7fff, 0x7fff, "NaN that rounding would carry into the sign"},
    {0x00000000, 0x0000, 0x0000, "zero"},
    {0x80000000, 0x8000, 0x8000, "negative zero"},
    {0x00000001, 0x0000, 0x0000, "smallest FP32 subnormal rounds to zero"},
    {0x80000001, 0x8000, 0x8000, "negative tiny subnormal to -0"},
    {0x00008000, 0x0000, 0x0000, "subnormal tie, even below"},
    {0x00018000, 0x0002, 0x0001, "subnormal tie, odd below"},
    {0x00010000, 0x0001, 0x0001, "smallest BF16 subnormal"},
    {0x00408000, 0x0040, 0x0040, "subnormal tie mid-range"},
    {0x00417fff, 0x0041, 0x0041, "subnormal just below a tie"},
    {0x007fffff, 0x0080, 0x007f, "largest subnormal rounds up to the smallest normal"},
    {0x807fffff, 0x8080, 0x807f, "negative largest subnormal"},
    {0x00800000, 0x0080, 0x0080, "smallest normal"},
};

// Each case at every position of a vector (so every SIMD lane, and the masked
// tail, sees it) among ordinary values.
std::vector<float> spread(uint32_t bits, size_t length, size_t position) {
  std::vector<float> values(length, 1.5f);
  values[position] = from_bits(bits);
  return values;
}

TEST(Bf16Convert, HandPickedValuesRoundBitExactly) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.what);
    EXPECT_EQ(float_to_bf16_rne(from_bits(c.in)).bits, c.nearest_even);  // the scalar definition
    EXPECT_EQ(reference_convert({from_bits(c.in)}, Rounding::truncate)[0], c.truncated);
  }
  for_each_isa([] {
    for (const Case& c : kCases) {
      SCOPED_TRACE(c.what);
      for (size_t position = 0; position < 19; ++position) {
        const std::vector<float> values = spread(c.in, 19, position);
        EXPECT_EQ(cpu_convert(values, Rounding::nearest_even)[position], c.nearest_even);
        EXPECT_EQ(cpu_convert(values, Rounding::truncate)[position], c.truncated);
      }
    }
  });
}

TEST(Bf16Convert, EveryBf16WidensExactly) {
  std::vector<bf16> all(65536);
  for (uint32_t i = 0; i < 65536; ++i) all[i].bits = static_cast<uint16_t>(i);
  for_each_isa([&] {
    std::vector<float> wide(all.size());
    cpu::convert(all.data(), wide.data(), all.size());
    for (uint32_t i = 0; i < 65536; ++i) ASSERT_EQ(to_bits(wide[i]), i << 16) << "bf16 " << i;
  });
}

// --- whole arrays against the reference ---------------------------------------

// Random bit patterns (every class: NaN, inf, subnormal, zero), exact ties and
// near-ties, and values near the overflow threshold.
std::vector<float> awkward_values(size_t n, uint32_t seed) {
  std::mt19937 generator(seed);
  std::vector<float> values(n);
  for (size_t i = 0; i < n; ++i) {
    uint32_t bits = generator();
    switch (i % 5) {
      case 0:
        break;  // anything
      case 1:
        bits = (bits & 0xffff0000u) | 0x8000u;
        break;  // exact tie
      case 2:
        bits = (bits & 0x807f0000u) | 0x7f00ffffu;
        break;  // huge, near overflow
      case 3:
        bits = (bits & 0x807fffffu);
        break;  // subnormal or zero
      case 4:
        bits = (bits & 0xffff0000u) | (0x7ffeu + i % 3);
        break;  // around a tie
    }
    values[i] = from_bits(bits);
  }
  return values;
}

const size_t kLengths[] = {0, 1, 15, 16, 17, 31, 33, 1000, 1000003};

TEST(Bf16Convert, RandomArraysMatchReferenceInEveryMode) {
  for (const size_t n : kLengths) {
    SCOPED_TRACE("n = " + std::to_string(n));
    const std::vector<float> in = awkward_values(n, static_cast<uint32_t>(n) + 1);
    const auto nearest = reference_convert(in, Rounding::nearest_even);
    const auto truncated = reference_convert(in, Rounding::truncate);
    const auto stochastic = reference_convert(in, Rounding::stochastic, 42, 7);
    for (const int threads : {1, 3}) {
      SCOPED_TRACE("threads = " + std::to_string(threads));
      ThreadCount scope(threads);
      for_each_isa([&] {
        EXPECT_EQ(cpu_convert(in, Rounding::nearest_even), nearest);
        EXPECT_EQ(cpu_convert(in, Rounding::truncate), truncated);
        EXPECT_EQ(cpu_convert(in, Rounding::stochastic, 42, 7), stochastic);
      });
    }
  }
}

TEST(Bf16Convert, RandomBf16ArraysWidenLikeReference) {
  for (const size_t n : kLengths) {
    SCOPED_TRACE("n = " + std::to_string(n));
    std::mt19937 generator(static_cast<uint32_t>(n));
    std::vector<bf16> in(n);
    for (bf16& v : in) v.bits = static_cast<uint16_t>(generator());
    std::vector<float> expected(n);
    reference::convert(in.data(), expected.data(), n);
    ThreadCount scope(3);
    for_each_isa([&] {
      std::vector<float> out(n);
      cpu::convert(in.data(), out.data(), n);
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(to_bits(out[i]), to_bits(expected[i])) << i;
    });
  }
}

// Past 8M elements the AVX-512 path writes with streaming (non-temporal)
// stores after an unaligned head; the outputs here start one element past an
// aligned address so the head is exercised.
// Past the streaming threshold (non-temporal stores, aligned by a scalar head), on every tier,
// into targets that start off the vector alignment; the element past the end stays untouched.
TEST(Bf16Convert, LargeStreamedArraysMatchReference) {
  const size_t n = (size_t{8} << 20) + 21;
  const std::vector<float> in = awkward_values(n, 77);
  std::vector<bf16> expected(n);
  std::vector<float> wide_expected(n);
  for_each_isa([&] {
    std::vector<bf16> out(n + 2, bf16{0x1234});
    for (const Rounding rounding :
         {Rounding::nearest_even, Rounding::truncate, Rounding::stochastic}) {
      SCOPED_TRACE("rounding " + std::to_string(static_cast<int>(rounding)));
      reference::convert(in.data(), expected.data(), n, rounding, 5, 3);
      cpu::convert(in.data(), out.data() + 1, n, rounding, 5, 3);
      EXPECT_EQ(std::memcmp(out.data() + 1, expected.data(), n * sizeof(bf16)), 0);
      EXPECT_EQ(out[n + 1].bits, 0x1234);
    }
    std::vector<float> wide(n + 2, -3.0f);
    reference::convert(expected.data(), wide_expected.data(), n);
    cpu::convert(expected.data(), wide.data() + 1, n);
    EXPECT_EQ(std::memcmp(wide.data() + 1, wide_expected.data(), n * sizeof(float)), 0);
    EXPECT_EQ(wide[n + 1], -3.0f);
  });
}

// --- stochastic rounding --------------------------------------------------------

// x = lo + f * ulp with f = fraction / 65536 rounds up with probability f, so
// over n draws the count of round-ups is Binomial(n, f): mean n f, standard
// deviation sqrt(n f (1 - f)). Both the count and the mean of the rounded
// values (lo + ups / n * ulp, which must equal x in expectation: unbiased)
// are held to 5 standard deviations, a bound a correct kernel misses with
// probability below 1e-6 (and the draws are fixed by the seeds anyway).
TEST(Bf16Stochastic, UnbiasedAndRoundsUpWithTheFractionalDistance) {
  const size_t n = size_t{1} << 18;
  const uint32_t bases[] = {0x3f800000u, 0xc1230000u, 0x00120000u, 0x7f7e0000u};
  const uint32_t fractions[] = {1, 0x1999, 0x4000, 0x8000, 0xc000, 0xfffe};
  for_each_isa([&] {
    for (const uint32_t base : bases) {
      for (const uint32_t fraction : fractions) {
        const uint32_t bits = base | fraction;
        SCOPED_TRACE("input bits " + std::to_string(bits));
        const std::vector<uint16_t> out = cpu_convert(std::vector<float>(n, from_bits(bits)),
                                                      Rounding::stochastic, base + fraction);
        const uint16_t lo = static_cast<uint16_t>(base >> 16), hi = lo + 1;
        size_t ups = 0;
        double sum = 0;
        for (const uint16_t r : out) {
          ASSERT_TRUE(r == lo || r == hi) << r;  // only the two neighbours
          ups += r == hi;
          sum += bf16_to_float(bf16{r});
        }
        const double f = fraction / 65536.0;
        const double sigma = std::sqrt(n * f * (1 - f));
        EXPECT_NEAR(static_cast<double>(ups), n * f, 5 * sigma);
        const double ulp = std::fabs(double(bf16_to_float(bf16{hi})) - bf16_to_float(bf16{lo}));
        EXPECT_NEAR(sum / n, double(from_bits(bits)), 5 * sigma / n * ulp);
      }
    }
  });
}

// Different seeds and different indices are the draws: one input converted at
// many (seed, index) pairs is unbiased too.
TEST(Bf16Stochastic, UnbiasedAcrossSeeds) {
  const float x = from_bits(0x3f80'0000u | 0x3000u);  // f = 0.1875
  const double f = 0x3000 / 65536.0;
  const int draws = 20000;
  for_each_isa([&] {
    size_t ups = 0;
    for (int seed = 0; seed < draws; ++seed) {
      bf16 out;
      cpu::convert(&x, &out, 1, Rounding::stochastic, static_cast<uint64_t>(seed) * 7919, 123);
      ups += out.bits == 0x3f81;
    }
    EXPECT_NEAR(static_cast<double>(ups), draws * f, 5 * std::sqrt(draws * f * (1 - f)));
  });
}

TEST(Bf16Stochastic, ReproducibleAndSeedDependent) {
  const std::vector<float> in = awkward_values(100003, 5);
  for_each_isa([&] {
    const auto first = cpu_convert(in, Rounding::stochastic, 99);
    EXPECT_EQ(cpu_convert(in, Rounding::stochastic, 99), first);
    const auto other = cpu_convert(in, Rounding::stochastic, 100);
    size_t differ = 0;
    for (size_t i = 0; i < in.size(); ++i) differ += first[i] != other[i];
    // An element differs with probability 2 f (1 - f), 1/3 for uniform f; the
    // generated classes include exact values (f = 0) and NaN, so ask for 10%.
    EXPECT_GT(differ, in.size() / 10);
  });
}

// Element i of a slice converted with first = k uses index k + i, so slices
// reproduce the whole conversion, however the work was split.
TEST(Bf16Stochastic, FirstOffsetSlicesMatchTheWhole) {
  const size_t n = 300007;
  const std::vector<float> in = awkward_values(n, 11);
  const auto whole = reference_convert(in, Rounding::stochastic, 2024, 0);
  for_each_isa([&] {
    ThreadCount scope(3);
    EXPECT_EQ(cpu_convert(in, Rounding::stochastic, 2024, 0), whole);
    for (const size_t k : {size_t{1}, size_t{13}, size_t{16}, size_t{70001}, n - 5}) {
      SCOPED_TRACE("first = " + std::to_string(k));
      const size_t length = std::min<size_t>(n - k, 100001);
      const std::vector<float> slice(in.begin() + k, in.begin() + k + length);
      const auto part = cpu_convert(slice, Rounding::stochastic, 2024, k);
      EXPECT_TRUE(std::equal(part.begin(), part.end(), whole.begin() + k));
    }
  });
}

// --- Kahan-compensated update --------------------------------------------------

// Several update steps (so the compensation is non-zero), over many
// magnitudes, down to subnormal weights and compensations.
TEST(KahanAdd, MatchesReferenceBitExactly) {
  for (const size_t n : kLengths) {
    SCOPED_TRACE("n = " + std::to_string(n));
    std::mt19937 generator(static_cast<uint32_t>(n) + 3);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    std::uniform_int_distribution<int> exponent(-140, 20);
    std::vector<bf16> w0(n), c0(n);
    std::vector<std::vector<float>> updates(4, std::vector<float>(n));
    for (size_t i = 0; i < n; ++i) {
      const int e = exponent(generator);
      w0[i] = float_to_bf16_rne(std::ldexp(uniform(generator), e));
      for (auto& u : updates) u[i] = std::ldexp(uniform(generator), e - 6 - int(i % 12));
    }
    std::vector<bf16> w_ref = w0, c_ref = c0;
    for (const auto& u : updates) reference::kahan_add(w_ref.data(), c_ref.data(), u.data(), n);
    ThreadCount scope(3);
    for_each_isa([&] {
      std::vector<bf16> w = w0, c = c0;
      for (const auto& u : updates) cpu::kahan_add(w.data(), c.data(), u.data(), n);
      EXPECT_EQ(bits_of(w), bits_of(w_ref));
      EXPECT_EQ(bits_of(c), bits_of(c_ref));
    });
  }
}

// One step with infinite and NaN updates and weights near overflow: each
// operation sees at most one NaN, so the result is defined bit for bit.
TEST(KahanAdd, SpecialValuesMatchReference) {
  const float inf = INFINITY, nan = from_bits(0x7fa12345u);
  const std::vector<float> u = {inf, -inf, nan, 1e38f, -1e38f, 3e38f, 1e-45f, 0.0f, -0.0f};
  const std::vector<float> w_values = {1.0f,    1.0f, 1.0f,  3.3e38f, -3.3e38f,
                                       3.3e38f, 0.0f, -0.0f, 2.0f};
  std::vector<bf16> w0(u.size()), c0(u.size());
  for (size_t i = 0; i < u.size(); ++i) w0[i] = float_to_bf16_rne(w_values[i]);
  std::vector<bf16> w_ref = w0, c_ref = c0;
  reference::kahan_add(w_ref.data(), c_ref.data(), u.data(), u.size());
  for_each_isa([&] {
    std::vector<bf16> w = w0, c = c0;
    cpu::kahan_add(w.data(), c.data(), u.data(), u.size());
    EXPECT_EQ(bits_of(w), bits_of(w_ref));
    EXPECT_EQ(bits_of(c), bits_of(c_ref));
  });
}

// The point of the compensation: 1.0 + 10000 x 1e-4 = 2.0. Each update is
// below half a BF16 ulp of the weight (2^-8 at 1.0), so round-to-nearest
// accumulation never moves. Kahan carries the remainder, but in a BF16
// compensation: |c| stays below half an ulp of w (2^-8 for w in [1, 2)), so
// each step rounds it by at most 2^-8 * 2^-9 = 2^-17; after 10000 steps the
// weight is within that drift plus half an ulp at 2.0 (2^-7) of the exact sum.
TEST(KahanAdd, KeepsTinyUpdatesThatRoundingLoses) {
  const size_t n = 37;  // a vector and a masked tail
  const std::vector<float> u(n, 1e-4f);
  for_each_isa([&] {
    std::vector<bf16> w(n, float_to_bf16_rne(1.0f)), c(n), plain(n, float_to_bf16_rne(1.0f));
    for (int step = 0; step < 10000; ++step) {
      cpu::kahan_add(w.data(), c.data(), u.data(), n);
      for (size_t i = 0; i < n; ++i) plain[i] = float_to_bf16_rne(bf16_to_float(plain[i]) + u[i]);
    }
    for (size_t i = 0; i < n; ++i) {
      EXPECT_EQ(bf16_to_float(plain[i]), 1.0f);  // every update lost
      EXPECT_NEAR(bf16_to_float(w[i]), 2.0, 10000 * std::ldexp(1.0, -17) + std::ldexp(1.0, -7));
    }
  });
}

}  // namespace
}  // namespace paralab::kernels
