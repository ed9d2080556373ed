// Options of dlrm_a2a and their validation.
#include "options.hpp"
#include "core/resources.hpp"
#include "harness/training.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/errors.hpp"
#include "core/options.hpp"
#include "dlrm/compressed_exchange.hpp"
#include "dlrm/simulate.hpp"
#include "harness/table.hpp"
#include "kernels/compress.hpp"
#include "sim/hardware.hpp"

namespace paralab::dlrm_a2a {

namespace kc = kernels::compress;

void add_options(CLI::App& cli, Options& o) {
  auto* model = "Model";
  cli.add_option("--model", o.model,
                 "criteo-kaggle (the Criteo Kaggle DLRM, tables capped at --max-rows) or custom "
                 "(--tables tables of --rows rows, bottom 13-64-d, top 64-1)")
      ->check(CLI::IsMember({"criteo-kaggle", "custom"}))
      ->capture_default_str()
      ->group(model);
  cli.add_option("--embedding-dim", o.embedding_dim, "Embedding dimension d")
      ->check(positive_number())
      ->capture_default_str()
      ->group(model);
  cli.add_option("--max-rows", o.max_rows, "criteo-kaggle: cap on the rows of a table")
      ->check(positive_number())
      ->capture_default_str()
      ->group(model);
  cli.add_option("--pooling", o.pooling, "Indices per lookup (bag size)")
      ->check(positive_number())
      ->capture_default_str()
      ->group(model);
  cli.add_option("--tables", o.tables, "custom: tables")
      ->check(positive_number())
      ->capture_default_str()
      ->group(model);
  cli.add_option("--rows", o.rows, "custom: rows per table")
      ->check(positive_number())
      ->capture_default_str()
      ->group(model);
  cli.add_option("--sharding", o.sharding,
                 "table, row, column, data (replicated: no exchange) or mixed (small tables "
                 "replicated, the largest row-wise, the rest table-wise)")
      ->capture_default_str()
      ->group(model);
  auto* train = "Training";
  cli.add_option("--batch", o.batch, "Samples per step, global (split over the ranks)")
      ->capture_default_str()
      ->group(train);
  cli.add_option("--steps", o.steps, "Training steps")
      ->check(positive_number())
      ->capture_default_str()
      ->group(train);
  cli.add_option("--eval-every", o.eval_every, "Steps between evaluations (and the last step)")
      ->check(positive_number())
      ->capture_default_str()
      ->group(train);
  cli.add_option("--eval-batches", o.eval_batches, "Held-out batches (of --batch) per evaluation")
      ->check(positive_number())
      ->capture_default_str()
      ->group(train);
  cli.add_option("--optimizer", o.optimizer,
                 "Embedding optimizer: sgd or adagrad (row-wise); the MLPs use SGD")
      ->check(CLI::IsMember({"sgd", "adagrad"}))
      ->capture_default_str()
      ->group(train);
  cli.add_option("--lr", o.lr, "Learning rate of the MLPs")->capture_default_str()->group(train);
  cli.add_option("--embedding-lr", o.embedding_lr, "Learning rate of the tables; default --lr")
      ->group(train);
  auto* comp = "Compression";
  cli.add_option("--codec", o.codecs,
                 "Codecs of the embedding all-to-all, a comma list: none (plain alltoallv), raw, "
                 "fp16, bf16, int8, quantize_huffman, dedup, dedup_quantize_huffman, auto (each "
                 "in turn from the same initial weights and data, one result file)")
      ->delimiter(',')
      ->capture_default_str()
      ->group(comp);
  cli.add_option("--error-bound", o.error_bound,
                 "Base error bound of the forward exchange (pooled embeddings)")
      ->capture_default_str()
      ->group(comp);
  cli.add_option("--backward-bound", o.backward_bound,
                 "Base error bound of the backward exchange (gradients); default --error-bound")
      ->group(comp);
  cli.add_option("--bound-mode", o.bound_mode, "rel (relative to each block's value range) or abs")
      ->check(CLI::IsMember({"rel", "abs"}))
      ->capture_default_str()
      ->group(comp);
  cli.add_option("--schedule", o.schedule,
                 "Iteration-level bound multiplier: constant, step, linear or log")
      ->capture_default_str()
      ->group(comp);
  cli.add_option("--schedule-start", o.schedule_start, "The schedule's multiplier at step 0 (>= 1)")
      ->capture_default_str()
      ->group(comp);
  cli.add_option("--schedule-steps", o.schedule_steps, "The schedule's decay steps (>= 1)")
      ->capture_default_str()
      ->group(comp);
  cli.add_option("--classes", o.classes,
                 "Table-level bounds: none, or measured (per-table sensitivity on a "
                 "calibration batch: tight / base / loose tertiles, x0.5 / x1 / x2)")
      ->check(CLI::IsMember({"none", "measured"}))
      ->capture_default_str()
      ->group(comp);
  cli.add_option("--link-GBps", o.link_GBps, "auto: the link rate its codec choice assumes")
      ->capture_default_str()
      ->group(comp);
  cli.add_flag("--measure-error", o.measure_error,
               "Largest |error| per table (the sender decodes its own streams: slower)")
      ->group(comp);
  cli.add_option("--threads", o.threads, "Kernel threads per rank; default: cores / local ranks")
      ->check(CLI::Range(0, 4096));
  add_divergence_option(cli, o.allow_divergence);
  auto* sim = "Simulate (--mode simulate)";
  cli.add_option("--profile", o.profile,
                 "Hardware profile: a built-in name (cluster-100g-tcp, cluster-400g-rdma, "
                 "h100-gtt, h100-gti) or a JSON file")
      ->capture_default_str()
      ->group(sim);
  cli.add_option("--sim-ranks", o.sim_ranks,
                 "Ranks (GPUs) to predict, a comma list (8,16,64); default: the run's")
      ->delimiter(',')
      ->group(sim);
  cli.add_option("--sim-compute", o.sim_compute,
                 "Compute per step: profile (MLP FLOPs on the profile's GEMM rate, embedding "
                 "bytes on its memory bandwidth) or measured (this run's, scaled per rank)")
      ->capture_default_str()
      ->group(sim);
  cli.add_option("--sim-codec-GBps", o.sim_codec_GBps,
                 "Compress and decompress rate, GB/s of FP32 input; 0: measured in this run")
      ->capture_default_str()
      ->group(sim);
  add_size_option(cli, "--sim-batch", o.sim_batch,
                  "Global batch to predict (8k, 64k); default --batch (the calibration run "
                  "trains --batch here)")
      ->group(sim);
  cli.add_option("--sim-ratio", o.sim_ratio,
                 "Compression ratio of every table, both directions; 0: measured per table "
                 "in this run")
      ->capture_default_str()
      ->group(sim);
}

namespace {

dlrm::DlrmConfig model_of(const Options& o) {
  dlrm::DlrmConfig c;
  if (o.model == "criteo-kaggle") {
    c = dlrm::criteo_kaggle(o.embedding_dim, o.max_rows, 1.0, o.pooling);
  } else {
    c.bottom_layers = {64, o.embedding_dim};
    c.top_layers = {64, 1};
    c.embedding_dim = o.embedding_dim;
    c.table_rows.assign(static_cast<size_t>(o.tables), o.rows);
    c.pooling.assign(static_cast<size_t>(o.tables), o.pooling);
  }
  c.validate();
  return c;
}

dlrm::PlannerOptions planner_of(const Options& o, const dlrm::DlrmConfig& c) {
  if (o.sharding == "mixed") return dlrm::mixed_planner_options(c);
  dlrm::PlannerOptions p;
  p.type = dlrm::parse_sharding(o.sharding);
  return p;
}

dlrm::BoundPolicy policy_of(const Options& o) {
  if (o.error_bound < 0) throw UsageError(cell("--error-bound %g is negative", o.error_bound));
  if (o.backward_given && o.backward_bound < 0)
    throw UsageError(cell("--backward-bound %g is negative", o.backward_bound));
  const auto mode = o.bound_mode == "abs" ? kc::ErrorBound::absolute : kc::ErrorBound::relative;
  dlrm::BoundPolicy p;
  p.forward_base = {mode, o.error_bound};
  p.backward_base = {mode, o.backward_given ? o.backward_bound : o.error_bound};
  p.schedule.kind = dlrm::parse_schedule(o.schedule);
  p.schedule.start_multiplier = o.schedule_start;
  p.schedule.decay_steps = o.schedule_steps;
  p.validate();
  return p;
}

void validate_simulate(const Options& o) {
  sim::resolve_profile(o.profile);  // names the known profiles when unknown
  dlrm::parse_compute_source(o.sim_compute);
  for (int n : o.sim_ranks) {
    if (n < 1) throw UsageError("--sim-ranks " + std::to_string(n) + ": ranks must be at least 1");
    if (n > o.predicted_batch())
      throw UsageError("--sim-ranks " + std::to_string(n) + " is more than the " +
                       (o.sim_batch > 0 ? "--sim-batch" : "--batch") + " of " +
                       std::to_string(o.predicted_batch()) + " samples: every rank needs a sample");
  }
  if (!(o.sim_codec_GBps >= 0)) throw UsageError("--sim-codec-GBps must be >= 0 (0: measured)");
  if (!(o.sim_ratio == 0 || o.sim_ratio >= 1))
    throw UsageError("--sim-ratio must be at least 1 (0: measured)");
  if (std::none_of(o.codecs.begin(), o.codecs.end(),
                   [](const std::string& c) { return c != "none"; }))
    throw UsageError("simulate: --codec needs a compressing codec besides none");
}

// What one rank holds while training, roughly: its embedding shards (rank_memory floats) with
// their optimizer state and gradients; the global batch's sparse indices (every rank draws
// them) and the pooled embeddings of its tables for the global batch, sent and received, in
// raw and compressed form, forward and backward; its share of the batch through the MLPs.
uint64_t bytes_needed(const Options& o, const Setup& s, const World& world) {
  const auto& plan = s.plan;
  const double tables = s.config.tables(), dim = s.config.embedding_dim, batch = o.batch;
  const double local_batch = std::ceil(batch / world.size());
  double widths = s.config.interaction_width() + s.config.dense_features;
  for (int w : s.config.bottom_layers) widths += w;
  for (int w : s.config.top_layers) widths += w;
  const double shards = plan.rank_memory.empty() ? 0 : plan.rank_memory[world.rank()];
  const double bytes = 4 * 2.2 * shards + 8 * batch * tables * o.pooling +
                       4 * 8 * batch * tables * dim / world.size() + 4 * 8 * local_batch * widths;
  return bytes >= 1.8e19 ? UINT64_MAX : static_cast<uint64_t>(bytes);
}

}  // namespace

Setup parse_and_validate(App& app, Options& o) {
  add_options(app.cli(), o);
  app.parse();
  o.backward_given = app.cli().count("--backward-bound") > 0;
  const World& world = app.world();
  if (app.common().device != Device::cpu)
    throw UsageError("dlrm_a2a trains on the CPU for now (--device cpu)");
  if (sim::is_profile_path(o.profile)) agree_on_inputs(world, {{"--profile", o.profile}});

  // Everything that can be wrong with the input, before the result file.
  if (o.batch < world.size())
    throw UsageError("--batch " + std::to_string(o.batch) + " is smaller than the " +
                     std::to_string(world.size()) + " ranks: every rank needs a sample");
  for (const auto& c : o.codecs)
    if (c != "none") dlrm::parse_codec_choice(c);
  if (o.codecs.empty()) throw UsageError("--codec: give at least one codec");
  if (o.link_GBps <= 0) throw UsageError("--link-GBps must be positive");
  Setup s;
  s.config = model_of(o);
  const std::vector<std::string> shardings = {"table", "row", "column", "data", "mixed"};
  if (std::find(shardings.begin(), shardings.end(), o.sharding) == shardings.end())
    throw UsageError("unknown sharding '" + o.sharding +
                     "' (expected table, row, column, data or mixed)");
  s.planner = planner_of(o, s.config);
  s.plan = dlrm::plan_sharding(s.config, world.size(), s.planner);
  s.policy = policy_of(o);
  const bool has_none = std::find(o.codecs.begin(), o.codecs.end(), "none") != o.codecs.end();
  if (app.common().check && !has_none)
    throw UsageError("--check compares the lossless codecs with none: add none to --codec");
  if (app.common().mode == Mode::measure)
    check_memory(world, bytes_needed(o, s, world), "dlrm_a2a",
                 "lower --batch, --rows, --max-rows, --pooling or --tables, or use more ranks");
  if (app.common().mode == Mode::simulate) {
    validate_simulate(o);
    // Rank 0 alone predicts after the result file is open: every plan it
    // will make must be possible now, while all ranks can still fail together.
    for (int n : o.sim_ranks) dlrm::plan_sharding(s.config, n, s.planner);
  }
  return s;
}

}  // namespace paralab::dlrm_a2a
