// emb_cache --mode simulate: the memory per GPU of the simulated model's
// tables per format and cache fraction, and the predicted step on a GPU
// profile (lib/emb/simulate.hpp); hit rates measured by a short calibration
// run here or given. Everything it prints after the calibration is SIMULATED.
#pragma once

#include "harness/app.hpp"
#include "options.hpp"

namespace paralab::emb_cache {

void run_simulate(App& app, const Options& o, const Setup& s);

}  // namespace paralab::emb_cache
