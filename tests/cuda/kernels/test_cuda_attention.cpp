// The CUDA attention kernels against the reference (double precision): the
// forward for FP32 and BF16 inputs over every mask kind, offsets (with rows
// that see no key), grouped-query heads, the specialised D (64, 128) and the
// generic path (other D, unaligned pointers), sizes that are not multiples of
// the tiles; the backward; the merge.
//
// Tolerances: FP32 1e-5 (plain FP32 arithmetic). BF16 O: 5e-3 absolute, the
// bound of rounding P to BF16 for the tensor-core P V product (each weight
// off by at most 2^-8 relative, |V| <= 1); its LSE comes from FP32 scores.
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "kernels/attention.hpp"
#include "support.hpp"

namespace paralab::kernels {
namespace {

using cuda_test::DeviceArray;
using cuda_test::expect_close;
using cuda_test::random_floats;
using cuda_test::to_bf16;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

struct Case {
  Case(std::string name_, AttentionShape shape_, bool causal_ = false, int64_t q_offset_ = 0,
       int64_t k_offset_ = 0, std::vector<int64_t> docs_ = {}, float scale_ = 0)
      : name(std::move(name_)),
        shape(shape_),
        causal(causal_),
        q_offset(q_offset_),
        k_offset(k_offset_),
        docs(std::move(docs_)),
        scale(scale_) {}
  std::string name;
  AttentionShape shape;  // {T, S, H, H_kv, D}
  bool causal;
  int64_t q_offset, k_offset;
  std::vector<int64_t> docs;
  float scale;
};

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

std::string case_name(const testing::TestParamInfo<Case>& info) {
  return info.param.name;
}

// Shapes as {T, S, H, H_kv, D}.
std::vector<Case> forward_cases() {
  return {
      {"plain_d64", {100, 150, 2, 2, 64}},
      {"plain_d128_gqa4", {130, 70, 4, 1, 128}},
      {"causal_d128_gqa2", {257, 257, 2, 1, 128}, true},
      {"causal_d64_gqa8", {200, 200, 8, 1, 64}, true},
      {"causal_chunk_offsets", {130, 450, 4, 2, 128}, true, 320, 0},
      {"causal_masked_rows", {150, 100, 2, 2, 64}, true, 0, 60},
      {"causal_tile_edges", {129, 65, 1, 1, 64}, true, 64, 0},
      {"documents_d128_gqa8", {300, 300, 8, 1, 128}, false, 0, 0, {0, 37, 37, 150, 260}},
      {"documents_causal_d64", {333, 333, 4, 4, 64}, true, 0, 0, {0, 5, 100, 101, 250}},
      {"documents_causal_offsets", {100, 300, 2, 1, 128}, true, 200, 0, {0, 150, 230, 290}},
      {"documents_first_start_late", {200, 200, 2, 1, 64}, false, 0, 0, {50, 120}},
      {"documents_keys_elsewhere", {70, 80, 2, 1, 128}, false, 1000, 0, {0, 500}},
      {"decode_t1_d128", {1, 333, 8, 2, 128}, true, 332, 0},
      {"decode_t1_s1_d64", {1, 1, 1, 1, 64}},
      {"no_keys", {10, 0, 2, 1, 64}},
      {"scale_d128", {100, 100, 2, 1, 128}, false, 0, 0, {}, 0.3f},
      {"long_causal_d128", {1024, 1024, 2, 1, 128}, true},
      {"long_documents_causal_d64", {700, 900, 4, 1, 64}, true, 200, 0, {0, 130, 400, 401, 777}},
      {"generic_d40", {77, 91, 4, 2, 40}, true, 14, 0},
      {"generic_d7_documents", {33, 20, 1, 1, 7}, false, 0, 0, {0, 10}},
      {"generic_d1", {5, 9, 3, 1, 1}},
      {"generic_d96", {50, 60, 2, 2, 96}, true},
      {"generic_d256_negative_k_offset", {40, 70, 2, 1, 256}, true, 0, -5},
  };
}

struct Inputs {
  std::vector<float> q, k, v;
};

Inputs random_inputs(const AttentionShape& s, unsigned seed) {
  const size_t nq = size_t(s.T) * s.H * s.D, nk = size_t(s.S) * s.H_kv * s.D;
  return {random_floats(nq, seed), random_floats(nk, seed + 1), random_floats(nk, seed + 2)};
}

// Rows the reference says see no key must be exactly O = 0, LSE = -inf.
void expect_masked_rows_exact(const AttentionShape& s, const std::vector<float>& o,
                              const std::vector<float>& lse, const std::vector<float>& ref_lse) {
  size_t bad = 0;
  for (size_t row = 0; row < ref_lse.size(); ++row) {
    if (ref_lse[row] != kNegInf) continue;
    bool ok = lse[row] == kNegInf;
    for (int d = 0; d < s.D; ++d) ok = ok && o[row * s.D + d] == 0.0f;
    bad += ok ? 0 : 1;
  }
  EXPECT_EQ(bad, 0u) << "rows that see no key must give O = 0 and LSE = -inf";
}

// Runs the CUDA forward on the given host inputs (float or bf16) and checks it.
template <class In>
void check_forward(const Case& c, const std::vector<In>& q, const std::vector<In>& k,
                   const std::vector<In>& v, double o_atol, double o_rtol, double lse_tol,
                   size_t misalign = 0) {
  const AttentionArgs args = args_of(c);
  const AttentionShape& s = c.shape;
  const size_t rows = size_t(s.T) * s.H;
  std::vector<float> ref_o(rows * s.D), ref_lse(rows);
  reference::attention_forward(args, q.data(), k.data(), v.data(), ref_o.data(), ref_lse.data());

  // `misalign` elements in front of each input move it off its 16-byte alignment.
  auto shifted = [misalign](const std::vector<In>& x) {
    std::vector<In> out(misalign + x.size());
    std::copy(x.begin(), x.end(), out.begin() + misalign);
    return out;
  };
  DeviceArray<In> dq(shifted(q)), dk(shifted(k)), dv(shifted(v));
  DeviceArray<float> d_o(rows * s.D), d_lse(rows);
  cuda::attention_forward(args, dq.data() + misalign, dk.data() + misalign, dv.data() + misalign,
                          d_o.data(), d_lse.data());
  cuda_test::sync();
  const std::vector<float> o = d_o.read(), lse = d_lse.read();
  expect_close(o, ref_o, o_atol, o_rtol, "O");
  expect_close(lse, ref_lse, lse_tol, lse_tol, "LSE");
  expect_masked_rows_exact(s, o, lse, ref_lse);
}

class CudaAttentionForward : public testing::TestWithParam<Case> {};

TEST_P(CudaAttentionForward, F32MatchesReference) {
  const Case& c = GetParam();
  const Inputs in = random_inputs(c.shape, 11);
  check_forward(c, in.q, in.k, in.v, 1e-5, 1e-5, 1e-5);
}

TEST_P(CudaAttentionForward, Bf16MatchesReference) {
  const Case& c = GetParam();
  const Inputs in = random_inputs(c.shape, 23);
  check_forward(c, to_bf16(in.q), to_bf16(in.k), to_bf16(in.v), 5e-3, 0.0, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Cases, CudaAttentionForward, testing::ValuesIn(forward_cases()),
                         case_name);

// Pointers off their 16-byte alignment take the generic kernel (BF16) or the
// scalar-load tile kernel (FP32); the results must not change.
TEST(CudaAttentionForwardAlignment, UnalignedInputs) {
  const Case c{"unaligned", {90, 110, 4, 2, 64}, true, 20, 0};
  const Inputs in = random_inputs(c.shape, 5);
  check_forward(c, in.q, in.k, in.v, 1e-5, 1e-5, 1e-5, 1);
  check_forward(c, to_bf16(in.q), to_bf16(in.k), to_bf16(in.v), 5e-3, 0.0, 1e-4, 1);
}

TEST(CudaAttentionForwardErrors, RejectsImpossibleShapes) {
  AttentionArgs args;
  args.shape = {4, 4, 3, 2, 64};  // H not a multiple of H_kv
  DeviceArray<float> buffer(4 * 3 * 64);
  EXPECT_THROW(cuda::attention_forward(args, buffer.data(), buffer.data(), buffer.data(),
                                       buffer.data(), buffer.data()),
               std::invalid_argument);
}

// ---------------------------------------------------------------------------

std::vector<Case> backward_cases() {
  return {
      {"plain_d64", {100, 90, 2, 1, 64}},
      {"causal_d128_gqa4", {150, 150, 4, 1, 128}, true},
      {"causal_masked_rows_d64", {120, 100, 2, 2, 64}, true, 0, 40},
      {"documents_causal_d128_gqa8", {200, 200, 8, 1, 128}, true, 0, 0, {0, 60, 60, 130}},
      {"documents_offsets_d64", {90, 260, 2, 1, 64}, false, 170, 0, {0, 100, 200}},
      {"long_causal_d128", {300, 300, 2, 1, 128}, true},
      {"decode_t1_d128", {1, 100, 4, 2, 128}, true, 99, 0},
      {"scale_d64", {70, 70, 1, 1, 64}, false, 0, 0, {}, 0.3f},
      {"no_keys", {10, 0, 2, 1, 64}},
      {"generic_d40_documents", {70, 80, 4, 2, 40}, true, 0, 0, {0, 33}},
      {"generic_d7", {20, 33, 1, 1, 7}},
  };
}

class CudaAttentionBackward : public testing::TestWithParam<Case> {};

TEST_P(CudaAttentionBackward, MatchesReference) {
  const Case& c = GetParam();
  const AttentionArgs args = args_of(c);
  const AttentionShape& s = c.shape;
  const size_t rows = size_t(s.T) * s.H, nq = rows * s.D, nk = size_t(s.S) * s.H_kv * s.D;
  const Inputs in = random_inputs(s, 31);
  const std::vector<float> d_o = random_floats(nq, 37);
  // Both backwards get the same forward results (the reference's).
  std::vector<float> o(nq), lse(rows);
  reference::attention_forward(args, in.q.data(), in.k.data(), in.v.data(), o.data(), lse.data());
  std::vector<float> ref_dq(nq), ref_dk(nk), ref_dv(nk);
  reference::attention_backward(args, in.q.data(), in.k.data(), in.v.data(), o.data(), lse.data(),
                                d_o.data(), ref_dq.data(), ref_dk.data(), ref_dv.data());

  DeviceArray<float> dq_in(in.q), dk_in(in.k), dv_in(in.v), do_in(o), dlse(lse), ddo(d_o);
  // Gradients start as NaN: the kernels must overwrite every element.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  DeviceArray<float> dq(std::vector<float>(nq, nan)), dk(std::vector<float>(nk, nan)),
      dv(std::vector<float>(nk, nan));
  cuda::attention_backward(args, dq_in.data(), dk_in.data(), dv_in.data(), do_in.data(),
                           dlse.data(), ddo.data(), dq.data(), dk.data(), dv.data());
  cuda_test::sync();
  expect_close(dq.read(), ref_dq, 2e-5, 1e-4, "dQ");
  expect_close(dk.read(), ref_dk, 2e-5, 1e-4, "dK");
  expect_close(dv.read(), ref_dv, 2e-5, 1e-4, "dV");
}

INSTANTIATE_TEST_SUITE_P(Cases, CudaAttentionBackward, testing::ValuesIn(backward_cases()),
                         case_name);

// ---------------------------------------------------------------------------

TEST(CudaAttentionMerge, MatchesReferenceIncludingEmptyParts) {
  for (int D : {64, 7, 128}) {
    const size_t rows = 1000;
    std::vector<float> o_acc = random_floats(rows * D, 41), o_part = random_floats(rows * D, 43);
    std::vector<float> lse_acc = random_floats(rows, 47, -3, 8);
    std::vector<float> lse_part = random_floats(rows, 53, -3, 8);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    for (size_t r = 0; r < rows; ++r) {
      // An empty part's O is garbage; it must not leak into the result.
      if (r % 5 == 1) {
        lse_acc[r] = kNegInf;
        for (int d = 0; d < D; ++d) o_acc[r * D + d] = nan;
      }
      if (r % 7 == 2) {
        lse_part[r] = kNegInf;
        for (int d = 0; d < D; ++d) o_part[r * D + d] = nan;
      }
      if (r % 11 == 3) lse_acc[r] = lse_part[r] = kNegInf;  // both empty
      if (r % 13 == 4) lse_part[r] = lse_acc[r] + 60;       // one part dominates
    }
    std::vector<float> ref_o = o_acc, ref_lse = lse_acc;
    reference::attention_merge_into(rows, D, ref_o.data(), ref_lse.data(), o_part.data(),
                                    lse_part.data());

    DeviceArray<float> dacc(o_acc), dlacc(lse_acc), dpart(o_part), dlpart(lse_part);
    cuda::attention_merge_into(rows, D, dacc.data(), dlacc.data(), dpart.data(), dlpart.data());
    cuda_test::sync();
    const std::string what = "D = " + std::to_string(D);
    expect_close(dacc.read(), ref_o, 1e-6, 1e-5, "merged O, " + what);
    expect_close(dlacc.read(), ref_lse, 1e-6, 1e-6, "merged LSE, " + what);
  }
}

}  // namespace
}  // namespace paralab::kernels
