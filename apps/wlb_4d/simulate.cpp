// Simulate mode: the paper's eight configurations under plain, fixed-length
// and WLB packing on lib/sim (lib/wlb/reproduce.hpp), and the 7B-128K
// imbalance table. Every number printed here is simulated.
#include <cctype>

#include "core/errors.hpp"
#include "core/options.hpp"
#include "harness/table.hpp"
#include "sim/hardware.hpp"
#include "wlb/presets.hpp"
#include "wlb/reproduce.hpp"
#include "wlb_4d.hpp"

namespace paralab::wlb_4d {

namespace {

wlb::ReproductionOptions reproduction_options(const Options& o, uint64_t seed) {
  wlb::ReproductionOptions r;
  r.profile = o.profile;
  r.lengths = o.lengths;
  r.configs = o.configs;
  r.steps = steps_of(o, Mode::simulate);
  r.seed = seed;
  r.micro_batches_per_replica = o.micro_batches;
  r.load = o.load;
  r.fixed_window = o.window;
  r.wlb_queues = o.queues;
  r.wlb_max_length_factor = o.max_length_factor;
  if (o.cp_sharding != "auto") r.wlb_sharding = packing::parse_cp_sharding(o.cp_sharding);
  return r;
}

void print_rows(const World& world, const wlb::ReproductionTable& t, bool paper_summary = true) {
  Table table(world, {{"config", "", 9},
                      {"grid", "", 16},
                      {"packing", "", 7},
                      {"sharding", "", 13},
                      {"step", "(s)", 8},
                      {"tokens/s", "", 9},
                      {"MFU", "", 6},
                      {"bubble", "", 6},
                      {"imbal", "W", 6},
                      {"imbal", "lat", 6},
                      {"delay", "(iter)", 6},
                      {"speedup", "", 7}});
  table.print_header();
  for (const auto& r : t.rows)
    table.print_row({r.config, r.grid.describe(), r.packing, r.sharding,
                     cell("%.3f", r.mean_step_s), cell("%.0f", r.tokens_per_s), cell("%.3f", r.mfu),
                     cell("%.3f", r.bubble_fraction), cell("%.3f", r.imbalance),
                     cell("%.3f", r.latency_imbalance), cell("%.2f", r.mean_delay),
                     cell("%.3fx", r.speedup)});
  if (!paper_summary) return;
  world.printf(
      "# WLB over plain (simulated tokens/s): mean %.3fx (paper %.2fx), 64K %.3fx (paper %.2fx), "
      "128K %.3fx (paper %.2fx); WLB over fixed-length %.3fx\n",
      t.mean_speedup, wlb::kPaperMeanSpeedup, t.mean_speedup_64k, wlb::kPaperSpeedup64K,
      t.mean_speedup_128k, wlb::kPaperSpeedup128K, t.mean_speedup_over_fixed);
  world.printf(
      "# WLB over plain at equal model FLOPs (MFU ratio; plain's cut documents attend less): "
      "mean %.3fx, 64K %.3fx, 128K %.3fx\n",
      t.mean_mfu_ratio, t.mean_mfu_ratio_64k, t.mean_mfu_ratio_128k);
}

void print_imbalance(const World& world, const wlb::ImbalanceTable& t) {
  world.printf("\n# imbalance degree, %s (simulated packing on the paper-like lengths)\n",
               t.config.c_str());
  Table table(world, {{"packing", "", 8},
                      {"param", "", 6},
                      {"imbal W", "", 8},
                      {"imbal lat", "", 9},
                      {"paper", "", 6},
                      {"delay", "(iter)", 7}});
  table.print_header();
  for (const auto& r : t.rows)
    table.print_row({r.packing, cell("%d", r.parameter), cell("%.3f", r.imbalance),
                     cell("%.3f", r.latency_imbalance), cell("%.2f", r.paper),
                     cell("%.2f", r.mean_delay)});
}

void record_row(App& app, const wlb::ReproductionRow& r, const std::string& profile) {
  results::Group g = app.add_point();
  g.attr("simulated", int64_t{1});
  g.attr("profile", profile);
  g.attr("config", r.config);
  g.attr("model", r.model);
  g.attr("context", r.context);
  g.attr("tp", r.grid.tp), g.attr("cp", r.grid.cp), g.attr("pp", r.grid.pp);
  g.attr("dp", r.grid.dp);
  g.attr("packing", r.packing);
  g.attr("cp_sharding", r.sharding);
  g.attr("micro_batches", r.micro_batches);
  g.attr("steps", r.steps);
  g.attr("tokens", r.tokens);
  g.attr("fill", r.fill);
  g.attr("mean_step_s", r.mean_step_s);
  g.attr("tokens_per_s", r.tokens_per_s);
  g.attr("mfu", r.mfu);
  g.attr("bubble_fraction", r.bubble_fraction);
  g.attr("imbalance", r.imbalance);
  g.attr("latency_imbalance", r.latency_imbalance);
  g.attr("pair_imbalance", r.pair_imbalance);
  g.attr("mean_delay", r.mean_delay);
  g.attr("pack_ms", r.pack_ms);
  g.attr("speedup_vs_plain", r.speedup);
  g.attr("parameters",
         std::vector<std::string>{"config", "model", "context", "packing", "cp_sharding"});
  g.attr("metrics", std::vector<std::string>{"mean_step_s", "tokens_per_s", "mfu",
                                             "bubble_fraction", "imbalance", "latency_imbalance",
                                             "mean_delay", "speedup_vs_plain"});
}

void record_imbalance(App& app, const wlb::ImbalanceTable& t) {
  results::Group g = app.add_group("imbalance_table");
  g.attr("simulated", int64_t{1});
  g.attr("config", t.config);
  std::vector<std::string> packings;
  std::vector<int64_t> parameters;
  std::vector<double> ours, latency, paper, delay;
  for (const auto& r : t.rows) {
    packings.push_back(r.packing);
    parameters.push_back(r.parameter);
    ours.push_back(r.imbalance);
    latency.push_back(r.latency_imbalance);
    paper.push_back(r.paper);
    delay.push_back(r.mean_delay);
  }
  g.attr("packing", packings);
  g.attr("parameter", parameters);
  const auto column = [&](const std::string& name, const std::vector<double>& v,
                          const std::string& units) {
    g.dataset(name, std::span<const double>(v), {v.size()}, units, "variant");
  };
  column("imbalance", ours, "1");
  column("latency_imbalance", latency, "1");
  column("paper_imbalance", paper, "1");
  column("mean_delay", delay, "iterations");
}

// --sim-model: one configuration of the user's, each --packing with the
// chosen (or each packing's default) CP sharding; speedups over plain when
// plain is among them.
void run_custom(App& app, const Options& o, const wlb::ReproductionOptions& options) {
  World& world = app.world();
  wlb::PaperConfig config;
  config.model = o.sim_model;
  config.context = o.context;
  config.grid = {o.tp, o.cp, o.pp, o.dp};
  config.micro_batches_per_replica = micro_batches_per_replica(o);
  std::string context = format_size(static_cast<uint64_t>(o.context));  // "160k"
  for (char& c : context) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  config.name = o.sim_model + "-" + context;  // as the presets: "7B-160K"
  wlb::ReproductionTable table;
  table.profile = sim::resolve_profile(o.profile).name;
  for (packing::PackingKind kind : packings_of(o)) {
    const wlb::PackingChoice choice{kind, o.window, o.queues, sharding_for(o, kind), true};
    table.rows.push_back(wlb::simulate_packing(config, choice, options));
  }
  const wlb::ReproductionRow* plain = nullptr;
  for (const auto& r : table.rows)
    if (r.packing == "plain") plain = &r;
  for (auto& r : table.rows) r.speedup = plain ? r.tokens_per_s / plain->tokens_per_s : 1;
  app.open_results("sim");
  world.printf(
      "# wlb_4d simulate (SIMULATED on profile %s, %d steps per packing): %s on %s at "
      "context %lld\n",
      table.profile.c_str(), steps_of(o, Mode::simulate), o.sim_model.c_str(),
      config.grid.describe().c_str(), static_cast<long long>(o.context));
  print_rows(world, table, false);
  if (world.is_root())
    for (const auto& r : table.rows) record_row(app, r, table.profile);
  app.finish();
}

}  // namespace

void run_simulate(App& app, const Options& o) {
  World& world = app.world();
  const wlb::ReproductionOptions options = reproduction_options(o, app.common().seed);
  if (!o.sim_model.empty()) return run_custom(app, o, options);
  // Every rank computes the same tables (they are cheap); errors in the
  // options surface on every rank before the result file exists.
  const wlb::ReproductionTable table = wlb::reproduce_paper(options);
  wlb::ImbalanceTable imbalance;
  if (o.imbalance_table) imbalance = wlb::reproduce_imbalance(options);
  app.open_results("sim");
  world.printf("# wlb_4d simulate (SIMULATED on profile %s, %d steps per packing, lengths %s)\n",
               table.profile.c_str(), steps_of(o, Mode::simulate), table.lengths.c_str());
  print_rows(world, table);
  if (o.imbalance_table) print_imbalance(world, imbalance);
  if (world.is_root()) {
    for (const auto& r : table.rows) record_row(app, r, table.profile);
    if (o.imbalance_table) record_imbalance(app, imbalance);
    results::Group summary = app.add_group("summary");
    summary.attr("simulated", int64_t{1});
    summary.attr("mean_speedup", table.mean_speedup);
    summary.attr("mean_speedup_64k", table.mean_speedup_64k);
    summary.attr("mean_speedup_128k", table.mean_speedup_128k);
    summary.attr("mean_speedup_over_fixed", table.mean_speedup_over_fixed);
    summary.attr("mean_mfu_ratio", table.mean_mfu_ratio);
    summary.attr("mean_mfu_ratio_64k", table.mean_mfu_ratio_64k);
    summary.attr("mean_mfu_ratio_128k", table.mean_mfu_ratio_128k);
    summary.attr("paper_mean_speedup", wlb::kPaperMeanSpeedup);
    summary.attr("paper_speedup_64k", wlb::kPaperSpeedup64K);
    summary.attr("paper_speedup_128k", wlb::kPaperSpeedup128K);
  }
  app.finish();
}

}  // namespace paralab::wlb_4d
