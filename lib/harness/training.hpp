// training.hpp: what every training loop (bf16_train, wlb_4d, dlrm_a2a) checks after each step,
// agreed on by all ranks in one small all-reduce:
//   - divergence: a non-finite loss, or one above kExplodeFactor times the first loss seen. A
//     diverged run used to look like a normal result (NaN curves, exit 0, --check passing):
//     now it is said on stdout, marked in the result file, and the app exits with
//     ExitCode::diverged (4) unless --allow-divergence was given;
//   - a termination signal (core/signals.hpp) received by any rank, so that every rank stops at
//     the same step, after the checkpoint.
#pragma once

#include <mpi.h>

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace paralab {

// Losses above this multiple of the first one count as exploding: a training loss that grows
// a hundredfold has left any regime a learning-rate schedule recovers from (language models
// start at ln(vocab), DLRM's log loss at ln 2, and both only fall when training works).
inline constexpr double kExplodeFactor = 100;

// Adds --allow-divergence to `cli`.
void add_divergence_option(CLI::App& cli, bool& allow);

class StepWatch {
 public:
  // What happened at the step just observed, the same on every rank.
  struct Outcome {
    bool diverged_now = false;  // this step is the first divergent one
    bool stop = false;          // a termination signal reached some rank: stop after this step
  };

  // Collective (MPI_Allreduce on `comm`) after every step: `step` counts the steps done (the
  // first is 1), `loss` is this rank's view of the step's loss (a global mean, or its own
  // share). The loss reason() names is the worst over the ranks (non-finite, else the largest
  // magnitude), so that every rank says the same.
  Outcome observe(MPI_Comm comm, int64_t step, double loss);

  bool diverged() const { return diverged_at_ >= 0; }
  int64_t diverged_at() const { return diverged_at_; }  // -1: never
  double diverged_loss() const { return diverged_loss_; }
  // "loss nan at step 12" / "loss 4.1e+05 at step 12, 100x the first loss 2.3"
  std::string reason() const;

 private:
  double first_loss_ = 0;
  bool have_first_ = false;
  int64_t diverged_at_ = -1;
  double diverged_loss_ = 0;        // the worst over the ranks at diverged_at_
  double reported_first_loss_ = 0;  // that rank's first loss
  bool reported_have_first_ = false;
};

// The one DIVERGED line of a run (`run` names it, "bf16-sr"; `unit` says what stops, "policy"),
// printed by rank 0 of `comm` when the watch has just seen it diverge.
void announce_divergence(MPI_Comm comm, const std::string& run, const std::string& unit,
                         const StepWatch& watch, bool allow_divergence);

// After the result file is written: throws Diverged (exit code 4) naming every diverged run
// ({run, StepWatch::reason()}) unless --allow-divergence was given.
void raise_if_diverged(const std::vector<std::pair<std::string, std::string>>& diverged,
                       bool allow_divergence);

}  // namespace paralab
