// links.hpp: the alpha-beta (latency-bandwidth) model of one link class and
// the cost of ring collectives over it, plus a least-squares fit of alpha and
// beta from measured (bytes, seconds) points.
//
// Conventions follow comm_bench and nccl-tests: `bytes` of a collective is the
// largest buffer one rank holds (the gathered output of an all-gather, the
// input of a reduce-scatter, the vector of an all-reduce, a rank's whole send
// buffer of an all-to-all). Every ring step moves bytes/n over the link, so a
// collective of k steps costs k * link.time(bytes / n).
#pragma once

#include <span>
#include <string>

namespace paralab::sim {

struct LinkModel {
  std::string name;
  double alpha_s = 0;          // fixed cost of one message (launch, handshake, hops)
  double beta_s_per_byte = 0;  // 1 / achieved bandwidth of one direction

  // Time of one message of `bytes` over the link: alpha + bytes * beta.
  double time(double bytes) const { return alpha_s + bytes * beta_s_per_byte; }
  // The achieved bandwidth 1/beta (infinite when beta is 0).
  double bandwidth_bytes_per_s() const;
};

// One message (a send-recv on a ring: every rank sends and receives at once,
// each direction on its own half of a full-duplex link).
double sendrecv_s(const LinkModel& link, double bytes);

// Ring all-gather / reduce-scatter: n-1 steps of bytes/n each.
double ring_allgather_s(const LinkModel& link, int n_ranks, double bytes);
double ring_reduce_scatter_s(const LinkModel& link, int n_ranks, double bytes);

// Ring all-reduce: a reduce-scatter then an all-gather, 2(n-1) steps of bytes/n.
double ring_allreduce_s(const LinkModel& link, int n_ranks, double bytes);

// All-to-all as n-1 pairwise exchanges of bytes/n in sequence (step i: send
// to rank r+i, receive from r-i). Why sequential: a rank's link carries all
// (n-1)/n of its buffer whichever way the exchanges are issued, so the
// bandwidth term is the same as for concurrent exchanges; only the latency
// differs, (n-1) alphas here against about one when all are in flight, and
// the sequential one is the conservative choice that matches busbw's
// (n-1)/n bus factor.
double alltoall_s(const LinkModel& link, int n_ranks, double bytes);

// The number of link steps of each ring algorithm above (0 when n_ranks == 1).
int ring_allgather_steps(int n_ranks);
int ring_allreduce_steps(int n_ranks);
int alltoall_steps(int n_ranks);

// How the least-squares residuals are weighted.
enum class FitWeighting {
  // Minimise sum ((model - t) / t)^2: every size counts equally. The default,
  // because sweeps span several decades of sizes, and an absolute fit lets
  // the largest messages decide everything, leaving alpha as noise.
  relative,
  // Minimise sum (model - t)^2: ordinary least squares.
  absolute,
};

struct AlphaBetaFit {
  LinkModel link;
  // True when the unconstrained fit gave alpha < 0 (typical when the small
  // sizes sit in cache or the points are noisy): alpha was set to 0 and beta
  // refitted through the origin with the same weights.
  bool alpha_clamped = false;
  double unclamped_alpha_s = 0;   // what the unconstrained fit gave
  double max_relative_error = 0;  // max |model - t| / t over the points
};

// Least-squares fit of t = alpha + bytes * beta. Throws std::invalid_argument
// when the spans differ in length, hold fewer than 2 points, hold fewer than
// 2 distinct sizes, hold a negative size or a non-positive time, or when the
// fitted beta is negative (time falling with size: not a link).
AlphaBetaFit fit_alpha_beta(std::span<const double> bytes, std::span<const double> seconds,
                            std::string name = "fitted",
                            FitWeighting weighting = FitWeighting::relative);

}  // namespace paralab::sim
