// Fault models on stored bits (lib/pvf/fault.hpp) and the Wilson interval.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>

#include "core/errors.hpp"
#include "pvf/fault.hpp"
#include "pvf/wilson.hpp"

namespace paralab::pvf {
namespace {

TEST(PvfBits, ClassRangesOfEveryType) {
  auto expect = [](DType d, BitClass b, int lo, int hi) {
    const BitRange r = class_bits(d, b);
    EXPECT_EQ(r.lo, lo) << name(d) << " " << name(b);
    EXPECT_EQ(r.hi, hi) << name(d) << " " << name(b);
  };
  expect(DType::fp32, BitClass::sign, 31, 31);
  expect(DType::fp32, BitClass::exponent, 23, 30);
  expect(DType::fp32, BitClass::mantissa, 0, 22);
  expect(DType::bf16, BitClass::exponent, 7, 14);
  expect(DType::bf16, BitClass::mantissa, 0, 6);
  expect(DType::fp16, BitClass::exponent, 10, 14);
  expect(DType::fp16, BitClass::mantissa, 0, 9);
  expect(DType::int8, BitClass::sign, 7, 7);
  expect(DType::int8, BitClass::high, 4, 6);
  expect(DType::int8, BitClass::low, 0, 3);
  expect(DType::int8, BitClass::any, 0, 7);
  EXPECT_FALSE(class_valid(DType::int8, BitClass::exponent));
  EXPECT_FALSE(class_valid(DType::fp16, BitClass::high));
  EXPECT_THROW(class_bits(DType::int8, BitClass::mantissa), std::invalid_argument);
}

TEST(PvfBits, Fp16ConversionKnownValues) {
  EXPECT_EQ(float_to_fp16(1.0f), 0x3c00);
  EXPECT_EQ(float_to_fp16(-2.0f), 0xc000);
  EXPECT_EQ(float_to_fp16(65504.0f), 0x7bff);
  EXPECT_EQ(float_to_fp16(65519.0f), 0x7bff);
  EXPECT_EQ(float_to_fp16(65520.0f), 0x7c00);             // the tie rounds to even: infinity
  EXPECT_EQ(float_to_fp16(0x1p-24f), 0x0001);             // smallest subnormal
  EXPECT_EQ(float_to_fp16(0x1p-25f), 0x0000);             // tie to even: zero
  EXPECT_EQ(float_to_fp16(1.0f + 0x1p-11f), 0x3c00);      // tie to even, down
  EXPECT_EQ(float_to_fp16(1.0f + 3 * 0x1p-11f), 0x3c02);  // tie to even, up
  EXPECT_EQ(float_to_fp16(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_TRUE(std::isnan(fp16_to_float(float_to_fp16(std::nanf("")))));
  EXPECT_EQ(fp16_to_float(0x3555), 0x1.554p-2f);
}

// Every FP16 word that is not a NaN decodes and encodes back to itself, so a
// corrupted word is exactly what the forward sees.
TEST(PvfBits, Fp16RoundTripsEveryWord) {
  for (uint32_t w = 0; w < 0x10000; ++w) {
    const float v = fp16_to_float(static_cast<uint16_t>(w));
    if (std::isnan(v)) continue;
    ASSERT_EQ(float_to_fp16(v), w) << std::hex << w;
  }
}

TEST(PvfBits, Int8StorageIsSymmetricPerTensor) {
  const std::vector<float> w{0.5f, -1.27f, 0.01f};
  const Storage s = make_storage(DType::int8, w);
  EXPECT_FLOAT_EQ(s.scale, 0.01f);
  EXPECT_EQ(s.encode(-1.27f), 0x81u);  // -127
  EXPECT_EQ(s.encode(0.5f), 50u);
  EXPECT_FLOAT_EQ(s.decode(0x80), -128 * 0.01f);  // the flipped sign of 0 reaches -128
  EXPECT_FLOAT_EQ(s.round(0.014f), 0.01f);
  EXPECT_EQ(make_storage(DType::int8, std::vector<float>{0, 0}).scale, 1.0f);
}

// A fault on a stored value: the corrupted word is exactly the original with
// the op applied, and the original value comes back from its word.
TEST(PvfBits, FaultsActOnStoredBitsExactly) {
  const std::vector<float> master{0.3f, -0.7f, 1e-3f, 2.5f};
  for (DType d : {DType::fp32, DType::bf16, DType::fp16, DType::int8}) {
    const Storage s = make_storage(d, master);
    for (float m : master) {
      const float v = s.round(m);
      const uint32_t word = s.encode(v);
      EXPECT_EQ(std::bit_cast<uint32_t>(s.decode(word)), std::bit_cast<uint32_t>(v)) << name(d);
      for (int bit = 0; bit < storage_bits(d); ++bit) {
        const BitOp op{1u << bit, 0, 0};
        const float bad = s.decode(op.apply(word));
        if (std::isnan(bad)) continue;
        // INT8's code -128 (only a fault makes it) has no symmetric encoding.
        if (d == DType::int8 && op.apply(word) == 0x80u) {
          EXPECT_EQ(bad, -128 * s.scale);
          continue;
        }
        EXPECT_EQ(s.encode(bad), word ^ (1u << bit)) << name(d) << " bit " << bit;
        EXPECT_EQ(op.apply(op.apply(word)), word);  // a flip undoes itself
      }
    }
  }
  // FP32: the sign bit negates; bit 30 of 0.3 (biased exponent 125) makes it
  // 253, i.e. 0.3 * 2^128.
  const Storage f32{DType::fp32, 1};
  EXPECT_EQ(f32.decode(f32.encode(0.3f) ^ (1u << 31)), -0.3f);
  EXPECT_EQ(f32.decode(f32.encode(0.3f) ^ (1u << 30)), 0.3f * 2 * 0x1p127f);
}

TEST(PvfFaults, SingleElementModelsStayInTheClass) {
  Rng rng(11);
  for (int trial = 0; trial < 500; ++trial) {
    const auto f = sample_faults(FaultModel{}, DType::fp32, BitClass::exponent, 100, rng);
    ASSERT_EQ(f.size(), 1u);
    EXPECT_LT(f[0].element, 100u);
    EXPECT_EQ(std::popcount(f[0].op.flip), 1);
    const int bit = std::countr_zero(f[0].op.flip);
    EXPECT_GE(bit, 23);
    EXPECT_LE(bit, 30);
  }
  const FaultModel burst = parse_fault_model("burst:4");
  for (int trial = 0; trial < 200; ++trial) {
    const auto f = sample_faults(burst, DType::bf16, BitClass::any, 10, rng);
    const uint32_t m = f[0].op.flip;
    const int top = 31 - std::countl_zero(m);
    // Contiguous, ending at the start bit, cut at bit 0.
    EXPECT_EQ(std::popcount(m), std::min(4, top + 1));
    EXPECT_EQ(m, ((2u << top) - 1) & ~((1u << std::max(0, top - 3)) - 1));
    EXPECT_LT(top, 16);
  }
  const auto s0 = sample_faults(parse_fault_model("stuck0"), DType::int8, BitClass::low, 5, rng);
  EXPECT_EQ(s0[0].op.flip, 0u);
  EXPECT_EQ(std::popcount(s0[0].op.clear), 1);
  EXPECT_LT(s0[0].op.clear, 16u);
  const auto s1 = sample_faults(parse_fault_model("stuck1"), DType::int8, BitClass::sign, 5, rng);
  EXPECT_EQ(s1[0].op.set, 0x80u);
  EXPECT_EQ(s1[0].op.apply(0x80), 0x80u);  // latent when the bit already holds 1
  EXPECT_EQ(s1[0].op.apply(0x05), 0x85u);
}

TEST(PvfFaults, BitErrorRateCountsAreBinomial) {
  const FaultModel ber = parse_fault_model("ber:1e-4");
  Rng rng(3);
  const uint64_t elements = 5000;  // 5000 * 8 exponent bits: 4 flips expected
  double total = 0, squares = 0;
  const int trials = 4000;
  for (int t = 0; t < trials; ++t) {
    const auto f = sample_faults(ber, DType::fp32, BitClass::exponent, elements, rng);
    int flips = 0;
    for (size_t i = 0; i < f.size(); ++i) {
      if (i > 0) {
        EXPECT_LT(f[i - 1].element, f[i].element);  // one entry per element, sorted
      }
      EXPECT_EQ(f[i].op.flip & ~0x7f800000u, 0u);
      flips += std::popcount(f[i].op.flip);
    }
    total += flips;
    squares += flips * flips;
  }
  const double mean = total / trials, var = squares / trials - mean * mean;
  EXPECT_NEAR(mean, 4.0, 0.15);  // 4 sigma of the sample mean
  EXPECT_NEAR(var, 4.0 * (1 - 1e-4), 0.6);
  EXPECT_THROW(sample_faults(parse_fault_model("ber:0.01"), DType::fp32, BitClass::any, 1000, rng),
               std::invalid_argument);
}

TEST(PvfFaults, SameSeedSameFaults) {
  for (const char* model : {"flip", "ber:1e-3", "burst:3", "stuck1"}) {
    Rng a(trial_seed(5, 2, 17)), b(trial_seed(5, 2, 17)), c(trial_seed(5, 2, 18));
    const FaultModel m = parse_fault_model(model);
    const auto fa = sample_faults(m, DType::fp16, BitClass::any, 1000, a);
    const auto fb = sample_faults(m, DType::fp16, BitClass::any, 1000, b);
    ASSERT_EQ(fa.size(), fb.size());
    for (size_t i = 0; i < fa.size(); ++i) {
      EXPECT_EQ(fa[i].element, fb[i].element);
      EXPECT_EQ(fa[i].op.flip, fb[i].op.flip);
    }
    EXPECT_NE(trial_seed(5, 2, 17), trial_seed(5, 2, 18));
    EXPECT_NE(trial_seed(5, 2, 17), trial_seed(5, 3, 17));
    EXPECT_NE(trial_seed(5, 2, 17), trial_seed(6, 2, 17));
    (void)c;
  }
}

TEST(PvfFaults, ParseRejectsBadModels) {
  EXPECT_EQ(parse_fault_model("burst:8").burst, 8);
  EXPECT_DOUBLE_EQ(parse_fault_model("ber:2.5e-6").ber, 2.5e-6);
  EXPECT_EQ(parse_fault_model("ber:2.5e-6").name(), "ber:2.5e-06");
  for (const char* bad : {"flop", "ber", "ber:", "ber:0", "ber:1", "ber:x", "burst:1", "burst:33",
                          "burst:4x", "stuck2"})
    EXPECT_THROW(parse_fault_model(bad), UsageError) << bad;
  EXPECT_THROW(parse_dtype("fp8"), UsageError);
  EXPECT_THROW(parse_bit_class("fraction"), UsageError);
}

// Newcombe (1998), "Two-sided confidence intervals for the single
// proportion", Table I, method 3 (score, no continuity correction).
TEST(PvfWilson, NewcombeTableValues) {
  struct Case {
    int64_t k, n;
    double low, high;
  };
  for (const Case& c : {Case{81, 263, 0.2553, 0.3662}, Case{15, 148, 0.0624, 0.1605},
                        Case{0, 20, 0.0, 0.1611}, Case{1, 29, 0.0061, 0.1718}}) {
    const Interval i = wilson(c.k, c.n);
    EXPECT_NEAR(i.low, c.low, 1e-4) << c.k << "/" << c.n;
    EXPECT_NEAR(i.high, c.high, 1e-4) << c.k << "/" << c.n;
  }
  const Interval half = wilson(5, 10);
  EXPECT_NEAR(half.low, 0.236593, 1e-6);
  EXPECT_NEAR(half.high, 0.763407, 1e-6);
  EXPECT_DOUBLE_EQ(wilson(0, 0).width(), 1.0);
  EXPECT_NEAR(wilson(20, 20).high, 1.0, 1e-15);
  EXPECT_THROW(wilson(3, 2), std::invalid_argument);
}

}  // namespace
}  // namespace paralab::pvf
