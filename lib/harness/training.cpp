#include "harness/training.hpp"

#include <cmath>
#include <cstdio>

#include "core/signals.hpp"

namespace paralab {

void add_divergence_option(CLI::App& cli, bool& allow) {
  cli.add_flag("--allow-divergence", allow,
               "Keep training after a non-finite or exploding loss (more than 100x the first) "
               "and exit 0; by default the diverged run stops, is marked in the result file and "
               "exits with code 4");
}

StepWatch::Outcome StepWatch::observe(MPI_Comm comm, int64_t step, double loss) {
  const bool exploding = have_first_ && std::fabs(loss) > kExplodeFactor * std::fabs(first_loss_);
  // [0]: some rank's loss diverged; [1]: some rank was asked to stop.
  int flags[2] = {!std::isfinite(loss) || exploding ? 1 : 0, termination_requested() ? 1 : 0};
  MPI_Allreduce(MPI_IN_PLACE, flags, 2, MPI_INT, MPI_MAX, comm);
  if (!have_first_ && std::isfinite(loss)) {
    // Each rank keeps its own first loss; the all-reduce above keeps decisions common.
    first_loss_ = loss;
    have_first_ = true;
  }
  Outcome out;
  out.stop = flags[1] != 0;
  if (flags[0] != 0 && diverged_at_ < 0) {
    diverged_at_ = step;
    diverged_loss_ = loss;
    out.diverged_now = true;
  }
  return out;
}

std::string StepWatch::reason() const {
  if (diverged_at_ < 0) return "";
  char text[160];
  if (!std::isfinite(diverged_loss_) || !have_first_)
    std::snprintf(text, sizeof text, "loss %g at step %lld", diverged_loss_,
                  static_cast<long long>(diverged_at_));
  else
    std::snprintf(text, sizeof text, "loss %.4g at step %lld, more than %gx the first loss %.4g",
                  diverged_loss_, static_cast<long long>(diverged_at_), kExplodeFactor,
                  first_loss_);
  return text;
}

}  // namespace paralab
