// campaign.hpp: a fault-injection campaign over cells (component x fault
// model x storage type x bit class) of a Target, spread over ranks so that
// any rank count gives the same counts, and resumable from a checkpoint.
//
// Determinism: trial t of cell c draws its faults from Rng(trial_seed(seed,
// c, t)) (rng.hpp) and the target's verdict is a function of the faults, so a
// trial's outcome does not depend on who runs it. Trials go in rounds of
// `round` trials: rank r runs the trials t of the round with t % ranks == r,
// then the ranks sum the round's integer counts (SumFn). After each round the
// cell stops once it has max_trials trials or its Wilson interval (z) is
// narrower than ci_width; the rule sees only whole-round totals, so the
// stopping point, and every count, is the same at any rank count.
//
// Checkpoint (text, written atomically by rank 0 after every round):
//   paralab-pvf-checkpoint 1
//   fingerprint <16 hex digits>       a hash of everything the counts depend on
//   cells <N>
//   <cell> <trials> <incorrect> <nan_inf> <done>    one line per cell
// A resumed campaign starts every cell from its recorded counts (always a
// whole number of rounds), so it ends with the counts of an uninterrupted run.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "pvf/fault.hpp"
#include "pvf/wilson.hpp"

namespace paralab::pvf {

enum class Outcome { correct, incorrect, nan_inf };

// What faults are injected into. Components are groups of parameters (e.g.
// "top.weight"); an element index runs over all of a component's parameters.
class Target {
 public:
  virtual ~Target() = default;
  virtual int components() const = 0;
  virtual std::string component_name(int component) const = 0;
  virtual uint64_t elements(int component) const = 0;
  // Stores every parameter in `dtype` (the rounded master values) and
  // computes the clean outputs the verdicts compare against.
  virtual void prepare(DType dtype) = 0;
  // Applies the faults to the stored parameters, evaluates, restores them
  // exactly, and returns the verdict.
  virtual Outcome inject(int component, std::span<const ElementFault> faults) = 0;
};

// A target whose injections recompute only from the corrupted layer up and
// that can also run the full forward of the corrupted model: the two are
// checked and timed against each other (time_recompute). Both restore the
// model.
class RecomputingTarget : public Target {
 public:
  virtual std::vector<float> logits_partial(int component,
                                            std::span<const ElementFault> faults) = 0;
  virtual std::vector<float> logits_full(int component, std::span<const ElementFault> faults) = 0;
};

// Partial against full recomputation: `injections` single FP32 flips (any
// bit) of a component drawn from `seed`, each evaluated both ways (timed
// apart, interleaved), their logits compared bit for bit. The target must be
// prepared for FP32.
struct RecomputeTiming {
  int injections = 0;
  double partial_s = 0, full_s = 0;
  int mismatches = 0;  // injections whose logits differ in any bit
};
RecomputeTiming time_recompute(RecomputingTarget& target, int component, int injections,
                               uint64_t seed);

struct Cell {
  int component = 0;
  FaultModel fault;
  DType dtype = DType::fp32;
  BitClass bits = BitClass::any;
};

std::string describe(const Cell& cell, const Target& target);  // "top.weight flip fp32 exponent"

// Cells type-major (one prepare per type), then component, fault model and
// the bit classes that exist in the type; a class no requested type has is a
// UsageError, as is an empty cell list.
std::vector<Cell> make_cells(const std::vector<int>& components,
                             const std::vector<FaultModel>& faults,
                             const std::vector<DType>& dtypes,
                             const std::vector<BitClass>& classes);

struct CellCounts {
  int64_t trials = 0, incorrect = 0, nan_inf = 0;
  bool done = false;
  // PVF counts an output with NaN/Inf as incorrect too; nan_inf says how many.
  int64_t failures() const { return incorrect + nan_inf; }
  double pvf() const { return trials ? static_cast<double>(failures()) / trials : 0.0; }
};

struct CampaignConfig {
  uint64_t seed = 1;
  int64_t max_trials = 1000;  // per cell
  int64_t round = 64;         // trials per round (the stopping rule's granule)
  double ci_width = 0;        // stop a cell once its interval is narrower; 0: never early
  double z = kZ95;
  int rank = 0, ranks = 1;
  std::string checkpoint;         // empty: none
  uint64_t fingerprint = 0;       // written to and checked against the checkpoint
  int64_t stop_after_rounds = 0;  // > 0: stop (checkpointed) after this many rounds of this run
};

// In-place sum of a few integers over all ranks (MPI_Allreduce in the app;
// identity on one process).
using SumFn = std::function<void(std::span<int64_t>)>;
// Called on every rank after each round with the cell's totals.
using ProgressFn = std::function<void(int cell, const CellCounts& counts)>;

struct CampaignResult {
  std::vector<CellCounts> counts;
  bool complete = false;         // false: stopped by stop_after_rounds
  int64_t local_injections = 0;  // trials this rank ran in this run
  double local_inject_seconds = 0;
};

// Runs (or continues from `start`, one entry per cell) the campaign. Cells
// are visited in order; the target is prepared for a cell's type when it
// differs from the previous cell's. Throws std::invalid_argument for a cell
// whose class the type lacks.
CampaignResult run_campaign(Target& target, const std::vector<Cell>& cells,
                            const CampaignConfig& config, const SumFn& sum,
                            const ProgressFn& progress, std::vector<CellCounts> start = {});

// Whether a cell with these totals stops (the rule above).
bool cell_finished(const CellCounts& counts, const CampaignConfig& config);

// FNV-1a of a text (the app hashes its configuration into the fingerprint).
uint64_t fingerprint(const std::string& text);

void write_checkpoint(const std::string& path, uint64_t fingerprint,
                      const std::vector<CellCounts>& counts);
// The counts of a checkpoint. UsageError when it is unreadable, malformed, or
// its fingerprint or cell count differ (a checkpoint of another campaign).
std::vector<CellCounts> read_checkpoint(const std::string& path, uint64_t fingerprint,
                                        size_t cells);

}  // namespace paralab::pvf
