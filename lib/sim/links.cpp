// links.cpp: alpha-beta link costs and their least-squares fit.
#include "sim/links.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <utility>

namespace paralab::sim {
namespace {

void require_ranks(int n_ranks) {
  if (n_ranks < 1)
    throw std::invalid_argument("collective cost: need at least 1 rank, got " +
                                std::to_string(n_ranks));
}

void require_bytes(double bytes) {
  if (!(bytes >= 0))
    throw std::invalid_argument("link cost: bytes must be >= 0, got " + std::to_string(bytes));
}

double ring_cost_s(const LinkModel& link, int n_ranks, int steps, double bytes) {
  require_ranks(n_ranks);
  require_bytes(bytes);
  if (steps == 0) return 0;  // one rank: nothing moves
  return steps * link.time(bytes / n_ranks);
}

// Weighted sums for the normal equations of t = a + b x.
struct Sums {
  double w = 0, wx = 0, wy = 0, wxx = 0, wxy = 0;
};

Sums weighted_sums(std::span<const double> x, std::span<const double> y, FitWeighting weighting) {
  Sums s;
  for (size_t i = 0; i < x.size(); ++i) {
    const double w = weighting == FitWeighting::relative ? 1.0 / (y[i] * y[i]) : 1.0;
    s.w += w;
    s.wx += w * x[i];
    s.wy += w * y[i];
    s.wxx += w * x[i] * x[i];
    s.wxy += w * x[i] * y[i];
  }
  return s;
}

void validate_points(std::span<const double> bytes, std::span<const double> seconds) {
  if (bytes.size() != seconds.size())
    throw std::invalid_argument("fit_alpha_beta: " + std::to_string(bytes.size()) + " sizes but " +
                                std::to_string(seconds.size()) + " times");
  if (bytes.size() < 2)
    throw std::invalid_argument("fit_alpha_beta: need at least 2 points, got " +
                                std::to_string(bytes.size()));
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (!(bytes[i] >= 0) || !std::isfinite(bytes[i]))
      throw std::invalid_argument("fit_alpha_beta: point " + std::to_string(i) +
                                  " has a negative or non-finite size");
    if (!(seconds[i] > 0) || !std::isfinite(seconds[i]))
      throw std::invalid_argument("fit_alpha_beta: point " + std::to_string(i) +
                                  " has a non-positive or non-finite time");
  }
  const auto [lo, hi] = std::minmax_element(bytes.begin(), bytes.end());
  if (*lo == *hi)
    throw std::invalid_argument(
        "fit_alpha_beta: all points have the same size; need at least 2 distinct sizes");
}

double max_relative_error(const LinkModel& link, std::span<const double> bytes,
                          std::span<const double> seconds) {
  double worst = 0;
  for (size_t i = 0; i < bytes.size(); ++i)
    worst = std::max(worst, std::abs(link.time(bytes[i]) - seconds[i]) / seconds[i]);
  return worst;
}

}  // namespace

double LinkModel::bandwidth_bytes_per_s() const {
  return beta_s_per_byte > 0 ? 1.0 / beta_s_per_byte : std::numeric_limits<double>::infinity();
}

int ring_allgather_steps(int n_ranks) {
  require_ranks(n_ranks);
  return n_ranks - 1;
}
int ring_allreduce_steps(int n_ranks) {
  return 2 * ring_allgather_steps(n_ranks);
}
int alltoall_steps(int n_ranks) {
  return ring_allgather_steps(n_ranks);
}

double sendrecv_s(const LinkModel& link, double bytes) {
  require_bytes(bytes);
  return link.time(bytes);
}

double ring_allgather_s(const LinkModel& link, int n_ranks, double bytes) {
  return ring_cost_s(link, n_ranks, ring_allgather_steps(n_ranks), bytes);
}

double ring_reduce_scatter_s(const LinkModel& link, int n_ranks, double bytes) {
  // The mirror image of the all-gather: same steps, same block size.
  return ring_cost_s(link, n_ranks, ring_allgather_steps(n_ranks), bytes);
}

double ring_allreduce_s(const LinkModel& link, int n_ranks, double bytes) {
  return ring_cost_s(link, n_ranks, ring_allreduce_steps(n_ranks), bytes);
}

double alltoall_s(const LinkModel& link, int n_ranks, double bytes) {
  return ring_cost_s(link, n_ranks, alltoall_steps(n_ranks), bytes);
}

AlphaBetaFit fit_alpha_beta(std::span<const double> bytes, std::span<const double> seconds,
                            std::string name, FitWeighting weighting) {
  validate_points(bytes, seconds);
  const Sums s = weighted_sums(bytes, seconds, weighting);
  // Normal equations of weighted least squares; det > 0 because the sizes
  // are not all equal (Cauchy-Schwarz).
  const double det = s.w * s.wxx - s.wx * s.wx;
  double alpha_s = (s.wxx * s.wy - s.wx * s.wxy) / det;
  double beta = (s.w * s.wxy - s.wx * s.wy) / det;

  AlphaBetaFit fit;
  fit.unclamped_alpha_s = alpha_s;
  if (alpha_s < 0) {
    // A link cannot have negative latency: fit t = beta * x instead.
    fit.alpha_clamped = true;
    alpha_s = 0;
    beta = s.wxy / s.wxx;
  }
  if (beta < 0)
    throw std::invalid_argument("fit_alpha_beta: fitted beta is negative (" + std::to_string(beta) +
                                " s/byte): time falls with size, these points are not one link");
  fit.link = LinkModel{std::move(name), alpha_s, beta};
  fit.max_relative_error = max_relative_error(fit.link, bytes, seconds);
  return fit;
}

}  // namespace paralab::sim
