// Simulate mode (simulate.hpp): calibrate the hit rates (or take them), then
// for each cache fraction x format x GPU count the memory model and the
// played step (lib/emb/simulate.hpp). Rank 0 predicts and records.
#include "simulate.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "dlrm/data.hpp"
#include "emb/simulate.hpp"
#include "emb/train.hpp"
#include "harness/table.hpp"
#include "kernels/threads.hpp"
#include "sim/hardware.hpp"

namespace paralab::emb_cache {
namespace {

// Hit rate per table of the simulated model at one cache fraction: given,
// or a calibration run of the measure-mode model here (format int8: the
// admissions do not depend on the row values), per table when the two
// models have the same tables, else the mean over all lookups.
std::vector<double> hit_rates(App& app, const Options& o, const Setup& s, size_t index,
                              std::string& source) {
  const auto tables = static_cast<size_t>(s.sim_config.tables());
  if (!o.sim_hit_rates.empty()) {
    source = "given";
    return std::vector<double>(tables, o.sim_hit_rates[index]);
  }
  emb::TableOptions t;
  t.format = emb::Format::int8;
  t.cache = {o.sim_cache_fractions[index], o.assoc, emb::parse_policy(o.policies.front())};
  t.seed = app.common().seed;
  const bool adagrad = s.run.opt.embedding == dlrm::EmbeddingOptimizer::rowwise_adagrad;
  emb::MixedDlrm model(s.config, app.common().seed, t, adagrad);
  dlrm::SyntheticClicks data(s.config, s.data);
  const emb::RunResult r = emb::run_mixed(model, emb::synthetic_batches(data), s.run, {});
  emb::CacheStats all;
  for (const auto& c : r.cache_totals) all += c;
  if (r.cache_totals.size() == tables) {
    source = "measured per table";
    std::vector<double> h;
    for (const auto& c : r.cache_totals) h.push_back(c.hit_rate());
    return h;
  }
  source = "measured (mean of all tables)";
  return std::vector<double>(tables, all.hit_rate());
}

struct Point {
  emb::Format format = emb::Format::fp32;
  double fraction = 0, hit_rate = 0;  // mean over tables, per lookup weight 1
  std::string hit_source;
  int gpus = 1;
  std::vector<emb::GpuMemory> memory;
  emb::SimulatedEmbStep step;
  double fp32_step_s = 0;
  double max_total = 0, mean_total = 0, max_hbm = 0, max_host = 0;
  bool fits = true;
  int hbm_gpus = 0;  // GPUs holding all their rows in HBM
};

void summarise_memory(Point& p) {
  double sum = 0;
  p.fits = true;
  p.hbm_gpus = 0;
  for (const auto& g : p.memory) {
    const auto total = static_cast<double>(g.use.total());
    p.max_total = std::max(p.max_total, total);
    sum += total;
    p.max_hbm = std::max(p.max_hbm, static_cast<double>(g.hbm_needed));
    p.max_host = std::max(p.max_host, static_cast<double>(g.host_needed));
    p.fits = p.fits && g.fits;
    p.hbm_gpus += g.placement == emb::GpuPlacement::hbm;
  }
  p.mean_total = sum / static_cast<double>(p.memory.size());
}

Point simulate_point(const Options& o, const Setup& s, const sim::HardwareProfile& hw,
                     emb::Format format, double fraction, const std::vector<double>& hits,
                     int gpus) {
  const dlrm::ShardingPlan plan = dlrm::plan_sharding(s.sim_config, gpus, emb::memory_planner());
  emb::SimTables tables;
  tables.format = format;
  tables.cache = {fraction, o.assoc, emb::parse_policy(o.policies.front())};
  tables.adagrad = o.optimizer == "adagrad";
  Point p;
  p.format = format;
  p.fraction = fraction;
  p.gpus = gpus;
  p.memory = emb::gpu_memory(s.sim_config, plan, tables, o.sim_hbm_GB * 1e9);
  summarise_memory(p);
  emb::StepSimInputs in;
  in.config = &s.sim_config;
  in.plan = &plan;
  in.split = dlrm::split_batch(o.sim_batch, gpus);
  in.tables = tables;
  in.hit_rate = hits;
  in.memory = p.memory;
  in.host_bytes_per_s = o.sim_host_GBps * 1e9;
  p.step = emb::simulate_step(in, hw);
  double h = 0;
  for (double x : hits) h += x;
  p.hit_rate = h / static_cast<double>(hits.size());
  return p;
}

Table make_sim_table(const World& world) {
  return Table(world, {{"format", "", 6},
                       {"cache", "", 6},
                       {"hit", "", 6},
                       {"GPUs", "", 5},
                       {"mem max", "(GB)", 9},
                       {"mem mean", "(GB)", 9},
                       {"HBM need", "(GB)", 9},
                       {"host", "(GB)", 9},
                       {"in HBM", "(GPUs)", 7},
                       {"fits", "", 5},
                       {"step", "(ms)", 9},
                       {"lookup", "HBM (ms)", 9},
                       {"lookup", "host (ms)", 9},
                       {"bwd", "HBM (ms)", 9},
                       {"bwd", "host (ms)", 9},
                       {"a2a", "(ms)", 8},
                       {"dense", "(ms)", 8},
                       {"allred", "(ms)", 8},
                       {"vs fp32", "", 7}});
}

using Role = emb::EmbStepRole;

void print_point(const Table& table, const Point& p) {
  const auto& st = p.step;
  auto ms = [&](Role r) { return cell("%.3f", 1e3 * st.role(r)); };
  table.print_row({emb::to_string(p.format), cell("%.3g", p.fraction), cell("%.3f", p.hit_rate),
                   cell("%d", p.gpus), cell("%.2f", 1e-9 * p.max_total),
                   cell("%.2f", 1e-9 * p.mean_total), cell("%.2f", 1e-9 * p.max_hbm),
                   cell("%.2f", 1e-9 * p.max_host), cell("%d", p.hbm_gpus), p.fits ? "yes" : "NO",
                   cell("%.3f", 1e3 * st.step_s), ms(Role::lookup_hbm), ms(Role::lookup_host),
                   ms(Role::backward_hbm), ms(Role::backward_host),
                   cell("%.3f", 1e3 * (st.role(Role::forward_exchange) +
                                       st.role(Role::backward_exchange) + st.role(Role::input))),
                   ms(Role::dense), ms(Role::allreduce), cell("%.2f", p.fp32_step_s / st.step_s)});
}

void record_point(App& app, const Options& o, const Setup& s, const sim::HardwareProfile& hw,
                  const Point& p) {
  results::Group g = app.add_point();
  const auto& st = p.step;
  g.attr("simulated", int64_t{1});
  g.attr("format", emb::to_string(p.format));
  g.attr("cache_fraction", p.fraction);
  g.attr("gpus", p.gpus);
  g.attr("policy", o.policies.front());
  g.attr("assoc", o.assoc);
  g.attr("optimizer", o.optimizer);
  g.attr("profile", hw.name);
  g.attr("sim_model", o.sim_model);
  g.attr("model_config", s.sim_config.describe());
  g.attr("batch", o.sim_batch);
  g.attr("hbm_bytes_per_gpu", o.sim_hbm_GB * 1e9);
  g.attr("host_bytes_per_s", o.sim_host_GBps * 1e9);
  g.attr("hit_rate", p.hit_rate);
  g.attr("hit_rate_source", p.hit_source);
  g.attr("memory_max_bytes", p.max_total);
  g.attr("memory_mean_bytes", p.mean_total);
  g.attr("hbm_needed_max_bytes", p.max_hbm);
  g.attr("host_needed_max_bytes", p.max_host);
  g.attr("gpus_all_in_hbm", p.hbm_gpus);
  g.attr("fits", int64_t{p.fits});
  g.attr("step_time_s", st.step_s);
  g.attr("fp32_step_time_s", p.fp32_step_s);
  g.attr("speedup_vs_fp32", p.fp32_step_s / st.step_s);
  g.attr("input_s", st.role(Role::input));
  g.attr("lookup_hbm_s", st.role(Role::lookup_hbm));
  g.attr("lookup_host_s", st.role(Role::lookup_host));
  g.attr("a2a_forward_s", st.role(Role::forward_exchange));
  g.attr("dense_s", st.role(Role::dense));
  g.attr("a2a_backward_s", st.role(Role::backward_exchange));
  g.attr("backward_hbm_s", st.role(Role::backward_hbm));
  g.attr("backward_host_s", st.role(Role::backward_host));
  g.attr("allreduce_s", st.role(Role::allreduce));
  g.attr("update_s", st.role(Role::update));
  std::vector<double> total, hbm, host;
  for (const auto& m : p.memory) {
    total.push_back(static_cast<double>(m.use.total()));
    hbm.push_back(static_cast<double>(m.hbm_needed));
    host.push_back(static_cast<double>(m.host_needed));
  }
  g.dataset("gpu_memory_bytes", total, {total.size()}, "bytes", "gpu");
  g.dataset("gpu_hbm_bytes", hbm, {hbm.size()}, "bytes", "gpu");
  g.dataset("gpu_host_bytes", host, {host.size()}, "bytes", "gpu");
  g.attr("parameters", std::vector<std::string>{"format", "cache_fraction", "gpus"});
  g.attr("metrics", std::vector<std::string>{"memory_max_bytes", "hbm_needed_max_bytes", "fits",
                                             "step_time_s", "speedup_vs_fp32", "hit_rate"});
}

}  // namespace

void run_simulate(App& app, const Options& o, const Setup& s) {
  World& world = app.world();
  const sim::HardwareProfile hw = sim::resolve_profile(o.profile);
  app.open_results("sim");
  std::vector<emb::Format> formats;
  for (const auto& v : s.variants)
    if (std::find(formats.begin(), formats.end(), v.table.format) == formats.end())
      formats.push_back(v.table.format);
  world.printf("# emb_cache simulate: model %s: %s; %lld embedding parameters\n",
               o.sim_model.c_str(), s.sim_config.describe().c_str(),
               static_cast<long long>(s.sim_config.total_rows() * s.sim_config.embedding_dim));
  world.printf(
      "# global batch %lld, tables sharded table-wise (lib/dlrm planner, by memory), %s "
      "cache, %d ways, optimizer %s; HBM %g GB per GPU, host link %g GB/s per direction\n",
      static_cast<long long>(o.sim_batch), o.policies.front().c_str(), o.assoc, o.optimizer.c_str(),
      o.sim_hbm_GB, o.sim_host_GBps);
  if (o.sim_hit_rates.empty())
    world.printf(
        "# calibration: hit rates measured here on model %s (%s), batch %d, %d steps, "
        "zipf %g, %d threads\n",
        o.model.c_str(), s.config.describe().c_str(), o.batch, o.steps, o.zipf, kernels::threads());
  std::vector<std::vector<double>> hits;
  std::vector<std::string> sources;
  for (size_t i = 0; i < o.sim_cache_fractions.size(); ++i) {
    std::string source;
    hits.push_back(hit_rates(app, o, s, i, source));
    sources.push_back(source);
    const auto [lo, hi] = std::minmax_element(hits.back().begin(), hits.back().end());
    world.printf("# hit rate at cache fraction %g: %.3f to %.3f over the tables (%s)\n",
                 o.sim_cache_fractions[i], *lo, *hi, source.c_str());
  }
  world.printf(
      "\n# SIMULATED (not measured): profile %s (HBM %.0f GB/s achieved, %d GPUs per node, "
      "inter-node %s); memory per GPU from the tables' allocation arithmetic\n",
      hw.name.c_str(), 1e-9 * hw.memory_bytes_per_s, hw.gpus_per_node, hw.inter_node.name.c_str());
  const Table table = make_sim_table(world);
  table.print_header();
  for (size_t i = 0; i < o.sim_cache_fractions.size(); ++i)
    for (int n : o.sim_gpus) {
      const double f = o.sim_cache_fractions[i];
      const Point fp32 = simulate_point(o, s, hw, emb::Format::fp32, f, hits[i], n);
      for (emb::Format format : formats) {
        Point p =
            format == emb::Format::fp32 ? fp32 : simulate_point(o, s, hw, format, f, hits[i], n);
        p.hit_source = sources[i];
        p.fp32_step_s = fp32.step.step_s;
        print_point(table, p);
        if (world.is_root()) record_point(app, o, s, hw, p);
      }
    }
  world.printf(
      "# the rows above are SIMULATED. mem: all table bytes per GPU (rows, FP32 cache, tags, LFU "
      "counts, optimizer state); in HBM: GPUs whose whole share fits HBM, the others keep rows "
      "in host memory and the cache + state in HBM (HBM need); fits: every GPU's HBM need <= "
      "HBM; vs fp32: the fp32 tables' step at the same cache and hit rate over this one\n");
  app.finish();
}

}  // namespace paralab::emb_cache
