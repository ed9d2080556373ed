// What every attention implementation shares: validation, the mask's
// definition, the FLOP count.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "kernels/attention.hpp"

namespace paralab::kernels {

namespace {
int64_t document_of(std::span<const int64_t> starts, int64_t position) {
  return std::upper_bound(starts.begin(), starts.end(), position) - starts.begin();
}
}  // namespace

void validate(const AttentionArgs& args) {
  const auto& s = args.shape;
  if (s.T < 0 || s.S < 0 || s.H < 1 || s.H_kv < 1 || s.D < 1)
    throw std::invalid_argument("attention: sizes must be positive (T, S may be 0)");
  if (s.H % s.H_kv != 0)
    throw std::invalid_argument("attention: H (" + std::to_string(s.H) +
                                ") is not a multiple of H_kv (" + std::to_string(s.H_kv) + ")");
  if (!std::is_sorted(args.mask.doc_starts.begin(), args.mask.doc_starts.end()))
    throw std::invalid_argument("attention: doc_starts must be in ascending order");
  if (!(args.scale >= 0) || std::isinf(args.scale))
    throw std::invalid_argument("attention: scale must be finite and >= 0");
}

float softmax_scale(const AttentionArgs& args) {
  return args.scale != 0 ? args.scale : 1.0f / std::sqrt(static_cast<float>(args.shape.D));
}

bool visible(const AttentionMask& mask, int64_t i, int64_t j) {
  const int64_t q = mask.q_offset + i;
  const int64_t k = mask.k_offset + j;
  if (mask.causal && k > q) return false;
  if (mask.doc_starts.empty()) return true;
  return document_of(mask.doc_starts, q) == document_of(mask.doc_starts, k);
}

double attention_forward_flops(const AttentionArgs& args) {
  const auto& s = args.shape;
  double pairs = 0;
  for (int64_t i = 0; i < s.T; ++i) {
    // Visible keys form one interval for every mask kind: [first, last].
    int64_t first = 0, last = s.S - 1;
    const int64_t q = args.mask.q_offset + i;
    if (args.mask.causal) last = std::min<int64_t>(last, q - args.mask.k_offset);
    if (!args.mask.doc_starts.empty()) {
      const auto& starts = args.mask.doc_starts;
      const int64_t doc = document_of(starts, q);
      const int64_t begin = doc == 0 ? INT64_MIN / 2 : starts[doc - 1];
      const int64_t end = doc < static_cast<int64_t>(starts.size()) ? starts[doc] : INT64_MAX / 2;
      first = std::max<int64_t>(first, begin - args.mask.k_offset);
      last = std::min<int64_t>(last, end - 1 - args.mask.k_offset);
    }
    if (last >= first) pairs += static_cast<double>(last - first + 1);
  }
  return 4.0 * s.D * s.H * pairs;
}

}  // namespace paralab::kernels
