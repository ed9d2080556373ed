#include "harness/training.hpp"

#include <climits>
#include <cmath>
#include <cstdio>

#include "core/errors.hpp"
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
  // [0]: some rank's loss diverged; [1]: some rank was asked to stop; [2]: the loss to report,
  // as a magnitude that ranks non-finite losses first (the largest wins).
  const double worst = std::isfinite(loss) ? std::fabs(loss) : HUGE_VAL;
  double flags[3] = {!std::isfinite(loss) || exploding ? 1.0 : 0.0,
                     termination_requested() ? 1.0 : 0.0, worst};
  MPI_Allreduce(MPI_IN_PLACE, flags, 3, MPI_DOUBLE, MPI_MAX, comm);
  if (!have_first_ && std::isfinite(loss)) {
    // Each rank keeps its own first loss; the all-reduce above keeps decisions common.
    first_loss_ = loss;
    have_first_ = true;
  }
  Outcome out;
  out.stop = flags[1] != 0;
  if (flags[0] != 0 && diverged_at_ < 0) {
    // Once: the lowest rank whose loss is the worst tells the others what it was (its sign,
    // NaN or infinity) and its first loss, so that every rank reports the same (in a pipeline
    // only the last stage's loss means anything).
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    const int candidate = worst == flags[2] ? rank : INT_MAX;
    int teller = 0;
    MPI_Allreduce(&candidate, &teller, 1, MPI_INT, MPI_MIN, comm);
    double told[3] = {loss, first_loss_, have_first_ ? 1.0 : 0.0};
    MPI_Bcast(told, 3, MPI_DOUBLE, teller, comm);
    diverged_at_ = step;
    diverged_loss_ = told[0];
    reported_first_loss_ = told[1];
    reported_have_first_ = told[2] != 0;
    out.diverged_now = true;
  }
  return out;
}

void announce_divergence(MPI_Comm comm, const std::string& run, const std::string& unit,
                         const StepWatch& watch, bool allow_divergence) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  if (rank != 0) return;
  const std::string then =
      allow_divergence ? " (--allow-divergence: training on)" : "; this " + unit + " stops here";
  std::printf("# %s: DIVERGED: %s%s\n", run.c_str(), watch.reason().c_str(), then.c_str());
  std::fflush(stdout);
}

void raise_if_diverged(const std::vector<std::pair<std::string, std::string>>& diverged,
                       bool allow_divergence) {
  if (diverged.empty() || allow_divergence) return;
  std::string runs;
  for (const auto& [run, reason] : diverged)
    runs += (runs.empty() ? "" : "; ") + run + ": " + reason;
  throw Diverged("training diverged (" + runs +
                 "); the result file marks it (diverged_at_step); lower --lr, or give "
                 "--allow-divergence to train on regardless");
}

std::string StepWatch::reason() const {
  if (diverged_at_ < 0) return "";
  char text[160];
  if (!std::isfinite(diverged_loss_) || !reported_have_first_)
    std::snprintf(text, sizeof text, "loss %g at step %lld", diverged_loss_,
                  static_cast<long long>(diverged_at_));
  else
    std::snprintf(text, sizeof text, "loss %.4g at step %lld, more than %gx the first loss %.4g",
                  diverged_loss_, static_cast<long long>(diverged_at_), kExplodeFactor,
                  reported_first_loss_);
  return text;
}

}  // namespace paralab
