// Simulate mode of dlrm_a2a: predicts the training step at the --sim-ranks
// rank counts of a hardware profile, with and without compression, using
// dlrm/simulate.hpp's cost model calibrated on a short measured run here
// (the run's ratios per table, codec rate and, with --sim-compute measured,
// its compute), unless --sim-ratio / --sim-codec-GBps give them.
#pragma once

#include <cmath>
#include <string>

#include "dlrm/simulate.hpp"
#include "options.hpp"

namespace paralab::dlrm_a2a {

// One (codec, rank count) prediction and what it was calibrated on.
struct SimulatedPoint {
  std::string codec;
  dlrm::SimulatedStep step;
  dlrm::CompressionModel compression;
  std::string hardware;
  int gpus_per_node = 1;
  std::string compute_source, codec_source, ratio_source;  // "measured" or "given"/"profile"
  double ratio_forward = 1, ratio_backward = 1;            // overall (raw / compressed bytes)
  // This run's measured step at its own rank count (NaN elsewhere): the
  // check of the model against measure mode.
  double measured_step_s = NAN, measured_step_compressed_s = NAN;
};

// Collective: runs the calibration training (codec none and each
// compressing codec of --codec), then rank 0 predicts, prints and records.
void run_simulate(App& app, const Options& o, Setup& s);

}  // namespace paralab::dlrm_a2a
