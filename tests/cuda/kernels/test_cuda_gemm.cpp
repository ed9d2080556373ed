// The cuBLAS GEMM against the reference: every transpose pair, odd sizes,
// padded leading dimensions, alpha/beta (beta = 0 must ignore a NaN C), the
// empty cases and bad shapes.
//
// Tolerance: FP32 is exact FP32 (no TF32), so errors stay near K * 2^-24;
// TF32 would be off by ~2^-11 per product and fail. BF16 inputs are exact in
// both; the tensor cores accumulate in FP32.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "kernels/gemm.hpp"
#include "support.hpp"

namespace paralab::kernels {
namespace {

using cuda_test::DeviceArray;
using cuda_test::random_floats;

struct Size {
  int M, N, K;
};

std::string describe(const GemmShape& s) {
  return std::string("trans_a ") + (s.trans_a == Trans::yes ? "yes" : "no") + ", trans_b " +
         (s.trans_b == Trans::yes ? "yes" : "no") + ", M " + std::to_string(s.M) + " N " +
         std::to_string(s.N) + " K " + std::to_string(s.K) + ", lda " + std::to_string(s.lda) +
         " ldb " + std::to_string(s.ldb) + " ldc " + std::to_string(s.ldc) + ", beta " +
         std::to_string(s.beta);
}

// Runs one shape on the GPU and the reference, FP32 or BF16 inputs.
template <class In>
void check_gemm(const GemmShape& shape, double rtol, unsigned seed) {
  const GemmShape s = resolved(shape);
  const size_t a_rows = s.trans_a == Trans::no ? s.M : s.K;
  const size_t b_rows = s.trans_b == Trans::no ? s.K : s.N;
  std::vector<float> a32 = random_floats(a_rows * s.lda, seed);
  std::vector<float> b32 = random_floats(b_rows * s.ldb, seed + 1);
  std::vector<float> c = random_floats(size_t(s.M) * s.ldc, seed + 2);
  if (s.beta == 0) c.assign(c.size(), std::numeric_limits<float>::quiet_NaN());
  std::vector<In> a(a32.size()), b(b32.size());
  for (size_t i = 0; i < a.size(); ++i) {
    if constexpr (std::is_same_v<In, bf16>)
      a[i] = float_to_bf16_rne(a32[i]);
    else
      a[i] = a32[i];
  }
  for (size_t i = 0; i < b.size(); ++i) {
    if constexpr (std::is_same_v<In, bf16>)
      b[i] = float_to_bf16_rne(b32[i]);
    else
      b[i] = b32[i];
  }
  std::vector<float> expected = c;
  reference::gemm(shape, a.data(), b.data(), expected.data());
  // Padding columns of C (beyond N) must stay as they were: compare them too.
  DeviceArray<In> da(a), db(b);
  DeviceArray<float> dc(c);
  cuda::gemm(shape, da.data(), db.data(), dc.data());
  cuda_test::sync();
  const double atol = 1e-5 + 1e-6 * s.K;
  cuda_test::expect_close(dc.read(), expected, atol, rtol, describe(s));
}

const std::vector<Size> kSizes = {{1, 1, 1},     {17, 33, 65}, {64, 64, 64},
                                  {130, 7, 250}, {5, 300, 3},  {128, 96, 513}};

template <class In>
void check_all_shapes(double rtol) {
  unsigned seed = 1;
  for (Trans ta : {Trans::no, Trans::yes}) {
    for (Trans tb : {Trans::no, Trans::yes}) {
      for (const Size& size : kSizes) {
        GemmShape s;
        s.trans_a = ta;
        s.trans_b = tb;
        s.M = size.M;
        s.N = size.N;
        s.K = size.K;
        check_gemm<In>(s, rtol, seed += 3);  // packed, alpha 1, beta 0
        s.alpha = 1.5f;
        s.beta = -0.5f;
        const GemmShape packed = resolved(s);
        s.lda = packed.lda + 3;
        s.ldb = packed.ldb + 5;
        s.ldc = packed.ldc + 2;
        check_gemm<In>(s, rtol, seed += 3);  // padded, accumulating into C
      }
    }
  }
}

TEST(CudaGemm, F32MatchesReference) {
  check_all_shapes<float>(1e-5);
}

TEST(CudaGemm, Bf16MatchesReference) {
  check_all_shapes<bf16>(1e-4);
}

TEST(CudaGemm, EmptyInnerDimensionScalesC) {
  for (float beta : {0.0f, 2.0f}) {
    GemmShape s;
    s.M = 3;
    s.N = 5;
    s.K = 0;
    s.beta = beta;
    std::vector<float> c(15, beta == 0 ? std::numeric_limits<float>::quiet_NaN() : 1.25f);
    DeviceArray<float> da(1), db(1), dc(c);
    cuda::gemm(s, da.data(), db.data(), dc.data());
    cuda_test::sync();
    const std::vector<float> expected(15, beta == 0 ? 0.0f : 2.5f);
    cuda_test::expect_close(dc.read(), expected, 0, 0, "K = 0, beta " + std::to_string(beta));
  }
}

TEST(CudaGemm, EmptyOutputIsANoOp) {
  GemmShape s;
  s.M = 0;
  s.N = 4;
  s.K = 3;
  DeviceArray<float> da(1), db(12), dc(1);
  cuda::gemm(s, da.data(), db.data(), dc.data());
  cuda_test::sync();
}

TEST(CudaGemm, RejectsShortLeadingDimension) {
  GemmShape s;
  s.M = 4;
  s.N = 4;
  s.K = 4;
  s.lda = 3;
  DeviceArray<float> buffer(64);
  EXPECT_THROW(cuda::gemm(s, buffer.data(), buffer.data(), buffer.data()), std::invalid_argument);
}

}  // namespace
}  // namespace paralab::kernels
