// The tables dlrm_a2a prints and the HDF5 points it writes: measure mode's
// evaluation rows, per-codec summary and per-codec point; simulate mode's
// row and point per (codec, rank count).
#pragma once

#include <string>
#include <vector>

#include "harness/table.hpp"
#include "options.hpp"
#include "simulate.hpp"
#include "train.hpp"

namespace paralab::dlrm_a2a {

// `value` in `format`, or N/A when it is not finite.
std::string fixed(double value, const char* format);

// Measure mode: the table of evaluation rows (train_codec prints them), the
// per-codec summary, and one point per codec (rank 0 only).
Table make_table(const World& world);
void print_summary(const World& world, const std::vector<CodecRun>& runs);
void record(App& app, const Options& o, const Setup& s, const CodecRun& r, const CodecRun* none);

// Simulate mode: one row and one point per (codec, rank count).
Table make_simulate_table(const World& world);
void print_simulated(const Table& table, const SimulatedPoint& point);
void record_simulated(App& app, const Options& o, const Setup& s, const SimulatedPoint& point);

}  // namespace paralab::dlrm_a2a
