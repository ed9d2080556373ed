// cpu::attention_backward against reference::attention_backward over shapes
// and masks, against finite differences of the reference forward, and on
// rows and keys that see nothing. O and LSE always come from
// reference::attention_forward, so these tests do not depend on the fast
// forward kernel.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "kernels/attention.hpp"
#include "kernels/cpu/isa.hpp"

namespace paralab::kernels {
namespace {

struct Case {
  std::string name = "";
  AttentionShape shape;
  bool causal = false;
  int64_t q_offset = 0, k_offset = 0;
  std::vector<int64_t> docs = {};
  float scale = 0;
};

// How GoogleTest names a case in messages and in ctest.
void PrintTo(const Case& c, std::ostream* os) {
  *os << c.name;
}

AttentionArgs args_of(const Case& c) {
  AttentionArgs a;
  a.shape = c.shape;
  a.mask.causal = c.causal;
  a.mask.q_offset = c.q_offset;
  a.mask.k_offset = c.k_offset;
  a.mask.doc_starts = c.docs;
  a.scale = c.scale;
  return a;
}

// Inputs and the forward's O and LSE.
struct Inputs {
  std::vector<float> q, k, v, o, lse, d_o;
};

std::vector<float> uniform(size_t n, std::mt19937& gen) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> x(n);
  for (auto& e : x) e = u(gen);
  return x;
}

// Random Q, K, V and dO from `values` (uniform by default), with the
// reference forward's O and LSE.
using ValueMaker = std::vector<float> (*)(size_t, std::mt19937&);
Inputs make_inputs(const AttentionArgs& a, unsigned seed, ValueMaker values = uniform) {
  const auto& s = a.shape;
  std::mt19937 gen(seed);
  const size_t nq = size_t(s.T) * s.H * s.D, nk = size_t(s.S) * s.H_kv * s.D;
  Inputs in{values(nq, gen),
            values(nk, gen),
            values(nk, gen),
            std::vector<float>(nq),
            std::vector<float>(size_t(s.T) * s.H),
            values(nq, gen)};
  reference::attention_forward(a, in.q.data(), in.k.data(), in.v.data(), in.o.data(),
                               in.lse.data());
  return in;
}

struct Grads {
  std::vector<float> dq, dk, dv;
};

// Output buffers start as NaN: the kernel must overwrite every element.
template <class Backward>
Grads backward(Backward fn, const AttentionArgs& a, const Inputs& in) {
  const auto& s = a.shape;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Grads g{std::vector<float>(size_t(s.T) * s.H * s.D, nan),
          std::vector<float>(size_t(s.S) * s.H_kv * s.D, nan),
          std::vector<float>(size_t(s.S) * s.H_kv * s.D, nan)};
  fn(a, in.q.data(), in.k.data(), in.v.data(), in.o.data(), in.lse.data(), in.d_o.data(),
     g.dq.data(), g.dk.data(), g.dv.data());
  return g;
}

Grads cpu_backward(const AttentionArgs& a, const Inputs& in) {
  return backward([](auto&&... x) { cpu::attention_backward(x...); }, a, in);
}
Grads reference_backward(const AttentionArgs& a, const Inputs& in) {
  return backward([](auto&&... x) { reference::attention_backward(x...); }, a, in);
}

// Max |got - want| relative to max |want| (the tensor's scale). FP32 sums of
// a few hundred terms land within ~1e-6 of that scale (1.4e-6 is the worst
// seen over these cases); 1e-5 leaves room for other compilers and orders,
// while an error in a mask, a scale or a block edge is orders larger.
constexpr double kRelTolerance = 1e-5;

void expect_close(const std::vector<float>& got, const std::vector<float>& want,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  double scale = 0, err = 0;
  size_t worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_TRUE(std::isfinite(got[i])) << what << "[" << i << "] = " << got[i];
    scale = std::max(scale, std::abs(double(want[i])));
    const double e = std::abs(double(got[i]) - want[i]);
    if (e > err) err = e, worst = i;
  }
  EXPECT_LE(err, kRelTolerance * std::max(scale, 1e-30))
      << what << ": worst at " << worst << " got " << got[worst] << " want " << want[worst]
      << " (max |want| " << scale << ")";
}

void expect_matches_reference(const Case& c, unsigned seed = 1) {
  const AttentionArgs a = args_of(c);
  const Inputs in = make_inputs(a, seed);
  const Grads want = reference_backward(a, in);
  const Grads got = cpu_backward(a, in);
  expect_close(got.dq, want.dq, c.name + " dQ");
  expect_close(got.dk, want.dk, c.name + " dK");
  expect_close(got.dv, want.dv, c.name + " dV");
}

// Sizes are not multiples of the kernel's blocks (64) on purpose.
std::vector<Case> reference_cases() {
  return {
      {.name = "single_query_gqa4_d64", .shape = {1, 131, 4, 1, 64}},
      {.name = "none_gqa8_d128", .shape = {97, 150, 8, 1, 128}},
      {.name = "none_mha_d128", .shape = {130, 70, 3, 3, 128}},
      {.name = "causal_gqa1_d128", .shape = {190, 190, 4, 4, 128}, .causal = true},
      {.name = "causal_later_queries_gqa4_d64",
       .shape = {70, 200, 4, 1, 64},
       .causal = true,
       .q_offset = 130},
      // Queries start before the keys: rows 0..59 see nothing.
      {.name = "causal_earlier_queries_gqa4_d64",
       .shape = {150, 100, 8, 2, 64},
       .causal = true,
       .k_offset = 60},
      {.name = "causal_odd_d", .shape = {129, 129, 2, 1, 37}, .causal = true},
      {.name = "none_d5", .shape = {40, 33, 2, 2, 5}},
      {.name = "none_d200", .shape = {45, 77, 2, 1, 200}},
      // Repeated starts are empty documents; 200 lies beyond the sequence.
      {.name = "documents_with_empty_d128",
       .shape = {170, 170, 4, 1, 128},
       .docs = {0, 30, 30, 95, 95, 200}},
      {.name = "documents_causal_offsets_gqa4",
       .shape = {130, 180, 8, 2, 128},
       .causal = true,
       .q_offset = 100,
       .k_offset = 40,
       .docs = {0, 50, 50, 120, 260}},
      // Queries 0..9 lie in a document that has no key in range.
      {.name = "documents_without_keys_d33",
       .shape = {75, 90, 4, 4, 33},
       .k_offset = 20,
       .docs = {10, 10, 80}},
      // A large scale makes the softmax peaked: exercises exp over a wide range.
      {.name = "causal_peaked_scale",
       .shape = {100, 120, 4, 1, 64},
       .causal = true,
       .q_offset = 20,
       .scale = 1.0f},
  };
}

class AttentionBackwardReference : public ::testing::TestWithParam<Case> {};

TEST_P(AttentionBackwardReference, MatchesReference) {
  expect_matches_reference(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Shapes, AttentionBackwardReference, ::testing::ValuesIn(reference_cases()),
                         [](const auto& test) { return test.param.name; });

// Every lower instruction-set tier (the best one runs the cases above).
TEST(AttentionBackward, LowerTiersMatchReference) {
  for (const cpu::Isa isa : cpu::available_isas()) {
    if (isa == cpu::best_isa()) continue;
    SCOPED_TRACE(cpu::isa_name(isa));
    const cpu::ScopedIsa scope(isa);
    for (const Case& c : reference_cases()) expect_matches_reference(c);
  }
}

// Thread counts that do and do not divide the kv heads: the key blocks of a kv
// head are then split over tasks whose dQ partial sums are added at the end.
TEST(AttentionBackward, AnyThreadCountMatchesReference) {
  const int saved = omp_get_max_threads();
  for (int threads : {1, 3, 5, 8}) {
    omp_set_num_threads(threads);
    const std::string suffix = " on " + std::to_string(threads) + " threads";
    expect_matches_reference({.name = "causal mqa" + suffix,
                              .shape = {150, 330, 4, 1, 64},
                              .causal = true,
                              .q_offset = 200});
    expect_matches_reference({.name = "gqa2" + suffix, .shape = {65, 129, 4, 2, 16}});
  }
  omp_set_num_threads(saved);
}

TEST(AttentionBackward, ReproducibleBitForBit) {
  const AttentionArgs a = args_of({.shape = {100, 200, 4, 1, 64}, .causal = true, .q_offset = 100});
  const Inputs in = make_inputs(a, 5);
  const Grads first = cpu_backward(a, in), second = cpu_backward(a, in);
  EXPECT_EQ(first.dq, second.dq);
  EXPECT_EQ(first.dk, second.dk);
  EXPECT_EQ(first.dv, second.dv);
}

TEST(AttentionBackward, EmptySequencesGiveZeroGradients) {
  for (const AttentionShape shape :
       {AttentionShape{0, 10, 2, 1, 8}, AttentionShape{7, 0, 2, 1, 8}}) {
    const AttentionArgs a = args_of({.shape = shape});
    const Inputs in = make_inputs(a, 2);
    const Grads g = cpu_backward(a, in);
    for (const auto* t : {&g.dq, &g.dk, &g.dv})
      for (float x : *t) EXPECT_EQ(x, 0.0f);
  }
}

// --- rows and keys that see nothing ------------------------------------------------

// Rows that see no key have LSE = -inf: their dQ is exactly 0, keys that no
// query sees get dK = dV = 0, and nothing is NaN.
TEST(AttentionBackward, FullyMaskedRowsAndKeysGiveZeroGradients) {
  // Causal, keys start 20 positions after the queries: queries 0..19 see
  // nothing and keys 20.. (position > 39, the last query) are seen by none.
  const Case c{.shape = {40, 60, 4, 2, 64}, .causal = true, .k_offset = 20};
  const AttentionArgs a = args_of(c);
  const Inputs in = make_inputs(a, 3);
  const Grads g = cpu_backward(a, in);
  const auto& s = a.shape;
  for (int i = 0; i < s.T; ++i) {
    bool sees = false;
    for (int j = 0; j < s.S; ++j) sees |= visible(a.mask, i, j);
    for (int x = 0; x < s.H * s.D; ++x) {
      const float dq = g.dq[size_t(i) * s.H * s.D + x];
      ASSERT_TRUE(std::isfinite(dq));
      if (!sees) {
        ASSERT_EQ(dq, 0.0f) << "query " << i;
      }
    }
    if (!sees) {
      EXPECT_EQ(in.lse[size_t(i) * s.H], -std::numeric_limits<float>::infinity());
    }
  }
  int unseen_keys = 0;
  for (int j = 0; j < s.S; ++j) {
    bool seen = false;
    for (int i = 0; i < s.T; ++i) seen |= visible(a.mask, i, j);
    unseen_keys += !seen;
    for (int x = 0; x < s.H_kv * s.D; ++x) {
      const size_t at = size_t(j) * s.H_kv * s.D + x;
      ASSERT_TRUE(std::isfinite(g.dk[at]) && std::isfinite(g.dv[at]));
      if (!seen) {
        ASSERT_TRUE(g.dk[at] == 0.0f && g.dv[at] == 0.0f) << "key " << j;
      }
    }
  }
  EXPECT_EQ(unseen_keys, 40);
  EXPECT_GT(*std::max_element(g.dq.begin(), g.dq.end()), 0.0f);  // the rest is not all zero
}

// A row given LSE = -inf contributes nothing even where it sees keys (the
// reference skips it the same way).
TEST(AttentionBackward, RowsWithInfiniteLseContributeNothing) {
  const AttentionArgs a = args_of({.shape = {50, 70, 4, 1, 64}});
  Inputs in = make_inputs(a, 4);
  const auto& s = a.shape;
  for (int row : {0, 7, 4 * 33 + 2}) in.lse[row] = -std::numeric_limits<float>::infinity();
  const Grads got = cpu_backward(a, in), want = reference_backward(a, in);
  for (int row : {0, 7, 4 * 33 + 2})
    for (int d = 0; d < s.D; ++d) EXPECT_EQ(got.dq[size_t(row) * s.D + d], 0.0f);
  expect_close(got.dq, want.dq, "dQ");
  expect_close(got.dk, want.dk, "dK");
  expect_close(got.dv, want.dv, "dV");
}

// --- finite differences -----------------------------------------------------

// L = sum(dO * O) with O from the reference forward; dL/dX is what the
// backward computes for X in {Q, K, V}.
double loss(const AttentionArgs& a, const Inputs& in) {
  std::vector<float> o(in.o.size()), lse(in.lse.size());
  reference::attention_forward(a, in.q.data(), in.k.data(), in.v.data(), o.data(), lse.data());
  double sum = 0;
  for (size_t i = 0; i < o.size(); ++i) sum += double(in.d_o[i]) * o[i];
  return sum;
}

// The fourth-order central difference
//   g = [8 (L(x+h) - L(x-h)) - (L(x+2h) - L(x-2h))] / (12 h).
// Inputs are multiples of 2^-8 in [-1, 1] and h = 2^-5, so every x +- h,
// x +- 2h is exact in FP32 and the step is exactly h.
// Error bound, justified term by term:
//   rounding: the reference rounds each O element once to FP32, so each L is
//     off by at most e = 2^-24 sum |dO * O|; the stencil amplifies that by
//     (8 * 2 + 2) / 12 / h = 1.5 / h;
//   truncation: h^4 / 30 |L'''''| = 3e-7 |L'''''|; with logits of order 1
//     (D = 16, scale 0.5) the derivatives of L are of the order of its
//     terms, O(1) to O(10), so at most a few 1e-6; we allow 1e-5.
// The rounding term is ~2e-4 here and a worst case (the differences seen are
// ~1e-6); a wrong mask, scale or missing term is off by 1e-2 or more.
double finite_difference(const AttentionArgs& a, Inputs in, std::vector<float> Inputs::*tensor,
                         size_t at, double h) {
  const float x = (in.*tensor)[at];
  auto at_offset = [&](double step) {
    (in.*tensor)[at] = static_cast<float>(x + step);
    return loss(a, in);
  };
  return (8 * (at_offset(h) - at_offset(-h)) - (at_offset(2 * h) - at_offset(-2 * h))) / (12 * h);
}

std::vector<float> dyadic(size_t n, std::mt19937& gen) {
  std::uniform_int_distribution<int> u(-256, 256);
  std::vector<float> x(n);
  for (auto& e : x) e = u(gen) / 256.0f;
  return x;
}

void expect_matches_finite_differences(const Case& c, unsigned seed) {
  const AttentionArgs a = args_of(c);
  const auto& s = a.shape;
  const size_t nq = size_t(s.T) * s.H * s.D;
  Inputs in = make_inputs(a, seed, dyadic);
  std::mt19937 gen(seed + 1);  // picks the perturbed elements
  const Grads g = cpu_backward(a, in);

  double abs_loss_terms = 0;
  for (size_t i = 0; i < nq; ++i) abs_loss_terms += std::abs(double(in.d_o[i]) * in.o[i]);
  const double h = 1.0 / 32;
  const double tolerance = 1.5 / h * std::ldexp(abs_loss_terms, -24) + 1e-5;

  struct Target {
    const char* name;
    std::vector<float> Inputs::*tensor;
    const std::vector<float>* grad;
  };
  for (const Target& t : {Target{"Q", &Inputs::q, &g.dq}, Target{"K", &Inputs::k, &g.dk},
                          Target{"V", &Inputs::v, &g.dv}}) {
    std::uniform_int_distribution<size_t> pick(0, (in.*t.tensor).size() - 1);
    for (int trial = 0; trial < 6; ++trial) {
      const size_t at = pick(gen);
      const double fd = finite_difference(a, in, t.tensor, at, h);
      EXPECT_NEAR((*t.grad)[at], fd, tolerance) << c.name << " d" << t.name << "[" << at << "]";
    }
  }
}

TEST(AttentionBackward, MatchesFiniteDifferencesGqa) {
  expect_matches_finite_differences({.name = "gqa", .shape = {9, 11, 4, 2, 16}, .scale = 0.5f}, 11);
}

TEST(AttentionBackward, MatchesFiniteDifferencesCausalOffset) {
  // Queries 0 and 1 see nothing; the others see a growing prefix.
  expect_matches_finite_differences({.name = "causal",
                                     .shape = {10, 12, 2, 1, 16},
                                     .causal = true,
                                     .q_offset = 3,
                                     .k_offset = 5,
                                     .scale = 0.5f},
                                    12);
}

TEST(AttentionBackward, MatchesFiniteDifferencesDocumentsCausal) {
  expect_matches_finite_differences({.name = "documents",
                                     .shape = {12, 12, 4, 1, 16},
                                     .causal = true,
                                     .docs = {0, 5, 5, 9},
                                     .scale = 0.5f},
                                    13);
}

}  // namespace
}  // namespace paralab::kernels
