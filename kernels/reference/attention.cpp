// The reference attention: one query row at a time, in double precision,
// straight from the definitions. Slow on purpose; the tests trust it.
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/attention.hpp"

namespace paralab::kernels::reference {

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

template <class T>
double value(const T* p, size_t i) {
  if constexpr (std::is_same_v<T, bf16>)
    return bf16_to_float(p[i]);
  else
    return p[i];
}

// Scores of query (i, h) against every key, -inf where masked.
template <class T>
std::vector<double> scores(const AttentionArgs& a, const T* q, const T* k, int i, int h) {
  const auto& s = a.shape;
  const int kv = h / (s.H / s.H_kv);
  const double scale = softmax_scale(a);
  std::vector<double> row(s.S, kNegInf);
  for (int j = 0; j < s.S; ++j) {
    if (!visible(a.mask, i, j)) continue;
    double dot = 0;
    for (int d = 0; d < s.D; ++d)
      dot += value(q, (static_cast<size_t>(i) * s.H + h) * s.D + d) *
             value(k, (static_cast<size_t>(j) * s.H_kv + kv) * s.D + d);
    row[j] = scale * dot;
  }
  return row;
}

double log_sum_exp(const std::vector<double>& row) {
  double peak = kNegInf;
  for (double x : row) peak = std::max(peak, x);
  if (peak == kNegInf) return kNegInf;
  double sum = 0;
  for (double x : row) sum += std::exp(x - peak);
  return peak + std::log(sum);
}

template <class T>
void forward(const AttentionArgs& a, const T* q, const T* k, const T* v, float* o, float* lse) {
  validate(a);
  const auto& s = a.shape;
  for (int i = 0; i < s.T; ++i) {
    for (int h = 0; h < s.H; ++h) {
      const int kv = h / (s.H / s.H_kv);
      const std::vector<double> row = scores(a, q, k, i, h);
      const double l = log_sum_exp(row);
      float* out = o + (static_cast<size_t>(i) * s.H + h) * s.D;
      lse[static_cast<size_t>(i) * s.H + h] = static_cast<float>(l);
      for (int d = 0; d < s.D; ++d) {
        double acc = 0;
        if (l != kNegInf)
          for (int j = 0; j < s.S; ++j)
            if (row[j] != kNegInf)
              acc +=
                  std::exp(row[j] - l) * value(v, (static_cast<size_t>(j) * s.H_kv + kv) * s.D + d);
        out[d] = static_cast<float>(acc);
      }
    }
  }
}

}  // namespace

void attention_forward(const AttentionArgs& a, const float* q, const float* k, const float* v,
                       float* o, float* lse) {
  forward(a, q, k, v, o, lse);
}

void attention_forward(const AttentionArgs& a, const bf16* q, const bf16* k, const bf16* v,
                       float* o, float* lse) {
  forward(a, q, k, v, o, lse);
}

// dP = dO V^T; dS = P * (dP - rowsum(dO * O)); dQ = scale dS K; dK = scale dS^T Q; dV = P^T dO.
// P is recomputed from Q, K and the given LSE, as the fast kernels do.
void attention_backward(const AttentionArgs& a, const float* q, const float* k, const float* v,
                        const float* o, const float* lse, const float* d_o, float* dq, float* dk,
                        float* dv) {
  validate(a);
  const auto& s = a.shape;
  const double scale = softmax_scale(a);
  const size_t D = static_cast<size_t>(s.D);
  std::vector<double> gq(static_cast<size_t>(s.T) * s.H * D, 0.0);
  std::vector<double> gk(static_cast<size_t>(s.S) * s.H_kv * D, 0.0), gv(gk.size(), 0.0);
  for (int i = 0; i < s.T; ++i) {
    for (int h = 0; h < s.H; ++h) {
      const int kv = h / (s.H / s.H_kv);
      const size_t row_index = static_cast<size_t>(i) * s.H + h;
      const double l = lse[row_index];
      if (l == kNegInf) continue;  // no visible key: no gradient
      const std::vector<double> row = scores(a, q, k, i, h);
      const float* go = d_o + row_index * D;
      double delta = 0;
      for (size_t d = 0; d < D; ++d) delta += static_cast<double>(go[d]) * o[row_index * D + d];
      for (int j = 0; j < s.S; ++j) {
        if (row[j] == kNegInf) continue;
        const double p = std::exp(row[j] - l);
        const size_t key = (static_cast<size_t>(j) * s.H_kv + kv) * D;
        double dp = 0;
        for (size_t d = 0; d < D; ++d) dp += static_cast<double>(go[d]) * v[key + d];
        const double ds = p * (dp - delta);
        for (size_t d = 0; d < D; ++d) {
          gq[row_index * D + d] += scale * ds * k[key + d];
          gk[key + d] += scale * ds * q[row_index * D + d];
          gv[key + d] += p * go[d];
        }
      }
    }
  }
  for (size_t x = 0; x < gq.size(); ++x) dq[x] = static_cast<float>(gq[x]);
  for (size_t x = 0; x < gk.size(); ++x) {
    dk[x] = static_cast<float>(gk[x]);
    dv[x] = static_cast<float>(gv[x]);
  }
}

void attention_merge(size_t rows, int D, std::span<const float* const> o_parts,
                     std::span<const float* const> lse_parts, float* o, float* lse) {
  for (size_t r = 0; r < rows; ++r) {
    double peak = kNegInf;
    for (const float* l : lse_parts) peak = std::max<double>(peak, l[r]);
    lse[r] = static_cast<float>(peak);
    for (int d = 0; d < D; ++d) o[r * D + d] = 0;
    if (peak == kNegInf) continue;
    double total = 0;
    for (const float* l : lse_parts) total += std::exp(l[r] - peak);
    for (int d = 0; d < D; ++d) {
      double acc = 0;
      for (size_t p = 0; p < o_parts.size(); ++p)
        if (lse_parts[p][r] != -std::numeric_limits<float>::infinity())
          acc += std::exp(lse_parts[p][r] - peak) * o_parts[p][r * D + d];
      o[r * D + d] = static_cast<float>(acc / total);
    }
    lse[r] = static_cast<float>(peak + std::log(total));
  }
}

void attention_merge_into(size_t rows, int D, float* o_acc, float* lse_acc, const float* o_part,
                          const float* lse_part) {
  const float* o_parts[] = {o_acc, o_part};
  const float* lse_parts[] = {lse_acc, lse_part};
  std::vector<float> o(rows * D), lse(rows);
  attention_merge(rows, D, o_parts, lse_parts, o.data(), lse.data());
  std::copy(o.begin(), o.end(), o_acc);
  std::copy(lse.begin(), lse.end(), lse_acc);
}

}  // namespace paralab::kernels::reference
