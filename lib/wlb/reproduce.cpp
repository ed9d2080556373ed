// The simulated reproduction of WLB-LLM's evaluation; see reproduce.hpp.
#include "wlb/reproduce.hpp"

#include <cmath>
#include <memory>
#include <numeric>

#include "core/errors.hpp"
#include "sim/hardware.hpp"
#include "wlb/step.hpp"

namespace paralab::wlb {
namespace {

using packing::PackingKind;

void validate(const ReproductionOptions& o) {
  if (o.steps < 1) throw UsageError("reproduction: steps must be at least 1");
  if (o.micro_batches_per_replica < 0)
    throw UsageError("reproduction: micro-batches per replica must be >= 0 (0 = the paper's)");
  if (o.fixed_window < 1) throw UsageError("reproduction: the fixed window must be at least 1");
  if (o.wlb_queues < 0) throw UsageError("reproduction: WLB queues must be >= 0");
  if (!(o.load > 0 && o.load <= 1)) throw UsageError("reproduction: the load must be in (0, 1]");
  if (!(o.wlb_max_length_factor >= 1))
    throw UsageError("reproduction: the WLB length factor must be at least 1");
}

std::vector<PaperConfig> selected_configs(const ReproductionOptions& o) {
  if (o.configs.empty()) return paper_configs();
  std::vector<PaperConfig> configs;
  for (const std::string& name : o.configs) configs.push_back(find_paper_config(name));
  return configs;
}

// One configuration with everything its runs share.
struct Case {
  PaperConfig config;
  ModelPreset model;
  StepSetup setup;
  packing::WorkloadModel workload;
  std::string lengths;
  int micro_batches = 0;  // per step, all replicas
};

Case make_case(const PaperConfig& config, const ReproductionOptions& o,
               const sim::HardwareProfile& hardware) {
  Case c{config, find_model_preset(config.model), {}, {}, {}, 0};
  validate_grid(config.grid, c.model.shape);
  c.setup.hardware = hardware;
  c.setup.efficiency = o.efficiency;
  c.workload = workload_model(c.model, config.grid, c.setup);
  c.lengths = o.lengths.empty() ? packing::paper_like_spec(config.context) : o.lengths;
  const int per_replica = o.micro_batches_per_replica > 0 ? o.micro_batches_per_replica
                                                          : config.micro_batches_per_replica;
  c.micro_batches = per_replica * config.grid.dp;
  return c;
}

// The steps a packer makes of `batches` global batches of the case's documents
// (the same documents for every variant: the source is seeded alike). Steps
// still held at the end (outliers in the queues) are not trained.
std::vector<packing::Step> pack(const Case& c, const PackingChoice& v, int batches,
                                const ReproductionOptions& o) {
  const int64_t context = c.config.context;
  packing::PackingConfig config;
  config.context = context;
  config.max_length = v.kind == PackingKind::wlb
                          ? int64_t(std::llround(double(context) * o.wlb_max_length_factor))
                          : 0;
  config.micro_batches = c.micro_batches;
  config.split_documents = v.split_documents;
  config.window = v.window;
  config.queues = v.queues;
  config.workload = c.workload;
  const std::unique_ptr<packing::Packer> packer = packing::make_packer(v.kind, config);
  const int64_t batch_tokens = std::llround(o.load * double(c.micro_batches) * double(context));
  packing::GlobalBatches global_batches(
      packing::make_length_source(c.lengths, context, context, o.seed), batch_tokens);
  std::vector<packing::Step> steps;
  for (int i = 0; i < batches; ++i)
    for (packing::Step& step : packer->push(global_batches.next()))
      steps.push_back(std::move(step));
  return steps;
}

// Packs and simulates one variant; fills everything but the speedup.
ReproductionRow run(const Case& c, const PackingChoice& v, int batches,
                    const ReproductionOptions& o) {
  ReproductionRow row;
  row.config = c.config.name;
  row.model = c.config.model;
  row.context = c.config.context;
  row.grid = c.config.grid;
  row.packing = packing::to_string(v.kind);
  row.sharding = packing::to_string(v.sharding);
  StepSetup setup = c.setup;
  setup.sharding = v.sharding;

  const std::vector<packing::Step> steps = pack(c, v, batches, o);
  if (steps.empty())
    throw UsageError(c.config.name + ": the " + row.packing + " packer produced no step from " +
                     std::to_string(batches) + " global batches");
  packing::WorkloadModel attention_only = c.workload;
  attention_only.linear_coef = 0;
  double total_s = 0, pack_s = 0;
  int64_t micro_batches = 0;
  for (const packing::Step& step : steps) {
    const SimulatedStep simulated = simulate_step(step, c.model, c.config.grid, setup);
    total_s += simulated.step_s;
    row.tokens += simulated.tokens;
    row.mfu += simulated.mfu;
    row.bubble_fraction += simulated.bubble_fraction;
    const double imbalance = packing::imbalance(step, c.workload);
    row.imbalance += imbalance;
    row.attention_imbalance += packing::imbalance(step, attention_only);
    row.latency_imbalance += simulated.latency_imbalance;
    row.step_seconds.push_back(simulated.step_s);
    row.step_imbalance.push_back(imbalance);
    row.step_latency_imbalance.push_back(simulated.latency_imbalance);
    row.step_tokens.push_back(simulated.tokens);
    for (const MicroBatchCost& cost : simulated.micro_batches) {
      row.pair_imbalance += cost.pair_imbalance;
      ++micro_batches;
    }
    pack_s += step.pack_seconds;
  }
  const double n = double(steps.size());
  row.steps = int(steps.size());
  row.micro_batches = c.micro_batches;
  row.fill = double(row.tokens) / (n * c.micro_batches * double(c.config.context));
  row.mean_step_s = total_s / n;
  row.tokens_per_s = total_s > 0 ? double(row.tokens) / total_s : 0;
  row.mfu /= n;
  row.bubble_fraction /= n;
  row.imbalance /= n;
  row.attention_imbalance /= n;
  row.latency_imbalance /= n;
  row.pair_imbalance /= double(micro_batches);
  row.mean_delay = packing::delay_stats(steps).mean_per_token;
  row.pack_ms = 1e3 * pack_s / n;
  return row;
}

double mean(const std::vector<double>& values) {
  return values.empty() ? 0 : std::accumulate(values.begin(), values.end(), 0.0) / values.size();
}

}  // namespace

ReproductionRow simulate_packing(const PaperConfig& config, const PackingChoice& choice,
                                 const ReproductionOptions& o) {
  validate(o);
  if (choice.window < 1) throw UsageError("simulate: the fixed window must be at least 1");
  if (choice.queues < 0) throw UsageError("simulate: WLB queues must be >= 0");
  if (config.context < 1 ||
      (o.micro_batches_per_replica == 0 && config.micro_batches_per_replica < 1))
    throw UsageError("simulate: " + config.name +
                     " needs a positive context and micro-batches per replica");
  const Case c = make_case(config, o, sim::resolve_profile(o.profile));
  const int batches = (o.steps + choice.window - 1) / choice.window * choice.window;
  return run(c, choice, batches, o);
}

ReproductionTable reproduce_paper(const ReproductionOptions& o) {
  validate(o);
  const sim::HardwareProfile hardware = sim::resolve_profile(o.profile);
  ReproductionTable table;
  table.profile = hardware.name;
  std::vector<double> all, at64k, at128k, over_fixed, mfu_all, mfu_64k, mfu_128k;
  for (const PaperConfig& config : selected_configs(o)) {
    const Case c = make_case(config, o, hardware);
    if (table.lengths.empty()) table.lengths = c.lengths;
    // Whole windows only: the fixed packer hands out steps `window` at a time.
    const int batches = (o.steps + o.fixed_window - 1) / o.fixed_window * o.fixed_window;
    ReproductionRow plain = run(
        c, {PackingKind::plain, 1, 0, packing::CpSharding::per_sequence, o.plain_split_documents},
        batches, o);
    ReproductionRow fixed = run(
        c, {PackingKind::fixed, o.fixed_window, 0, packing::CpSharding::per_sequence}, batches, o);
    ReproductionRow wlb = run(c, {PackingKind::wlb, 1, o.wlb_queues, o.wlb_sharding}, batches, o);
    fixed.speedup = fixed.tokens_per_s / plain.tokens_per_s;
    wlb.speedup = wlb.tokens_per_s / plain.tokens_per_s;
    all.push_back(wlb.speedup);
    over_fixed.push_back(wlb.tokens_per_s / fixed.tokens_per_s);
    (config.context <= 64 * 1024 ? at64k : at128k).push_back(wlb.speedup);
    const double mfu_ratio = wlb.mfu / plain.mfu;
    mfu_all.push_back(mfu_ratio);
    (config.context <= 64 * 1024 ? mfu_64k : mfu_128k).push_back(mfu_ratio);
    table.rows.push_back(std::move(plain));
    table.rows.push_back(std::move(fixed));
    table.rows.push_back(std::move(wlb));
  }
  table.mean_speedup = mean(all);
  table.mean_speedup_64k = mean(at64k);
  table.mean_speedup_128k = mean(at128k);
  table.mean_speedup_over_fixed = mean(over_fixed);
  table.mean_mfu_ratio = mean(mfu_all);
  table.mean_mfu_ratio_64k = mean(mfu_64k);
  table.mean_mfu_ratio_128k = mean(mfu_128k);
  return table;
}

ImbalanceTable reproduce_imbalance(const ReproductionOptions& o) {
  validate(o);
  const sim::HardwareProfile hardware = sim::resolve_profile(o.profile);
  const PaperConfig config =
      find_paper_config(o.configs.empty() ? std::string("7B-128K") : o.configs.front());
  const Case c = make_case(config, o, hardware);
  const int batches = (o.steps + 7) / 8 * 8;  // whole windows of every fixed variant
  struct Entry {
    PackingChoice variant;
    int parameter;
    double paper;
  };
  const auto sequence = packing::CpSharding::per_sequence;
  const std::vector<Entry> entries = {
      {{PackingKind::plain, 1, 0, sequence, o.plain_split_documents}, 0, 1.44},
      {{PackingKind::fixed, 1, 0, sequence}, 1, 1.41},
      {{PackingKind::fixed, 2, 0, sequence}, 2, 1.22},
      {{PackingKind::fixed, 4, 0, sequence}, 4, 1.11},
      {{PackingKind::fixed, 8, 0, sequence}, 8, 1.08},
      {{PackingKind::wlb, 1, 1, o.wlb_sharding}, 1, 1.24},
      {{PackingKind::wlb, 1, 2, o.wlb_sharding}, 2, 1.05},
      {{PackingKind::wlb, 1, 3, o.wlb_sharding}, 3, 1.05},
      // Not in the paper: plain packing keeping documents whole (the other
      // reading of "original packing"), for comparison; paper = 0.
      {{PackingKind::plain, 1, 0, sequence, !o.plain_split_documents}, 0, 0},
  };
  ImbalanceTable table;
  table.config = config.name;
  for (const Entry& entry : entries) {
    const ReproductionRow row = run(c, entry.variant, batches, o);
    const std::string name =
        entry.variant.kind == PackingKind::plain && !entry.variant.split_documents ? "plain-whole"
                                                                                   : row.packing;
    table.rows.push_back({name, entry.parameter, row.imbalance, row.attention_imbalance,
                          row.latency_imbalance, row.mean_delay, entry.paper});
  }
  return table;
}

}  // namespace paralab::wlb
