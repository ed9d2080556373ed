// cpu::gemm (FP32 through OpenBLAS, BF16 through the AVX512-BF16 kernel and
// its portable fallback) against the double-precision reference.
//
// Tolerance: any FP32 summation of K products, in any order and blocking, is
// within gamma_K * sum_k |a_ik b_kj| of the exact dot product (Higham,
// "Accuracy and Stability of Numerical Algorithms", 3.1), gamma_K ~ K u with
// u = 2^-24; the BF16 products are exact in FP32, and scaling by alpha and
// beta and the final add cost three more roundings, the reference's rounding
// to FP32 half of one. So each element must satisfy
//   |c - c_ref| <= (K + 5) u (|alpha| sum_k |a_ik b_kj| + |beta c0_ij|),
// a bound that cannot fail for a correct kernel (vdpbf16ps flushes subnormal
// products to zero, but inputs drawn from [-1, 1) have none) and that a wrong
// one (a term missing, a transpose or an edge misread) exceeds by orders of
// magnitude.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "kernel_test_support.hpp"
#include "kernels/bf16.hpp"
#include "kernels/gemm.hpp"

namespace paralab::kernels {
namespace {

using test::for_each_isa;
using test::ThreadCount;
using test::to_bf16;

const float kNaN = std::numeric_limits<float>::quiet_NaN();

std::string describe(const GemmShape& s) {
  return std::string("A") + (s.trans_a == Trans::yes ? "^T" : "") + " B" +
         (s.trans_b == Trans::yes ? "^T" : "") + " M=" + std::to_string(s.M) +
         " N=" + std::to_string(s.N) + " K=" + std::to_string(s.K) +
         " lda=" + std::to_string(s.lda) + " ldb=" + std::to_string(s.ldb) +
         " ldc=" + std::to_string(s.ldc) + " alpha=" + std::to_string(s.alpha) +
         " beta=" + std::to_string(s.beta);
}

// Stored sizes (rows x ld) of A, B and C for a resolved shape.
size_t stored_a(const GemmShape& s) {
  return size_t(s.trans_a == Trans::no ? s.M : s.K) * s.lda;
}
size_t stored_b(const GemmShape& s) {
  return size_t(s.trans_b == Trans::no ? s.K : s.N) * s.ldb;
}
size_t stored_c(const GemmShape& s) {
  return size_t(s.M) * s.ldc;
}

std::vector<float> absolute(const std::vector<float>& x) {
  std::vector<float> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = std::fabs(x[i]);
  return out;
}

std::vector<bf16> absolute(const std::vector<bf16>& x) {
  std::vector<bf16> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i].bits = x[i].bits & 0x7fff;
  return out;
}

// The reference result on rows `rows` of C and the tolerance of each of its
// elements (the bound in the header comment); c0 is C before the call.
struct Expected {
  std::vector<int> rows;
  std::vector<std::vector<float>> values;
  std::vector<std::vector<double>> tolerances;
};

template <class T>
Expected reference_rows(const GemmShape& s, const std::vector<T>& a, const std::vector<T>& b,
                        const std::vector<float>& c0, std::vector<int> rows = {}) {
  if (rows.empty())
    for (int i = 0; i < s.M; ++i) rows.push_back(i);
  const std::vector<T> abs_a = absolute(a), abs_b = absolute(b);
  const double u = std::ldexp(1.0, -24);
  Expected expected{rows, {}, {}};
  for (const int i : rows) {
    // Row i of op(A) as a one-row GEMM: row i of A, or column i of stored A.
    GemmShape row = s;
    row.M = 1;
    const size_t a_offset = s.trans_a == Trans::no ? size_t(i) * s.lda : size_t(i);
    const auto c0_row = c0.begin() + size_t(i) * s.ldc;
    std::vector<float> values(c0_row, c0_row + s.N);
    reference::gemm(row, a.data() + a_offset, b.data(), values.data());
    GemmShape magnitude = row;
    magnitude.alpha = 1, magnitude.beta = 0;
    std::vector<float> sum_abs(s.N);
    reference::gemm(magnitude, abs_a.data() + a_offset, abs_b.data(), sum_abs.data());
    std::vector<double> tolerances(s.N);
    for (int j = 0; j < s.N; ++j) {
      const double scale =
          std::fabs(s.alpha) * sum_abs[j] + (s.beta == 0 ? 0.0 : std::fabs(s.beta * c0_row[j]));
      tolerances[j] = (s.K + 5) * u * scale + 1e-30;
    }
    expected.values.push_back(std::move(values));
    expected.tolerances.push_back(std::move(tolerances));
  }
  return expected;
}

void expect_matches(const GemmShape& s, const Expected& expected, const std::vector<float>& c) {
  for (size_t r = 0; r < expected.rows.size(); ++r) {
    const int i = expected.rows[r];
    for (int j = 0; j < s.N; ++j)
      ASSERT_NEAR(c[size_t(i) * s.ldc + j], expected.values[r][j], expected.tolerances[r][j])
          << "C(" << i << ", " << j << ")";
  }
}

// The padding of C between rows (ldc > N) is not written.
void expect_padding_kept(const GemmShape& s, const std::vector<float>& c0,
                         const std::vector<float>& c) {
  for (int i = 0; i < s.M; ++i)
    for (int j = s.N; j < s.ldc; ++j) {
      const size_t at = size_t(i) * s.ldc + j;
      ASSERT_EQ(std::memcmp(&c[at], &c0[at], sizeof(float)), 0)
          << "C padding (" << i << ", " << j << ")";
    }
}

// Padding between rows (ld > row) is filled with NaN so a kernel that reads
// it is caught.
template <class T>
std::vector<T> with_nan_padding(std::vector<T> stored, int rows, int cols, int ld) {
  for (int r = 0; r < rows; ++r)
    for (int col = cols; col < ld; ++col) {
      if constexpr (std::is_same_v<T, float>) {
        stored[size_t(r) * ld + col] = kNaN;
      } else {
        stored[size_t(r) * ld + col].bits = 0x7fc0;
      }
    }
  return stored;
}

struct Inputs {
  std::vector<float> a, b, c0;
};

// A, B and C for a resolved shape: random in [-1, 1), NaN in the padding,
// and C all NaN when beta = 0 (which must ignore it).
Inputs make_inputs(const GemmShape& s, uint32_t seed) {
  const bool ta = s.trans_a == Trans::yes, tb = s.trans_b == Trans::yes;
  Inputs in;
  in.a = with_nan_padding(test::random_values(stored_a(s), seed), ta ? s.K : s.M, ta ? s.M : s.K,
                          s.lda);
  in.b = with_nan_padding(test::random_values(stored_b(s), seed + 1), tb ? s.N : s.K,
                          tb ? s.K : s.N, s.ldb);
  in.c0 = s.beta == 0 ? std::vector<float>(stored_c(s), kNaN)
                      : test::random_values(stored_c(s), seed + 2);
  return in;
}

GemmShape make_shape(Trans ta, Trans tb, int M, int N, int K, int pad, float alpha, float beta) {
  GemmShape s{ta, tb, M, N, K, 0, 0, 0, alpha, beta};
  s = resolved(s);
  s.lda += pad, s.ldb += pad, s.ldc += pad;
  return s;
}

struct Size {
  int M, N, K;
};
const Size kSizes[] = {{1, 1, 1},     {7, 7, 7},    {33, 65, 17}, {100, 37, 129},
                       {65, 100, 33}, {17, 1, 300}, {1, 200, 64}, {9, 49, 2}};
const Trans kTrans[] = {Trans::no, Trans::yes};
struct Scaling {
  float alpha, beta;
};
const Scaling kScalings[] = {{1.0f, 0.0f}, {0.5f, -1.5f}, {-2.0f, 1.0f}};

// Every transpose combination x size x packed or padded rows x alpha / beta.
void for_each_case(const std::function<void(const GemmShape&)>& check) {
  for (const Trans ta : kTrans)
    for (const Trans tb : kTrans)
      for (const Size& size : kSizes)
        for (const int pad : {0, 3})
          for (const Scaling& scaling : kScalings) {
            const GemmShape s =
                make_shape(ta, tb, size.M, size.N, size.K, pad, scaling.alpha, scaling.beta);
            SCOPED_TRACE(describe(s));
            check(s);
          }
}

TEST(GemmFp32, MatchesReferenceForAllTransposesSizesAndScalings) {
  for_each_case([](const GemmShape& s) {
    const Inputs in = make_inputs(s, 17);
    std::vector<float> c = in.c0;
    cpu::gemm(s, in.a.data(), in.b.data(), c.data());
    expect_matches(s, reference_rows(s, in.a, in.b, in.c0), c);
    expect_padding_kept(s, in.c0, c);
  });
}

TEST(GemmBf16, MatchesReferenceForAllTransposesSizesAndScalings) {
  for_each_case([](const GemmShape& s) {
    const Inputs in = make_inputs(s, 29);
    const std::vector<bf16> a = to_bf16(in.a), b = to_bf16(in.b);
    const Expected expected = reference_rows(s, a, b, in.c0);
    for_each_isa([&] {
      std::vector<float> c = in.c0;
      cpu::gemm(s, a.data(), b.data(), c.data());
      expect_matches(s, expected, c);
      expect_padding_kept(s, in.c0, c);
    });
  });
}

// Larger than one cache block in every dimension (MC = 256, NC = 4800,
// KC = 256 in the AVX-512 kernel), odd everywhere, on 3 threads: every row
// block edge and a sample of rows inside are checked against the reference
// (all of C would take the double-precision loops too long).
TEST(GemmBf16, BlockedShapesAcrossCacheBlocksAndThreads) {
  ThreadCount scope(3);
  const std::vector<int> rows = {0, 7, 8, 135, 136, 200, 264, 271};
  for (const Trans ta : kTrans)
    for (const Trans tb : kTrans)
      for (const Scaling& scaling : {Scaling{0.75f, 0.5f}, Scaling{1.0f, 0.0f}}) {
        const GemmShape s = make_shape(ta, tb, 272, 4853, 531, 5, scaling.alpha, scaling.beta);
        SCOPED_TRACE(describe(s));
        const Inputs in = make_inputs(s, 41);
        const std::vector<bf16> a = to_bf16(in.a), b = to_bf16(in.b);
        const Expected expected = reference_rows(s, a, b, in.c0, rows);
        for_each_isa([&] {
          std::vector<float> c = in.c0;
          cpu::gemm(s, a.data(), b.data(), c.data());
          expect_matches(s, expected, c);
        });
      }
}

// --- empty products and bad shapes ----------------------------------------------

template <class T>
void check_empty_products() {
  const std::vector<T> a(64), b(64);
  // M = 0 or N = 0: C is not touched.
  for (const Size size : {Size{0, 4, 3}, Size{4, 0, 3}, Size{0, 0, 0}}) {
    std::vector<float> c(16, 7.0f);
    cpu::gemm(GemmShape{Trans::no, Trans::no, size.M, size.N, size.K, 0, 0, 0, 1, 0}, a.data(),
              b.data(), c.data());
    for (const float v : c) EXPECT_EQ(v, 7.0f);
  }
  // K = 0: C = beta * C, and beta = 0 clears C even when it holds NaN.
  for (const Trans ta : kTrans) {
    std::vector<float> c(12, kNaN);
    cpu::gemm(GemmShape{ta, Trans::yes, 3, 4, 0, 0, 0, 0, 1, 0}, a.data(), b.data(), c.data());
    for (const float v : c) EXPECT_EQ(v, 0.0f);
    c.assign(12, 3.0f);
    cpu::gemm(GemmShape{ta, Trans::no, 3, 4, 0, 0, 0, 0, 1, 2}, a.data(), b.data(), c.data());
    for (const float v : c) EXPECT_EQ(v, 6.0f);
  }
  // alpha = 0: A and B are not read (BLAS), C = beta * C.
  std::vector<float> c(12, 3.0f);
  cpu::gemm(GemmShape{Trans::no, Trans::no, 3, 4, 5, 0, 0, 0, 0, 0.5f}, a.data(), b.data(),
            c.data());
  for (const float v : c) EXPECT_EQ(v, 1.5f);
}

TEST(GemmFp32, EmptyProducts) {
  check_empty_products<float>();
}
TEST(GemmBf16, EmptyProducts) {
  for_each_isa(check_empty_products<bf16>);
}

template <class T>
void check_validation() {
  const std::vector<T> a(4096), b(4096);
  std::vector<float> c(4096);
  auto call = [&](GemmShape s) { cpu::gemm(s, a.data(), b.data(), c.data()); };
  EXPECT_THROW(call({Trans::no, Trans::no, -1, 4, 4}), std::invalid_argument);
  EXPECT_THROW(call({Trans::no, Trans::no, 4, -1, 4}), std::invalid_argument);
  EXPECT_THROW(call({Trans::no, Trans::no, 4, 4, -2}), std::invalid_argument);
  EXPECT_THROW(call({Trans::no, Trans::no, 4, 5, 6, 5, 0, 0}), std::invalid_argument);   // lda < K
  EXPECT_THROW(call({Trans::yes, Trans::no, 4, 5, 6, 3, 0, 0}), std::invalid_argument);  // lda < M
  EXPECT_THROW(call({Trans::no, Trans::no, 4, 5, 6, 0, 4, 0}), std::invalid_argument);   // ldb < N
  EXPECT_THROW(call({Trans::no, Trans::yes, 4, 5, 6, 0, 5, 0}), std::invalid_argument);  // ldb < K
  EXPECT_THROW(call({Trans::no, Trans::no, 4, 5, 6, 0, 0, 4}), std::invalid_argument);   // ldc < N
  EXPECT_NO_THROW(call({Trans::yes, Trans::yes, 4, 5, 6, 4, 6, 5}));
}

TEST(GemmFp32, RejectsInvalidShapes) {
  check_validation<float>();
}
TEST(GemmBf16, RejectsInvalidShapes) {
  check_validation<bf16>();
}

}  // namespace
}  // namespace paralab::kernels
