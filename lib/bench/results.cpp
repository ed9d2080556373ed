// Google Benchmark runs into the suite's HDF5 schema; see results.hpp.
#include "bench/results.hpp"

#include <benchmark/benchmark.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstring>
#include <map>

#include "core/build_info.hpp"
#include "core/device.hpp"
#include "kernels/cpu/isa.hpp"
#include "results/writer.hpp"

namespace paralab::bench {
namespace {

using Run = benchmark::BenchmarkReporter::Run;

double unit_seconds(benchmark::TimeUnit unit) {
  switch (unit) {
    case benchmark::kNanosecond:
      return 1e-9;
    case benchmark::kMicrosecond:
      return 1e-6;
    case benchmark::kMillisecond:
      return 1e-3;
    default:
      return 1;
  }
}

// The console reporter, also keeping every run for the result file.
class Collector : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    runs_.insert(runs_.end(), runs.begin(), runs.end());
  }
  const std::vector<Run>& runs() const { return runs_; }

 private:
  std::vector<Run> runs_;
};

std::string host_name() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0) return "unknown";
  return name;
}

void record_run(results::ResultFile& file, const Run& run) {
  results::Group g = file.add_point();
  const std::string name = run.benchmark_name();
  g.attr("name", name);
  g.attr("family", run.run_name.function_name);
  g.attr("args", run.run_name.args);
  if (!run.report_label.empty()) g.attr("label", run.report_label);
  g.attr("run_type", std::string(run.run_type == Run::RT_Aggregate ? "aggregate" : "iteration"));
  if (run.run_type == Run::RT_Aggregate) g.attr("aggregate", run.aggregate_name);
  g.attr("iterations", static_cast<int64_t>(run.iterations));
  g.attr("threads", run.threads);
  const double unit = unit_seconds(run.time_unit);
  g.attr("real_time_s", run.GetAdjustedRealTime() * unit);
  g.attr("cpu_time_s", run.GetAdjustedCPUTime() * unit);
  std::vector<std::string> metrics = {"real_time_s", "cpu_time_s"};
  for (const auto& [counter, value] : run.counters) {
    g.attr(counter, value.value);
    metrics.push_back(counter);
  }
  if (run.error_occurred) g.attr("error", run.error_message);
  g.attr("parameters", std::vector<std::string>{"name"});
  g.attr("metrics", metrics);
}

}  // namespace

std::string take_out_option(int& argc, char** argv, const std::string& app) {
  std::string out;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    int used = 0;
    if ((arg == "-o" || arg == "--out") && i + 1 < argc) out = argv[i + 1], used = 2;
    if (arg.rfind("--out=", 0) == 0) out = arg.substr(6), used = 1;
    if (used == 0) continue;
    std::memmove(argv + i, argv + i + used, sizeof(char*) * (argc - i - used + 1));
    argc -= used;
    --i;
  }
  return out.empty() ? "results/" + app + "-" + results::utc_stamp() + ".h5" : out;
}

struct BenchmarkResults::State {
  State(std::string app_name, std::string path, std::string command)
      : app(std::move(app_name)), out(path), command_line(std::move(command)), file(path) {}
  std::string app, out, command_line;
  results::ResultFile file;
  nlohmann::json config = nlohmann::json::object();
  std::vector<std::pair<std::string, double>> limits;
};

BenchmarkResults::BenchmarkResults(std::string app, std::string out, std::string command_line)
    : state_(std::make_unique<State>(std::move(app), std::move(out), std::move(command_line))) {}

BenchmarkResults::~BenchmarkResults() = default;

void BenchmarkResults::add_config(const std::string& key, const std::string& value) {
  state_->config[key] = value;
}

void BenchmarkResults::add_limit(const std::string& name, double value) {
  state_->limits.emplace_back(name, value);
}

int BenchmarkResults::run() {
  State& s = *state_;
  results::Provenance p;
  p.app = s.app;
  p.suite_version = suite_version();
  p.git_commit = git_commit();
  p.utc_time = results::utc_now_iso();
  p.command_line = s.command_line;
  p.world_size = 1;
  p.hosts = {host_name()};
  p.backend = "benchmark";
  p.device = "cpu";
  p.device_name = device_name(Device::cpu);
  p.cpu_isa = kernels::cpu::isa_description();
  p.mode = "measure";
  s.config["out"] = s.out;
  p.config_json = s.config.dump();
  s.file.write_provenance(p);
  if (!s.limits.empty()) {
    results::Group limits = s.file.root().subgroup("limits");
    for (const auto& [name, value] : s.limits) limits.attr(name, value);
  }

  Collector collector;
  benchmark::RunSpecifiedBenchmarks(&collector);
  int errors = 0;
  for (const Run& run : collector.runs()) {
    record_run(s.file, run);
    errors += run.error_occurred ? 1 : 0;
  }
  s.file.commit();
  std::printf("# results: %s\n", s.out.c_str());
  return errors;
}

}  // namespace paralab::bench
