// attention_merge.cpp: the exact merge of partial attention results computed over disjoint key
// sets, weighted by their log-sum-exp:
//   lse = log(sum_p exp(lse_p)),   o = sum_p exp(lse_p - lse) o_p.
// Per row the weights are scalars (in double, relative to the largest lse_p so nothing
// overflows); the D-long combination of the part rows is a plain loop the compiler
// vectorises. Rows go to threads in chunks; the merge reads and writes every element once,
// so it is memory bound and small calls stay on one thread.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/attention.hpp"

namespace paralab::kernels::cpu {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Below this many output elements a merge is not worth waking threads for.
constexpr size_t kParallelElements = size_t{1} << 16;

// Weights w[p] = exp(lse_p - lse) of one row (0 for -inf parts) and the merged lse; an
// all -inf row gives w = 0 and -inf.
float row_weights(std::span<const float* const> lse_parts, size_t row, float* w) {
  double peak = kNegInf;
  for (const float* lse : lse_parts) peak = std::max<double>(peak, lse[row]);
  if (peak == kNegInf) {
    std::fill_n(w, lse_parts.size(), 0.0f);
    return kNegInf;
  }
  double total = 0;
  for (const float* lse : lse_parts) total += std::exp(lse[row] - peak);
  for (size_t p = 0; p < lse_parts.size(); ++p)
    w[p] = static_cast<float>(std::exp(lse_parts[p][row] - peak) / total);
  return static_cast<float>(peak + std::log(total));
}

// o = sum_p w[p] o_p for one row; parts with weight 0 are never read (a part whose LSE is
// -inf may hold anything).
void combine_row(std::span<const float* const> o_parts, const float* w, size_t row, int D,
                 float* __restrict o) {
  std::fill_n(o, D, 0.0f);
  for (size_t p = 0; p < o_parts.size(); ++p) {
    if (w[p] == 0) continue;
    const float* __restrict part = o_parts[p] + row * D;
    const float weight = w[p];
    for (int d = 0; d < D; ++d) o[d] += weight * part[d];
  }
}

// (o_acc, lse_acc) <- merge(acc, part) for one row.
void merge_row_into(size_t row, int D, float* __restrict o_acc, float* lse_acc,
                    const float* __restrict o_part, const float* lse_part) {
  const float a = lse_acc[row], b = lse_part[row];
  float* __restrict acc = o_acc + row * D;
  const float* __restrict part = o_part + row * D;
  if (b == kNegInf) {  // the part adds nothing; an empty accumulator is O = 0
    if (a == kNegInf) std::fill_n(acc, D, 0.0f);
    return;
  }
  if (a == kNegInf) {
    std::copy_n(part, D, acc);
    lse_acc[row] = b;
    return;
  }
  const double peak = std::max(a, b);
  const double ea = std::exp(a - peak), eb = std::exp(b - peak), total = ea + eb;
  const float wa = static_cast<float>(ea / total), wb = static_cast<float>(eb / total);
  for (int d = 0; d < D; ++d) acc[d] = wa * acc[d] + wb * part[d];
  lse_acc[row] = static_cast<float>(peak + std::log(total));
}

bool worth_threads(size_t rows, int D) {
  return rows * size_t(D) >= kParallelElements;
}

}  // namespace

void attention_merge(size_t rows, int D, std::span<const float* const> o_parts,
                     std::span<const float* const> lse_parts, float* o, float* lse) {
  const auto n_rows = static_cast<std::ptrdiff_t>(rows);
#pragma omp parallel if (worth_threads(rows, D))
  {
    std::vector<float> w(lse_parts.size());
#pragma omp for schedule(static)
    for (std::ptrdiff_t row = 0; row < n_rows; ++row) {
      lse[row] = row_weights(lse_parts, row, w.data());
      combine_row(o_parts, w.data(), row, D, o + row * D);
    }
  }
}

void attention_merge_into(size_t rows, int D, float* o_acc, float* lse_acc, const float* o_part,
                          const float* lse_part) {
  const auto n_rows = static_cast<std::ptrdiff_t>(rows);
#pragma omp parallel for schedule(static) if (worth_threads(rows, D))
  for (std::ptrdiff_t row = 0; row < n_rows; ++row)
    merge_row_into(row, D, o_acc, lse_acc, o_part, lse_part);
}

}  // namespace paralab::kernels::cpu
