#include "harness/app.hpp"
#include "core/options.hpp"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <span>

#include "core/build_info.hpp"
#include "core/errors.hpp"
#include "core/signals.hpp"
#include "kernels/cpu/isa.hpp"

namespace paralab {

namespace {

std::string shell_quote(const std::string& arg) {
  if (!arg.empty() && arg.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                            "0123456789-_=.,/:+@%") == std::string::npos)
    return arg;
  std::string quoted = "'";
  for (char c : arg) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

// Options as typed JSON: flags as booleans, numbers as numbers, lists as arrays.
nlohmann::json option_value(const CLI::Option& option) {
  auto scalar = [](const std::string& text) -> nlohmann::json {
    if (text == "true") return true;
    if (text == "false") return false;
    char* end = nullptr;
    const long long integer = std::strtoll(text.c_str(), &end, 10);
    if (!text.empty() && *end == '\0') return integer;
    const double real = std::strtod(text.c_str(), &end);
    if (!text.empty() && *end == '\0') return real;
    return text;
  };
  if (option.get_expected_max() == 0) return option.count() > 0;  // a flag: no value
  std::vector<std::string> values = option.results();
  if (values.empty()) {
    const std::string& fallback = option.get_default_str();
    if (fallback.empty()) return nullptr;
    values = {fallback};
  }
  if (option.get_expected_max() <= 1 && values.size() == 1) return scalar(values[0]);
  nlohmann::json list = nlohmann::json::array();
  for (const auto& v : values) list.push_back(scalar(v));
  return list;
}

}  // namespace

App::App(World& world, AppInfo info, int argc, char** argv)
    : world_(world), info_(std::move(info)), cli_(info_.description, info_.name) {
  for (int i = 1; i < argc; ++i) args_.emplace_back(argv[i]);
  command_line_ = info_.name;
  for (const auto& a : args_) command_line_ += " " + shell_quote(a);
  start_time_ = results::utc_now_iso();

  cli_.set_help_flag("-h,--help", "Print this help and exit");
  cli_.get_formatter()->column_width(34);
  auto* common = "Common options";
  if (info_.has_sweep_repeats) {
    // Ranges, not positive_number(), whose message for "-n abc" prints DBL_MAX in full.
    cli_.add_option("-n,--iters", common_.iters, "Timed iterations per sweep point")
        ->check(CLI::Range(1, 1000000000))
        ->capture_default_str()
        ->group(common);
    cli_.add_option("-w,--warmup", common_.warmup, "Untimed warm-up iterations per sweep point")
        ->check(CLI::Range(0, 1000000000))
        ->capture_default_str()
        ->group(common);
  }
  if (info_.has_seed)
    cli_.add_option("--seed", common_.seed, "Seed of every random input")
        ->capture_default_str()
        ->group(common);
  cli_.add_option("-o,--out", common_.out,
                  "Result file (HDF5); default results/" + info_.name + "-<UTC stamp>.h5")
      ->group(common);
  cli_.add_option("--json", common_.json,
                  "Also write every sweep point (parameters and metrics, no raw samples) as one "
                  "JSON object per line (JSON Lines) to this file")
      ->group(common);
  cli_.add_option("--device", device_text_, "Where to compute: cpu or cuda")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str()
      ->group(common);
  if (info_.has_simulate)
    cli_.add_option("--mode", mode_text_,
                    "measure (run for real) or simulate (predict with lib/sim cost models)")
        ->check(CLI::IsMember({"measure", "simulate"}))
        ->capture_default_str()
        ->group(common);
  cli_.add_flag("-c,--check", common_.check,
                "Verify results against a reference; exit code 2 on mismatch")
      ->group(common);
}

void App::parse() {
  // A list of nothing ("--op ,") would make CLI11 take the next option as the list's value
  // ("--op , -b 1k": "-b not in ..."): refused as what it is.
  for (size_t i = 0; i + 1 < args_.size(); ++i) {
    const std::string& value = args_[i + 1];
    if (args_[i].starts_with("-") && !value.empty() &&
        value.find_first_not_of(", ") == std::string::npos)
      throw UsageError(
          args_[i] + " '" + value +
          "': an empty list; give at least one value\nRun with --help for the options.");
  }
  try {
    std::vector<std::string> reversed(args_.rbegin(), args_.rend());  // CLI11 pops from the back
    cli_.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    world_.printf("%s", cli_.help().c_str());
    throw EarlyExit();
  } catch (const CLI::ParseError& e) {
    throw UsageError(std::string(e.what()) + "\nRun with --help for the options.");
  }
  // PARALAB_ISA (a lower instruction-set tier for the CPU kernels) is checked here, so that a
  // bad value is one usage error, not a warning from the first kernel.
  agree_on(world_.comm(), [] {
    try {
      kernels::cpu::isa_from_environment();
    } catch (const std::invalid_argument& e) {
      throw UsageError(e.what());
    }
  });
  common_.device = parse_device(device_text_);
  common_.mode = mode_text_ == "simulate" ? Mode::simulate : Mode::measure;
  if (common_.out.empty())
    common_.out = "results/" + info_.name + "-" + results::utc_stamp() + ".h5";
  if (!common_.json.empty() && std::filesystem::path(common_.json).lexically_normal() ==
                                   std::filesystem::path(common_.out).lexically_normal())
    throw UsageError("--json and --out name the same file '" + common_.out + "'");
  if (common_.mode == Mode::measure) {
    agree_on(world_.comm(),
             [&] { bind_device(common_.device, world_.local_rank(), world_.local_size()); });
  }
}

void App::open_results(std::string_view backend) {
  // Only rank 0 writes; every rank learns whether it could.
  results::Provenance p;
  p.app = info_.name;
  p.suite_version = suite_version();
  p.git_commit = git_commit();
  p.utc_time = start_time_;
  p.command_line = command_line_;
  p.world_size = world_.size();
  hosts_ = world_.hosts();
  p.hosts = hosts_;
  p.backend = std::string(backend);
  p.device = std::string(device_label(common_.device));
  p.mode = common_.mode == Mode::simulate ? "simulate" : "measure";
  p.cpu_isa = kernels::cpu::isa_description();
  p.config_json = config_json();
  agree_on(world_.comm(), [&] {
    p.device_name = common_.mode == Mode::simulate ? "simulated" : device_name(common_.device);
    if (!world_.is_root()) return;
    results_ = std::make_unique<results::ResultFile>(common_.out);
    results_->write_provenance(p);
    if (!common_.json.empty()) {
      json_ = std::make_unique<results::OutputFile>(common_.json, "JSON results");
      results_->mirror_points();
    }
  });
}

results::Group App::add_point() {
  if (!results_) throw RuntimeError("App::add_point: results are written by rank 0 only");
  return results_->add_point();
}

results::Group App::add_group(const std::string& name) {
  if (!results_) throw RuntimeError("App::add_group: results are written by rank 0 only");
  return results_->root().subgroup(name);
}

void App::finish() {
  agree_on(world_.comm(), [&] {
    if (results_) results_->commit();
    if (json_) {
      std::string lines;
      for (const auto& point : results_->point_json()) {
        nlohmann::ordered_json line = {
            {"app", info_.name}, {"mode", common_.mode == Mode::simulate ? "simulate" : "measure"}};
        line.update(*point);
        lines += line.dump() + "\n";
      }
      json_->commit(std::as_bytes(std::span(lines.data(), lines.size())));
    }
  });
  world_.printf("# results: %s\n", common_.out.c_str());
  if (!common_.json.empty()) world_.printf("# json: %s\n", common_.json.c_str());
}

std::string App::config_json() const {
  nlohmann::json config = nlohmann::json::object();
  for (const CLI::Option* option : cli_.get_options()) {
    const std::string name = option->get_single_name();
    if (name == "help" || name.empty()) continue;
    config[name] = option_value(*option);
  }
  config["out"] = common_.out;  // the resolved path, also when defaulted
  return config.dump();
}

int run_app(int argc, char** argv, const AppInfo& info, const std::function<void(App&)>& body) {
  World world(argc, argv);
  // SIGTERM/SIGINT/SIGHUP remove a claimed result file's lock and temporary; a training loop
  // with a checkpoint turns them into a stop at the next step (core/signals.hpp).
  install_termination_handlers();
  try {
    App app(world, info, argc, argv);
    body(app);
    return 0;
  } catch (const Error& e) {
    if (e.scope() == Scope::this_rank) abort_run(e.what(), e.code());
    if (e.code() != ExitCode::ok && world.is_root()) {
      std::fprintf(stderr, "%s: %s: %s\n", info.name.c_str(),
                   e.code() == ExitCode::interrupted ? "stopped" : "error", e.what());
      std::fflush(stderr);
    }
    return static_cast<int>(e.code());
  } catch (const std::exception& e) {
    abort_run(e.what());
  }
}

}  // namespace paralab
