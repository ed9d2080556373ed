// cpu::attention_forward against reference::attention_forward: every mask kind, offsets (ring
// chunks on either side), empty documents, fully masked rows, GQA 1:1, 4:1 and 8:1, the head
// dimensions of the fast kernels (64, 128, and other multiples of 16) and of the portable
// Highway tiles' column remainders (40, 33, 80), sizes that are not multiples of any block, FP32
// and BF16 inputs; each on every instruction-set tier the CPU has (isa.hpp).
//
// Tolerances, relative to the output scale max|V| (O is a convex combination of V rows):
//   FP32: 1e-5. Scores, exponentials and sums are FP32 (about 1e-7 relative each).
//   BF16: both implementations see the same BF16 inputs, and Q K^T is exact products summed
//         in FP32, so the LSE keeps the FP32 tolerance. P is rounded to BF16 (relative error
//         <= 2^-9) for P V while the row sum uses the FP32 P, so each O element is off by at
//         most sum_j p_j 2^-9 |v_j| <= 2^-9 max|V|; the test allows 2^-8 max|V|.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "kernel_test_support.hpp"
#include "kernels/attention.hpp"
#include "kernels/threads.hpp"

namespace paralab::kernels {
namespace {

using test::random_values;
using test::to_bf16;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

struct Case {
  std::string name;
  AttentionShape shape;
  bool causal = false;
  int64_t q_offset = 0;
  int64_t k_offset = 0;
  std::vector<int64_t> doc_starts = {};
};

enum class DType { f32, bf16 };

// gtest prints parameters with these (instead of their bytes).
void PrintTo(const Case& c, std::ostream* os) {
  *os << c.name;
}
void PrintTo(DType dtype, std::ostream* os) {
  *os << (dtype == DType::f32 ? "f32" : "bf16");
}

AttentionArgs args_of(const Case& c) {
  AttentionArgs args;
  args.shape = c.shape;
  args.mask.causal = c.causal;
  args.mask.q_offset = c.q_offset;
  args.mask.k_offset = c.k_offset;
  args.mask.doc_starts = c.doc_starts;
  return args;
}

struct Outputs {
  std::vector<float> o, lse;
};

// Q, K, V of a shape, FP32 and the same values rounded to BF16.
struct Inputs {
  std::vector<float> q, k, v;
  std::vector<bf16> q16, k16, v16;

  Inputs(const AttentionShape& s, unsigned seed)
      : q(random_values(size_t(s.T) * s.H * s.D, seed)),
        k(random_values(size_t(s.S) * s.H_kv * s.D, seed + 1)),
        v(random_values(size_t(s.S) * s.H_kv * s.D, seed + 2)),
        q16(to_bf16(q)),
        k16(to_bf16(k)),
        v16(to_bf16(v)) {}
};

template <class Forward>
Outputs run(const AttentionArgs& args, const Inputs& in, DType dtype, Forward forward) {
  const auto& s = args.shape;
  Outputs out{std::vector<float>(size_t(s.T) * s.H * s.D, -7.0f),
              std::vector<float>(size_t(s.T) * s.H, -7.0f)};
  if (dtype == DType::f32)
    forward(args, in.q.data(), in.k.data(), in.v.data(), out.o.data(), out.lse.data());
  else
    forward(args, in.q16.data(), in.k16.data(), in.v16.data(), out.o.data(), out.lse.data());
  return out;
}

Outputs run_cpu(const AttentionArgs& args, const Inputs& in, DType dtype) {
  return run(args, in, dtype, [](auto&&... a) { cpu::attention_forward(a...); });
}

Outputs run_reference(const AttentionArgs& args, const Inputs& in, DType dtype) {
  return run(args, in, dtype, [](auto&&... a) { reference::attention_forward(a...); });
}

double o_tolerance(DType dtype) {
  return dtype == DType::f32 ? 1e-5 : std::ldexp(1.0, -8) + 1e-5;
}

// Rows the reference finds fully masked must be exactly O = 0, LSE = -inf; the others within
// o_tol (absolute: V is in [-1, 1), so max|V| ~ 1 is the output scale) and the LSE within
// 1e-5 relative; nothing may be NaN.
void expect_close(const Outputs& got, const Outputs& want, int D, double o_tol) {
  double o_err = 0;
  size_t bad_masked = 0, bad_lse = 0, nans = 0;
  for (size_t row = 0; row < want.lse.size(); ++row) {
    const float* o = got.o.data() + row * D;
    const float* o_want = want.o.data() + row * D;
    for (int d = 0; d < D; ++d) nans += std::isnan(o[d]);
    nans += std::isnan(got.lse[row]);
    if (want.lse[row] == kNegInf) {
      bool zero = got.lse[row] == kNegInf;
      for (int d = 0; d < D; ++d) zero = zero && o[d] == 0.0f;
      bad_masked += !zero;
      continue;
    }
    bad_lse +=
        !(std::abs(got.lse[row] - want.lse[row]) <= 1e-5 * std::max(1.0f, std::abs(want.lse[row])));
    for (int d = 0; d < D; ++d) o_err = std::max<double>(o_err, std::abs(o[d] - o_want[d]));
  }
  EXPECT_EQ(nans, 0u);
  EXPECT_EQ(bad_masked, 0u) << "fully masked rows must be O = 0, LSE = -inf";
  EXPECT_EQ(bad_lse, 0u) << "rows with the LSE off by more than 1e-5 relative";
  EXPECT_LE(o_err, o_tol);
}

std::vector<Case> cases() {
  return {
      {"none_gqa4_d64", {37, 53, 8, 2, 64}},
      {"single_query_single_key", {1, 1, 1, 1, 128}},
      {"decode_gqa8_d128", {1, 200, 8, 1, 128}, true, 199, 0},
      {"decode_gqa4_d128", {1, 300, 16, 4, 128}, true, 299, 0},
      {"single_key_causal", {9, 1, 2, 1, 64}, true, 0, 3},
      {"causal_gqa1_d128", {100, 100, 4, 4, 128}, true},
      {"none_sizes_off_blocks", {129, 257, 4, 2, 128}},
      {"ring_chunk_q_after_k", {70, 130, 8, 2, 64}, true, 150, 100},
      {"ring_chunk_k_after_q", {50, 40, 4, 1, 128}, true, 0, 20},
      {"all_masked", {16, 32, 4, 2, 64}, true, 0, 100},
      {"documents_empty_doc", {100, 100, 4, 4, 64}, false, 0, 0, {0, 17, 17, 50, 90}},
      {"documents_before_first_start", {80, 80, 4, 2, 64}, false, 0, 0, {10, 40, 41, 75}},
      {"documents_no_shared_keys", {30, 30, 2, 1, 64}, false, 0, 100, {0, 50, 120}},
      {"documents_causal_offsets", {60, 90, 8, 2, 128}, true, 40, 10, {5, 30, 30, 64, 100}},
      {"documents_causal_gqa8", {150, 150, 16, 2, 128}, true, 0, 0, {0, 33, 100, 101}},
      {"d80_causal", {40, 150, 4, 1, 80}, true, 110, 0},
      {"d96_documents", {64, 64, 2, 2, 96}, false, 0, 0, {0, 20, 64}},
      {"fallback_d40_causal_gqa8", {33, 45, 8, 1, 40}, true, 12, 0},
      {"fallback_d33_none", {20, 70, 2, 1, 33}},
      {"fallback_d40_documents", {50, 50, 4, 4, 40}, true, 0, 0, {0, 25, 25}},
      {"large_causal_gqa8", {384, 384, 8, 1, 128}, true},
  };
}

class AttentionForward : public testing::TestWithParam<std::tuple<Case, DType>> {};

TEST_P(AttentionForward, MatchesReference) {
  const auto& [c, dtype] = GetParam();
  const AttentionArgs args = args_of(c);
  const Inputs in(c.shape, 11);
  const Outputs want = run_reference(args, in, dtype);
  test::for_each_isa(
      [&] { expect_close(run_cpu(args, in, dtype), want, c.shape.D, o_tolerance(dtype)); });
}

INSTANTIATE_TEST_SUITE_P(Cases, AttentionForward,
                         testing::Combine(testing::ValuesIn(cases()),
                                          testing::Values(DType::f32, DType::bf16)),
                         [](const auto& test) {
                           return std::get<0>(test.param).name +
                                  (std::get<1>(test.param) == DType::f32 ? "_f32" : "_bf16");
                         });

// Key blocks no query of a work item sees must not be read: fill them with NaN, which would
// reach O through any product.
class AttentionForwardSkips : public testing::TestWithParam<DType> {};

TEST_P(AttentionForwardSkips, KeyBlocksNoQuerySees) {
  const DType dtype = GetParam();
  const Case causal{"causal", {64, 256, 4, 2, 64}, true};  // queries see keys 0..63 only
  const Case documents{"documents", {64, 320, 2, 1, 128}, false, 0, 0, {0, 64, 256}};
  for (const Case& c : {causal, documents}) {
    SCOPED_TRACE(c.name);
    const AttentionArgs args = args_of(c);
    Inputs in(c.shape, 5);
    const size_t row = size_t(c.shape.H_kv) * c.shape.D;
    const auto poison = [&](int64_t lo, int64_t hi) {  // keys [lo, hi) to NaN
      for (size_t x = lo * row; x < hi * row; ++x) {
        in.k[x] = in.v[x] = std::numeric_limits<float>::quiet_NaN();
        in.k16[x] = in.v16[x] = bf16{0x7fc0};
      }
    };
    poison(64, c.shape.S);  // every block after the first: no query sees it
    const Outputs want = run_reference(args, in, dtype);
    test::for_each_isa(
        [&] { expect_close(run_cpu(args, in, dtype), want, c.shape.D, o_tolerance(dtype)); });
  }
}

INSTANTIATE_TEST_SUITE_P(DTypes, AttentionForwardSkips, testing::Values(DType::f32, DType::bf16),
                         [](const auto& test) {
                           return test.param == DType::f32 ? "f32" : "bf16";
                         });

TEST(AttentionForwardEdges, NoKeysGivesZeroAndMinusInfinity) {
  AttentionArgs args;
  args.shape = {5, 0, 4, 2, 64};
  const Inputs in(args.shape, 3);
  test::for_each_isa([&] {
    for (DType dtype : {DType::f32, DType::bf16}) {
      const Outputs out = run_cpu(args, in, dtype);
      for (float x : out.o) EXPECT_EQ(x, 0.0f);
      for (float x : out.lse) EXPECT_EQ(x, kNegInf);
    }
  });
}

TEST(AttentionForwardEdges, NoQueriesTouchesNothing) {
  AttentionArgs args;
  args.shape = {0, 10, 2, 1, 64};
  const Inputs in(args.shape, 3);
  float sentinel = 1.5f;
  cpu::attention_forward(args, in.q.data(), in.k.data(), in.v.data(), &sentinel, &sentinel);
  EXPECT_EQ(sentinel, 1.5f);
}

TEST(AttentionForwardEdges, ExplicitScale) {
  Case c{"scale", {20, 90, 4, 1, 64}, true, 70, 0};
  AttentionArgs args = args_of(c);
  args.scale = 0.5f;  // sharper than 1/sqrt(64): larger logits
  const Inputs in(c.shape, 9);
  test::for_each_isa([&] {
    for (DType dtype : {DType::f32, DType::bf16})
      expect_close(run_cpu(args, in, dtype), run_reference(args, in, dtype), c.shape.D,
                   o_tolerance(dtype));
  });
}

// Every row's arithmetic is the same whichever item and thread it lands in, so the thread
// count must not change a bit of the result. It changes the work split: here from one item
// per key/value head, which packs its key blocks itself, to items sharing blocks packed once.
TEST(AttentionForwardEdges, SameResultForAnyThreadCount) {
  const Case c{"threads", {20, 300, 8, 4, 64}, true, 260, 0, {0, 100, 290}};
  const AttentionArgs args = args_of(c);
  const Inputs in(c.shape, 21);
  const int saved = threads();
  test::for_each_isa([&] {
    for (DType dtype : {DType::f32, DType::bf16}) {
      set_threads(1);
      const Outputs one = run_cpu(args, in, dtype);
      for (int n : {2, 3, 7}) {
        set_threads(n);
        const Outputs many = run_cpu(args, in, dtype);
        EXPECT_EQ(many.o, one.o) << n << " threads";
        EXPECT_EQ(many.lse, one.lse) << n << " threads";
      }
    }
  });
  set_threads(saved);
}

TEST(AttentionForwardEdges, RejectsImpossibleShapes) {
  AttentionArgs args;
  args.shape = {4, 4, 6, 4, 64};  // H not a multiple of H_kv
  const Inputs in({4, 4, 4, 4, 64}, 1);
  std::vector<float> o(4 * 6 * 64), lse(4 * 6);
  EXPECT_THROW(
      cpu::attention_forward(args, in.q.data(), in.k.data(), in.v.data(), o.data(), lse.data()),
      std::invalid_argument);
}

}  // namespace
}  // namespace paralab::kernels
