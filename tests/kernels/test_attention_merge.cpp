// cpu::attention_merge and cpu::attention_merge_into against the reference, with -inf parts
// (whose O may hold anything, NaN included), all -inf rows, LSEs far apart; and attention
// split into k key blocks (each a call with its own k_offset and slice of K/V) then merged,
// which must equal unsplit attention for k = 1..16 with an error that does not grow with k.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "kernels/attention.hpp"

namespace paralab::kernels {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// One part of a merge: O [rows, D] in [-1, 1) and LSE in [-5, 5), with about one row in five
// at -inf (its O set to NaN: a -inf part must not be read).
struct Part {
  std::vector<float> o, lse;
};

Part random_part(size_t rows, int D, std::mt19937& generator) {
  std::uniform_real_distribution<float> value(-1.0f, 1.0f), log_sum(-5.0f, 5.0f);
  Part part{std::vector<float>(rows * D), std::vector<float>(rows)};
  for (auto& x : part.o) x = value(generator);
  for (size_t row = 0; row < rows; ++row) {
    part.lse[row] = generator() % 5 == 0 ? kNegInf : log_sum(generator);
    if (part.lse[row] == kNegInf) std::fill_n(part.o.begin() + row * D, D, kNaN);
  }
  return part;
}

// Merged rows equal the reference within `tol` (O absolute, LSE relative); rows the reference
// finds empty are exactly O = 0, LSE = -inf. Returns the largest O error.
double expect_merged(const std::vector<float>& o, const std::vector<float>& lse,
                     const std::vector<float>& o_want, const std::vector<float>& lse_want, int D,
                     double tol) {
  double o_err = 0;
  size_t bad_empty = 0, bad_lse = 0;
  for (size_t row = 0; row < lse_want.size(); ++row) {
    const float* got = o.data() + row * D;
    const float* want = o_want.data() + row * D;
    if (lse_want[row] == kNegInf) {
      bool empty = lse[row] == kNegInf;
      for (int d = 0; d < D; ++d) empty = empty && got[d] == 0.0f;
      bad_empty += !empty;
      continue;
    }
    bad_lse +=
        !(std::abs(lse[row] - lse_want[row]) <= tol * std::max(1.0f, std::abs(lse_want[row])));
    for (int d = 0; d < D; ++d) {
      const double err = std::abs(double{got[d]} - want[d]);
      o_err = std::isnan(err) ? std::numeric_limits<double>::infinity() : std::max(o_err, err);
    }
  }
  EXPECT_EQ(bad_empty, 0u) << "rows with every part -inf must be O = 0, LSE = -inf";
  EXPECT_EQ(bad_lse, 0u);
  EXPECT_LE(o_err, tol);
  return o_err;
}

struct Merged {
  std::vector<float> o, lse;
};

template <class Merge>
Merged merge_parts(const std::vector<Part>& parts, size_t rows, int D, Merge merge) {
  std::vector<const float*> o_parts, lse_parts;
  for (const Part& p : parts) o_parts.push_back(p.o.data()), lse_parts.push_back(p.lse.data());
  Merged out{std::vector<float>(rows * D, -3.0f), std::vector<float>(rows, -3.0f)};
  merge(rows, D, o_parts, lse_parts, out.o.data(), out.lse.data());
  return out;
}

class AttentionMergeParts : public testing::TestWithParam<int> {};

TEST_P(AttentionMergeParts, MatchesReference) {
  const int n = GetParam();
  std::mt19937 generator(100 + n);
  for (const auto& [rows, D] : {std::pair<size_t, int>{37, 64}, {5, 1}, {11, 33}, {4096, 128}}) {
    std::vector<Part> parts;
    for (int p = 0; p < n; ++p) parts.push_back(random_part(rows, D, generator));
    const auto merge = [](auto&&... a) { cpu::attention_merge(a...); };
    const auto merge_ref = [](auto&&... a) { reference::attention_merge(a...); };
    const Merged got = merge_parts(parts, rows, D, merge);
    const Merged want = merge_parts(parts, rows, D, merge_ref);
    expect_merged(got.o, got.lse, want.o, want.lse, D, 1e-6);
  }
}

INSTANTIATE_TEST_SUITE_P(Counts, AttentionMergeParts, testing::Values(1, 2, 3, 5, 9));

TEST(AttentionMerge, IntoMatchesReference) {
  std::mt19937 generator(7);
  for (const auto& [rows, D] : {std::pair<size_t, int>{61, 128}, {3, 7}, {4096, 64}}) {
    const Part acc = random_part(rows, D, generator), part = random_part(rows, D, generator);
    Part got = acc, want = acc;
    cpu::attention_merge_into(rows, D, got.o.data(), got.lse.data(), part.o.data(),
                              part.lse.data());
    reference::attention_merge_into(rows, D, want.o.data(), want.lse.data(), part.o.data(),
                                    part.lse.data());
    expect_merged(got.o, got.lse, want.o, want.lse, D, 1e-6);
  }
}

TEST(AttentionMerge, AllMinusInfinityRowsAreZero) {
  const size_t rows = 4;
  const int D = 16;
  const std::vector<float> nan_o(rows * D, kNaN), inf_lse(rows, kNegInf);
  const float* o_parts[] = {nan_o.data(), nan_o.data(), nan_o.data()};
  const float* lse_parts[] = {inf_lse.data(), inf_lse.data(), inf_lse.data()};
  std::vector<float> o(rows * D, 5.0f), lse(rows, 5.0f);
  cpu::attention_merge(rows, D, o_parts, lse_parts, o.data(), lse.data());
  for (float x : o) EXPECT_EQ(x, 0.0f);
  for (float x : lse) EXPECT_EQ(x, kNegInf);

  std::vector<float> acc = nan_o, acc_lse = inf_lse;  // merge_into: both sides empty
  cpu::attention_merge_into(rows, D, acc.data(), acc_lse.data(), nan_o.data(), inf_lse.data());
  for (float x : acc) EXPECT_EQ(x, 0.0f);
  for (float x : acc_lse) EXPECT_EQ(x, kNegInf);
}

// exp(lse) overflows FP32 beyond ~88; the merge must work relative to the largest part.
TEST(AttentionMerge, FarApartLogSums) {
  const int D = 4;
  const std::vector<float> o1 = {1, 2, 3, 4}, o2 = {-1, -2, -3, -4};
  for (const auto& [l1, l2] : {std::pair<float, float>{1000, -1000}, {95, 95}, {-300, -301}}) {
    const std::vector<float> lse1 = {l1}, lse2 = {l2};
    const float* o_parts[] = {o1.data(), o2.data()};
    const float* lse_parts[] = {lse1.data(), lse2.data()};
    std::vector<float> o(D), lse(1), o_want(D), lse_want(1);
    cpu::attention_merge(1, D, o_parts, lse_parts, o.data(), lse.data());
    reference::attention_merge(1, D, o_parts, lse_parts, o_want.data(), lse_want.data());
    expect_merged(o, lse, o_want, lse_want, D, 1e-6);
    std::vector<float> acc = o1, acc_lse = lse1;
    cpu::attention_merge_into(1, D, acc.data(), acc_lse.data(), o2.data(), lse2.data());
    expect_merged(acc, acc_lse, o_want, lse_want, D, 1e-6);
  }
}

// --- split attention ------------------------------------------------------------------------

// Causal attention of queries at positions 10..105 over keys at 30..329: queries 0..19 see
// no key at all, and the keys past 105 are seen by none, so many split parts are -inf.
struct Split {
  AttentionArgs args;
  std::vector<float> q, k, v;
  std::vector<bf16> q16, k16, v16;  // the same values rounded to BF16
  size_t rows() const { return size_t(args.shape.T) * args.shape.H; }
  size_t key_row() const { return size_t(args.shape.H_kv) * args.shape.D; }
};

Split make_split() {
  Split s;
  s.args.shape = {96, 300, 8, 2, 64};
  s.args.mask = {.causal = true, .q_offset = 10, .k_offset = 30};
  std::mt19937 generator(42);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  const auto fill = [&](size_t n) {
    std::vector<float> x(n);
    for (auto& e : x) e = uniform(generator);
    return x;
  };
  s.q = fill(s.rows() * s.args.shape.D);
  s.k = fill(size_t(s.args.shape.S) * s.key_row());
  s.v = fill(size_t(s.args.shape.S) * s.key_row());
  const auto round = [](const std::vector<float>& x) {
    std::vector<bf16> out(x.size());
    for (size_t i = 0; i < x.size(); ++i) out[i] = float_to_bf16_rne(x[i]);
    return out;
  };
  s.q16 = round(s.q), s.k16 = round(s.k), s.v16 = round(s.v);
  return s;
}

// k slices of the keys at random cut points (slices shorter than a key block included).
std::vector<int> cuts(int S, int k, unsigned seed) {
  std::mt19937 generator(seed);
  std::vector<int> points = {0, S};
  while (static_cast<int>(points.size()) < k + 1) {
    const int cut = 1 + static_cast<int>(generator() % (S - 1));
    if (std::find(points.begin(), points.end(), cut) == points.end()) points.push_back(cut);
  }
  std::sort(points.begin(), points.end());
  return points;
}

// Attention over each slice (its own k_offset and slice of K/V) of inputs q, k, v (FP32 or
// BF16), merged both ways.
template <class T>
std::pair<Merged, Merged> split_and_merge(const Split& s, const std::vector<T>& q,
                                          const std::vector<T>& keys, const std::vector<T>& values,
                                          int k) {
  const std::vector<int> points = cuts(s.args.shape.S, k, 1000 + k);
  std::vector<Part> parts(k);
  for (int p = 0; p < k; ++p) {
    AttentionArgs args = s.args;
    args.shape.S = points[p + 1] - points[p];
    args.mask.k_offset = s.args.mask.k_offset + points[p];
    parts[p].o.resize(s.rows() * args.shape.D);
    parts[p].lse.resize(s.rows());
    const size_t first = points[p] * s.key_row();
    cpu::attention_forward(args, q.data(), keys.data() + first, values.data() + first,
                           parts[p].o.data(), parts[p].lse.data());
  }
  const int D = s.args.shape.D;
  const Merged all =
      merge_parts(parts, s.rows(), D, [](auto&&... a) { cpu::attention_merge(a...); });
  Merged into{parts[0].o, parts[0].lse};
  for (int p = 1; p < k; ++p)
    cpu::attention_merge_into(s.rows(), D, into.o.data(), into.lse.data(), parts[p].o.data(),
                              parts[p].lse.data());
  return {all, into};
}

TEST(AttentionMerge, SplitKeysMergedEqualsUnsplit) {
  const Split s = make_split();
  const int D = s.args.shape.D;
  Merged want{std::vector<float>(s.rows() * D), std::vector<float>(s.rows())};
  reference::attention_forward(s.args, s.q.data(), s.k.data(), s.v.data(), want.o.data(),
                               want.lse.data());
  std::vector<double> err_all(17), err_into(17);
  for (int k = 1; k <= 16; ++k) {
    SCOPED_TRACE("k = " + std::to_string(k));
    const auto [all, into] = split_and_merge(s, s.q, s.k, s.v, k);
    err_all[k] = expect_merged(all.o, all.lse, want.o, want.lse, D, 2e-6);
    err_into[k] = expect_merged(into.o, into.lse, want.o, want.lse, D, 2e-6);
  }
  // The merge adds rounding per part, not per element of a growing sum: 16 slices stay within
  // a small factor of 2 (a floor of 1e-7, ~2 FP32 ulps of 1, absorbs exact-looking results).
  EXPECT_LE(err_all[16], 4 * std::max(err_all[2], 1e-7));
  EXPECT_LE(err_into[16], 4 * std::max(err_into[2], 1e-7));
}

// BF16 inputs: each slice rounds its P to BF16 relative to its own running max, which keeps
// the error bound of the unsplit kernel (2^-9 max|V|, see test_attention_forward.cpp).
TEST(AttentionMerge, SplitKeysMergedEqualsUnsplitBf16) {
  const Split s = make_split();
  const int D = s.args.shape.D;
  Merged want{std::vector<float>(s.rows() * D), std::vector<float>(s.rows())};
  reference::attention_forward(s.args, s.q16.data(), s.k16.data(), s.v16.data(), want.o.data(),
                               want.lse.data());
  for (int k : {1, 2, 7, 16}) {
    SCOPED_TRACE("k = " + std::to_string(k));
    const auto [all, into] = split_and_merge(s, s.q16, s.k16, s.v16, k);
    expect_merged(all.o, all.lse, want.o, want.lse, D, std::ldexp(1.0, -8));
    expect_merged(into.o, into.lse, want.o, want.lse, D, std::ldexp(1.0, -8));
  }
}

}  // namespace
}  // namespace paralab::kernels
