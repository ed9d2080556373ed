// results.hpp: the suite's HDF5 result file for the Google Benchmark programs
// (kernels_bench, packing_bench), so that every run of the suite writes one
// file in the schema of docs/results.md that summarize.py and plot.py read.
//
// Each benchmark run (and each aggregate, with --benchmark_repetitions) is a
// point: its name, family and arguments (the name's parts), label, run type
// and aggregate, iterations, threads, real and CPU time per iteration in
// seconds, every counter by name, and the error, if it failed. The measured
// limits the rates are compared with go into /limits. Console output and
// --benchmark_out stay as Google Benchmark makes them.
#pragma once

#include <memory>
#include <string>

namespace paralab::bench {

// Removes -o/--out FILE (or --out=FILE) from argv, for Google Benchmark rejects options it
// does not know, and returns the path: the one given, or results/<app>-<UTC stamp>.h5.
std::string take_out_option(int& argc, char** argv, const std::string& app);

class BenchmarkResults {
 public:
  // Claims `out` at once, so that a bad path fails before anything is measured. Throws
  // paralab::UsageError / RuntimeError (from the result writer) for an unusable path.
  BenchmarkResults(std::string app, std::string out, std::string command_line);
  ~BenchmarkResults();

  // Provenance: every option the program took itself (threads, isa, ...).
  void add_config(const std::string& key, const std::string& value);
  // A limit the rates are compared with, into /limits: {"sgemm_GFLOPs", 166.2}.
  void add_limit(const std::string& name, double value);

  // After benchmark::Initialize: runs the benchmarks the command line selects with the
  // console reporter, then writes the result file and prints its path. Returns the number of
  // runs that reported an error (skipped: no GPU, a tier this CPU lacks; each point keeps it).
  int run();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace paralab::bench
