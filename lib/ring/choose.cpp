// The pass-KV / pass-Q rule; see choose.hpp for the equations.
#include "ring/choose.hpp"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

namespace paralab::ring {
namespace {

std::string format(const char* fmt, double a, double b) {
  char text[256];
  std::snprintf(text, sizeof text, fmt, a, b);
  return text;
}

}  // namespace

AlgorithmChoice choose_algorithm(const ChoiceInputs& in) {
  if (in.ranks < 1 || !(in.T > 0) || in.P < 0 || in.H < 1 || in.H_kv < 1 || in.D < 1 ||
      !(in.element_bytes > 0) || !(in.partial_element_bytes > 0) || !(in.flops_per_s > 0) ||
      !(in.bytes_per_s > 0))
    throw std::invalid_argument("choose_algorithm: sizes and rates must be positive");
  const double N = in.ranks, T = in.T, P = in.P, e = in.element_bytes;
  AlgorithmChoice c;
  c.t_threshold = N * in.flops_per_s * in.H_kv * e / (2.0 * in.H * in.bytes_per_s);
  c.miss_rate = T / (T + P);
  c.miss_threshold = 2.0 * in.H_kv / in.H;

  const double t_attention = 4.0 * (T / N) * ((T + P) / N) * in.D * in.H / in.flops_per_s;
  const double t_kv = 2.0 * ((T + P) / N) * in.H_kv * in.D * e / in.bytes_per_s;
  const double t_q = (T / N) * in.H * in.D * e / in.bytes_per_s;
  const double t_all2all =
      (N - 1) / N * (T / N) * in.H * (in.D * in.partial_element_bytes + 4.0) / in.bytes_per_s;
  c.exposed_pass_kv_s = (N - 1) * std::max(0.0, t_kv - t_attention);
  c.exposed_pass_q_s = (N - 1) * std::max(0.0, t_q - t_attention) + t_all2all;

  if (in.ranks == 1) {
    c.reason = "one rank: nothing moves, pass-KV runs plain attention";
  } else if (T >= c.t_threshold) {
    c.reason = format("T %.0f >= N C N_KV e / (2 N_H BW) = %.0f: the K/V transfer hides", T,
                      c.t_threshold);
  } else if (c.miss_rate >= c.miss_threshold) {
    c.reason = format("miss rate %.4f >= 2 N_KV / N_H = %.4f: K/V messages no larger than Q's",
                      c.miss_rate, c.miss_threshold);
  } else if (c.exposed_pass_kv_s <= c.exposed_pass_q_s) {
    c.reason = format(
        "All2All refinement: pass-KV exposes %.3g s <= pass-Q's %.3g s with its "
        "All2All",
        c.exposed_pass_kv_s, c.exposed_pass_q_s);
  } else {
    c.algorithm = Algorithm::pass_q;
    c.reason = format(
        "T and miss rate below both thresholds; pass-Q exposes %.3g s < pass-KV's "
        "%.3g s",
        c.exposed_pass_q_s, c.exposed_pass_kv_s);
  }
  return c;
}

}  // namespace paralab::ring
