// app.hpp: the harness every executable runs in. It owns the command line
// (common options plus the app's own), the device binding, the result file
// and its provenance, and turns errors into one message and an exit code.
//
//   int main(int argc, char** argv) {
//     return paralab::run_app(argc, argv, {"my_app", "what it does"}, [](paralab::App& app) {
//       app.cli().add_option(...);   // the app's own options
//       app.parse();                 // common + own options, device binding
//       app.open_results("mpi");     // collective; rank 0 holds the file
//       ... run sweep points, app.add_point() on rank 0 ...
//       app.finish();                // commit; exit code 0
//     });
//   }
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/device.hpp"
#include "core/world.hpp"
#include "results/output_file.hpp"
#include "results/writer.hpp"

namespace paralab {

enum class Mode { measure, simulate };

struct AppInfo {
  std::string name;           // executable name, e.g. "comm_bench"
  std::string description;    // first line of --help
  bool has_simulate = false;  // offers --mode simulate
  bool has_seed = true;       // draws random inputs: offers --seed
  // Repeats timed sweep points: offers -n/--iters and -w/--warmup. Training
  // apps count --steps instead.
  bool has_sweep_repeats = true;
};

// Options every app shares; set by parse().
struct CommonOptions {
  int iters = 20;
  int warmup = 5;
  uint64_t seed = 1;
  std::string out;   // empty until parse(): then the given path or the default
  std::string json;  // --json: every point also as a line of JSON here; empty: none
  Device device = Device::cpu;
  Mode mode = Mode::measure;
  bool check = false;
};

class App {
 public:
  App(World& world, AppInfo info, int argc, char** argv);

  CLI::App& cli() { return cli_; }
  World& world() { return world_; }
  const AppInfo& info() const { return info_; }
  const CommonOptions& common() const { return common_; }

  // Every rank parses the same argv, so all agree: errors throw UsageError
  // everywhere; --help prints once and ends the run with exit code 0. Then
  // binds this rank's device.
  void parse();

  // Collective: rank 0 creates the result file (all ranks fail together if
  // it cannot) and writes the provenance. backend: "mpi", "nccl" or "sim".
  void open_results(std::string_view backend);
  // Rank 0 only: a new sweep point group. Throws on other ranks.
  results::Group add_point();
  // Rank 0 only: a group of its own at the root (e.g. /limits).
  results::Group add_group(const std::string& name);
  // Collective: commits the result file on rank 0 (and with --json the JSON
  // Lines file: one object per point, "app", "mode", "point" and then the
  // point's attributes in the order written) and prints their paths.
  void finish();

  // Host names of all ranks, unique and sorted (known after open_results).
  const std::vector<std::string>& hosts() const { return hosts_; }

  // Every option with its value (given or default), as a JSON object.
  std::string config_json() const;
  std::string command_line() const { return command_line_; }

 private:
  World& world_;
  AppInfo info_;
  CLI::App cli_;
  CommonOptions common_;
  std::string device_text_ = "cpu";
  std::string mode_text_ = "measure";
  std::vector<std::string> args_;
  std::string command_line_;
  std::string start_time_;
  std::vector<std::string> hosts_;
  std::unique_ptr<results::ResultFile> results_;
  std::unique_ptr<results::OutputFile> json_;  // rank 0, with --json
};

// Runs `body` inside an MPI world and maps its outcome to an exit code (see
// core/errors.hpp): all-rank errors print once from rank 0; anything else
// aborts the job with the failing rank's message.
int run_app(int argc, char** argv, const AppInfo& info, const std::function<void(App&)>& body);

}  // namespace paralab
