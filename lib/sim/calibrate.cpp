// calibrate.cpp: comm_bench samples to single-message points, then a fit.
#include "sim/calibrate.hpp"

#include <algorithm>
#include <stdexcept>

namespace paralab::sim {
namespace {

bool is_known_op(const std::string& op) {
  static const std::vector<std::string> known{"sendrecv",  "allgather", "reducescatter",
                                              "allreduce", "alltoall",  "alltoallv"};
  return std::find(known.begin(), known.end(), op) != known.end();
}

bool selected(const std::string& op, const std::vector<std::string>& ops) {
  if (ops.empty()) return op == "sendrecv";
  return std::find(ops.begin(), ops.end(), op) != ops.end();
}

std::string join(const std::vector<std::string>& ops) {
  if (ops.empty()) return "sendrecv";
  std::string joined;
  for (const auto& op : ops) joined += (joined.empty() ? "" : ",") + op;
  return joined;
}

}  // namespace

int link_steps(const std::string& op, int n_ranks) {
  if (!is_known_op(op)) throw std::invalid_argument("calibration: unknown op '" + op + "'");
  if (n_ranks < 2)
    throw std::invalid_argument("calibration: op '" + op + "' needs at least 2 ranks, got " +
                                std::to_string(n_ranks));
  if (op == "sendrecv") return 1;
  if (op == "allreduce") return ring_allreduce_steps(n_ranks);
  return ring_allgather_steps(n_ranks);  // allgather, reducescatter, alltoall(v)
}

double step_bytes(const std::string& op, int n_ranks, double bytes) {
  link_steps(op, n_ranks);  // validates
  return op == "sendrecv" ? bytes : bytes / n_ranks;
}

double bus_factor(const std::string& op, int n_ranks) {
  // k steps of bytes/n: a link carries k/n times the bytes.
  const int steps = link_steps(op, n_ranks);
  return op == "sendrecv" ? 1.0 : static_cast<double>(steps) / n_ranks;
}

AlphaBetaFit calibrate_link(std::span<const CommSample> samples,
                            const CalibrationOptions& options) {
  for (const auto& op : options.ops)
    if (!is_known_op(op)) throw std::invalid_argument("calibration: unknown op '" + op + "'");
  std::vector<double> bytes, seconds;
  for (const auto& s : samples) {
    if (!selected(s.op, options.ops)) continue;
    bytes.push_back(step_bytes(s.op, s.n_ranks, s.bytes));
    seconds.push_back(s.seconds / link_steps(s.op, s.n_ranks));
  }
  if (bytes.size() < 2)
    throw std::invalid_argument("calibration: need at least 2 samples of op(s) " +
                                join(options.ops) + ", got " + std::to_string(bytes.size()));
  return fit_alpha_beta(bytes, seconds, options.link_name, options.weighting);
}

}  // namespace paralab::sim
