// calibrate.hpp: fit a link's alpha-beta model from comm_bench samples.
//
// Reading the result file is the app's job; this takes plain values. A
// sample of a ring collective (op of `bytes` on `n_ranks`, as comm_bench
// reports it) becomes one point of a single link message: the collective
// runs k steps of bytes/n each (links.hpp), so its time t gives the point
// (bytes/n, t/k). That point's bandwidth (bytes/n)/(t/k) is exactly the
// sample's busbw, and its alpha is the per-step latency, the same alpha a
// sendrecv measures, so all ops fit one model.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "sim/links.hpp"

namespace paralab::sim {

struct CommSample {
  std::string op;  // comm_bench's names: sendrecv, allgather, reducescatter, allreduce,
                   // alltoall, alltoallv
  int n_ranks = 2;
  double bytes = 0;    // comm_bench's size column (see docs/comm_bench.md)
  double seconds = 0;  // one time of the op, e.g. the median over iterations
};

// Link steps of `op` on n_ranks (sendrecv: 1; allreduce: 2(n-1); the others
// n-1). Throws std::invalid_argument for an unknown op or n_ranks < 2.
int link_steps(const std::string& op, int n_ranks);

// Bytes one link step of `op` moves: bytes for sendrecv, bytes/n otherwise.
double step_bytes(const std::string& op, int n_ranks, double bytes);

// comm_bench's bus factor: busbw = bytes / seconds * bus_factor.
double bus_factor(const std::string& op, int n_ranks);

struct CalibrationOptions {
  std::string link_name = "calibrated";
  // Which ops to use; empty means sendrecv only (the cleanest single link
  // measurement: no reduction arithmetic, no multi-step pipelining).
  std::vector<std::string> ops;
  FitWeighting weighting = FitWeighting::relative;
};

// Converts the selected samples to single-message points and fits alpha and
// beta. Throws std::invalid_argument when fewer than 2 samples are selected
// (the message names the ops looked for) or when the fit fails.
AlphaBetaFit calibrate_link(std::span<const CommSample> samples,
                            const CalibrationOptions& options = {});

}  // namespace paralab::sim
