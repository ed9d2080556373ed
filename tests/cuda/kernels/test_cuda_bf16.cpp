// The CUDA BF16 conversions and Kahan update against the reference, bit for
// bit: special values (signed zeros, subnormals, ties, the largest finite
// values, infinities, quiet and signalling NaNs of both signs), random bit
// patterns, every BF16 pattern for the widening, stochastic rounding with a
// seed and a first index, and misaligned pointers (the scalar path).
//
// Kahan inputs are finite: the NaN an FP32 operation creates has different
// bits on x86 and on the GPU, so only finite arithmetic is bit-portable.
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/bf16.hpp"
#include "support.hpp"

namespace paralab::kernels {
namespace {

using cuda_test::DeviceArray;
using cuda_test::expect_same_bits;

float from_bits(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

// Special values first, then random bit patterns and random ordinary values.
std::vector<float> conversion_inputs(size_t n) {
  const uint32_t specials[] = {
      0x00000000, 0x80000000, 0x00000001, 0x807fffff, 0x00008000, 0x00018000, 0x00400000,
      0x3f800000, 0x3f808000, 0x3f818000, 0x3f80ffff, 0x3f808001, 0xbf808000, 0xbf818000,
      0x7f7fffff, 0x7f7f8000, 0x7f7f7fff, 0xff7fffff, 0x7f800000, 0xff800000, 0x7fc00000,
      0xffc00000, 0x7f800001, 0xff800001, 0x7fa00000, 0xffa00001, 0x7fffffff, 0xffffffff,
      0x7f80ffff, 0x7f810000, 0x3effffff, 0x33800000};
  std::vector<float> values;
  for (uint32_t bits : specials) values.push_back(from_bits(bits));
  std::mt19937 generator(7);
  std::uniform_real_distribution<float> uniform(-1000.0f, 1000.0f);
  while (values.size() < n)
    values.push_back(values.size() % 2 ? from_bits(generator()) : uniform(generator));
  return values;
}

void check_to_bf16(Rounding rounding, const std::string& what) {
  const size_t n = 1000003;
  const std::vector<float> in = conversion_inputs(n);
  const uint64_t seed = 0x1234abcd5678ull, first = 987654321;
  std::vector<bf16> expected(n);
  reference::convert(in.data(), expected.data(), n, rounding, seed, first);

  DeviceArray<float> din(in);
  DeviceArray<bf16> dout(n);
  cuda::convert(din.data(), dout.data(), n, rounding, seed, first);
  cuda_test::sync();
  expect_same_bits(dout.read(), expected, what + ", aligned");

  // Shifted by one element: unaligned pointers, a different first index.
  DeviceArray<bf16> dshift(n);
  cuda::convert(din.data() + 1, dshift.data() + 1, n - 1, rounding, seed, first + 1);
  cuda_test::sync();
  std::vector<bf16> shifted = dshift.read();
  shifted.erase(shifted.begin());
  std::vector<bf16> expected_shifted(n - 1);
  reference::convert(in.data() + 1, expected_shifted.data(), n - 1, rounding, seed, first + 1);
  expect_same_bits(shifted, expected_shifted, what + ", unaligned");
  // Element i of the shifted call is element i + 1 of the first: same bits.
  expect_same_bits(shifted, std::vector<bf16>(expected.begin() + 1, expected.end()),
                   what + ", index-determined");
}

TEST(CudaBf16, NearestEvenIsBitExact) {
  check_to_bf16(Rounding::nearest_even, "nearest even");
}
TEST(CudaBf16, TruncateIsBitExact) {
  check_to_bf16(Rounding::truncate, "truncate");
}
TEST(CudaBf16, StochasticIsBitIdenticalToCpu) {
  check_to_bf16(Rounding::stochastic, "stochastic");
}

TEST(CudaBf16, WideningIsBitExactForEveryPattern) {
  std::vector<bf16> in(65536 + 3);
  for (size_t i = 0; i < in.size(); ++i) in[i].bits = static_cast<uint16_t>(i);
  std::vector<float> expected(in.size());
  reference::convert(in.data(), expected.data(), in.size());
  DeviceArray<bf16> din(in);
  DeviceArray<float> dout(in.size());
  cuda::convert(din.data(), dout.data(), in.size());
  cuda_test::sync();
  expect_same_bits(dout.read(), expected, "bf16 -> f32, aligned");

  DeviceArray<float> dshift(in.size());
  cuda::convert(din.data() + 1, dshift.data() + 1, in.size() - 1);
  cuda_test::sync();
  std::vector<float> shifted = dshift.read();
  expect_same_bits(std::vector<float>(shifted.begin() + 1, shifted.end()),
                   std::vector<float>(expected.begin() + 1, expected.end()),
                   "bf16 -> f32, unaligned");
}

void check_kahan(size_t offset) {
  const size_t n = 100003;
  std::mt19937 generator(99);
  std::uniform_real_distribution<float> weights(-2.0f, 2.0f), small(-1e-3f, 1e-3f);
  std::vector<bf16> w(n), c(n);
  for (auto& x : w) x = float_to_bf16_rne(weights(generator));
  DeviceArray<bf16> dw(w), dc(c);
  for (int step = 0; step < 20; ++step) {
    // Mostly updates far below a BF16 ulp of w (where compensation matters),
    // some large ones, some subnormal.
    std::vector<float> u(n);
    for (size_t i = 0; i < n; ++i) {
      u[i] = small(generator);
      if (i % 17 == 0) u[i] *= 3000.0f;
      if (i % 101 == 0) u[i] *= 1e-36f;
    }
    reference::kahan_add(w.data() + offset, c.data() + offset, u.data() + offset, n - offset);
    DeviceArray<float> du(u);
    cuda::kahan_add(dw.data() + offset, dc.data() + offset, du.data() + offset, n - offset);
    cuda_test::sync();
    const std::string what = "step " + std::to_string(step) + ", offset " + std::to_string(offset);
    expect_same_bits(dw.read(), w, "w, " + what);
    expect_same_bits(dc.read(), c, "c, " + what);
    if (testing::Test::HasFailure()) return;
  }
}

TEST(CudaBf16, KahanAddIsBitIdenticalToCpu) {
  check_kahan(0);
  check_kahan(1);
}

}  // namespace
}  // namespace paralab::kernels
