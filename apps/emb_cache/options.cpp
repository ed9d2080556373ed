// Options of emb_cache and their validation.
#include "options.hpp"

#include <cmath>

#include "core/errors.hpp"
#include "core/options.hpp"
#include "emb/simulate.hpp"
#include "harness/table.hpp"
#include "kernels/threads.hpp"

namespace paralab::emb_cache {

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
  add_size_option(cli, "--max-rows", o.max_rows, "criteo-kaggle: cap on the rows of a table (1M)")
      ->group(model);
  cli.add_option("--tables", o.tables, "custom: tables")
      ->check(positive_number())
      ->capture_default_str()
      ->group(model);
  add_size_option(cli, "--rows", o.rows, "custom: rows per table (100k)")->group(model);
  cli.add_option("--pooling", o.pooling, "Indices per lookup (bag size)")
      ->check(positive_number())
      ->capture_default_str()
      ->group(model);
  auto* train = "Training";
  cli.add_option("--zipf", o.zipf, "Zipf exponent of the synthetic lookups (> 0)")
      ->capture_default_str()
      ->group(train);
  cli.add_option("--batch", o.batch, "Samples per step, global (split over the ranks)")
      ->check(positive_number())
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
                 "Embedding optimizer: sgd or adagrad (row-wise, FP32 state); the MLPs use SGD")
      ->check(CLI::IsMember({"sgd", "adagrad"}))
      ->capture_default_str()
      ->group(train);
  cli.add_option("--lr", o.lr, "Learning rate of the MLPs")->capture_default_str()->group(train);
  cli.add_option("--embedding-lr", o.embedding_lr, "Learning rate of the tables; default --lr")
      ->group(train);
  cli.add_option("--criteo", o.criteo,
                 "A Criteo-format TSV file (label, 13 integers, 26 hex categories per line) "
                 "instead of synthetic data: the last --eval-batches x --batch lines are held "
                 "out, training wraps around the rest; needs --model criteo-kaggle")
      ->group(train);
  cli.add_option("--progress-every", o.progress_every,
                 "Steps between progress lines; 0: a tenth of the steps from 100 steps on")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str()
      ->group(train);
  auto* tables = "Tables";
  cli.add_option("--format", o.formats,
                 "Row formats, a comma list of fp32, fp16, bf16, int8, int4 (each trained from "
                 "the same initialisation and data as the plain FP32 reference)")
      ->delimiter(',')
      ->capture_default_str()
      ->group(tables);
  cli.add_option("--cache-fraction", o.cache_fraction,
                 "Fraction of each table's rows held in the FP32 cache, in [0, 1]")
      ->capture_default_str()
      ->group(tables);
  cli.add_option("--assoc", o.assoc, "Ways per cache set")
      ->check(positive_number())
      ->capture_default_str()
      ->group(tables);
  cli.add_option("--policy", o.policies, "Cache policies, a comma list of lru, lfu")
      ->delimiter(',')
      ->capture_default_str()
      ->group(tables);
  cli.add_option("--rounding", o.roundings,
                 "Rounding of rows written back, a comma list of nearest, stochastic")
      ->delimiter(',')
      ->capture_default_str()
      ->group(tables);
  cli.add_flag("--no-prefetch", o.no_prefetch,
               "Admit a batch's rows at the start of its step instead of after the previous step")
      ->group(tables);
  cli.add_option("--threads", o.threads, "Kernel threads; default: this host's cores")
      ->check(CLI::Range(0, 4096));
  auto* sim = "Simulate (--mode simulate)";
  cli.add_option("--profile", o.profile,
                 "Hardware profile: a built-in name (sim/hardware.hpp) or a JSON file")
      ->capture_default_str()
      ->group(sim);
  cli.add_option("--sim-model", o.sim_model,
                 "Simulated model: zionex-12t (synthetic 12e12-parameter tables: 256 x 183.1M "
                 "rows x d 256) or criteo-kaggle (uncapped Kaggle tables at --embedding-dim)")
      ->check(CLI::IsMember({"zionex-12t", "criteo-kaggle"}))
      ->capture_default_str()
      ->group(sim);
  cli.add_option("--sim-gpus", o.sim_gpus, "GPU counts to simulate, a comma list")
      ->delimiter(',')
      ->capture_default_str()
      ->group(sim);
  add_size_option(cli, "--sim-batch", o.sim_batch, "Simulated global batch (samples per step)")
      ->group(sim);
  cli.add_option("--sim-cache-fraction", o.sim_cache_fractions,
                 "Cache fractions to simulate, a comma list in [0, 1]")
      ->delimiter(',')
      ->capture_default_str()
      ->group(sim);
  cli.add_option("--sim-hit-rate", o.sim_hit_rates,
                 "Cache hit rate per --sim-cache-fraction (comma list, in [0, 1]); default: "
                 "measured by a calibration run of the measure-mode model here")
      ->delimiter(',')
      ->group(sim);
  cli.add_option("--sim-hbm-GB", o.sim_hbm_GB, "HBM per GPU, GB (80: H100 SXM5)")
      ->capture_default_str()
      ->group(sim);
  cli.add_option("--sim-host-GBps", o.sim_host_GBps,
                 "Host memory <-> GPU bandwidth per direction, GB/s (50: PCIe Gen5 x16's 63 "
                 "GB/s at an assumed 80% achieved)")
      ->capture_default_str()
      ->group(sim);
}

std::string Variant::label() const {
  return emb::to_string(table.format) + " " + emb::to_string(table.cache.policy) + " " +
         emb::to_string(table.rounding);
}

namespace {

dlrm::DlrmConfig make_model(const Options& o) {
  if (o.model == "criteo-kaggle")
    return dlrm::criteo_kaggle(o.embedding_dim, o.max_rows, 1.0, o.pooling);
  dlrm::DlrmConfig c;
  c.dense_features = 13;
  c.bottom_layers = {64, o.embedding_dim};
  c.top_layers = {64, 1};
  c.embedding_dim = o.embedding_dim;
  c.table_rows.assign(static_cast<size_t>(o.tables), o.rows);
  c.pooling.assign(static_cast<size_t>(o.tables), o.pooling);
  c.validate();
  return c;
}

std::vector<Variant> make_variants(const Options& o, uint64_t seed) {
  if (o.formats.empty()) throw UsageError("--format needs at least one format");
  std::vector<Variant> variants;
  for (const auto& f : o.formats)
    for (const auto& p : o.policies)
      for (const auto& r : o.roundings) {
        Variant v;
        v.table.format = emb::parse_format(f);
        v.table.rounding = emb::parse_rounding(r);
        v.table.cache = {o.cache_fraction, o.assoc, emb::parse_policy(p)};
        v.table.seed = seed;
        v.table.cache.validate();
        variants.push_back(v);
      }
  return variants;
}

// Every rank reads the whole file (data parallel ranks slice the batches), so
// all ranks meet the same error at the same point.
void load_criteo(const Options& o, Setup& s) {
  emb::check_criteo_model(s.config);
  s.criteo = emb::read_criteo(o.criteo);
  const size_t held_out = static_cast<size_t>(o.eval_batches) * static_cast<size_t>(o.batch);
  if (s.criteo.size() <= held_out)
    throw UsageError("criteo file '" + o.criteo + "' has " + std::to_string(s.criteo.size()) +
                     " lines: more than --eval-batches x --batch = " + std::to_string(held_out) +
                     " are needed (those are held out)");
  s.criteo_train = s.criteo.size() - held_out;
}

}  // namespace

namespace {

const std::vector<std::string> kSimOptions = {
    "--profile",      "--sim-model",  "--sim-gpus",     "--sim-batch", "--sim-cache-fraction",
    "--sim-hit-rate", "--sim-hbm-GB", "--sim-host-GBps"};

// Simulate mode: the options it uses are valid, the ones it ignores refused.
void validate_simulate(App& app, const Options& o) {
  reject_given(app.cli(),
               {"--check", "--rounding", "--no-prefetch", "--criteo", "--cache-fraction"},
               "is for measure mode (simulate takes --sim-cache-fraction; rounding and prefetch "
               "do not change the simulated memory or step)");
  if (!o.sim_hit_rates.empty())
    reject_given(app.cli(),
                 {"--model", "--tables", "--rows", "--max-rows", "--zipf", "--batch", "--steps",
                  "--eval-every", "--eval-batches", "--lr", "--embedding-lr", "--progress-every",
                  "--threads"},
                 "sets the calibration run, which --sim-hit-rate replaces");
  if (o.policies.size() != 1)
    throw UsageError("--mode simulate takes one --policy (got " +
                     std::to_string(o.policies.size()) + ")");
  if (o.sim_gpus.empty()) throw UsageError("--sim-gpus needs at least one GPU count");
  for (int n : o.sim_gpus)
    if (n < 1) throw UsageError("--sim-gpus " + std::to_string(n) + " must be at least 1");
  if (o.sim_batch < 1) throw UsageError("--sim-batch must be at least 1");
  for (int n : o.sim_gpus)
    if (n > o.sim_batch)
      throw UsageError("--sim-gpus " + std::to_string(n) + " is more than --sim-batch " +
                       std::to_string(o.sim_batch) + ": every GPU needs a sample");
  if (o.sim_cache_fractions.empty())
    throw UsageError("--sim-cache-fraction needs at least one fraction");
  for (double f : o.sim_cache_fractions)
    if (!(f >= 0 && f <= 1)) throw UsageError(cell("--sim-cache-fraction %g is outside [0, 1]", f));
  if (!o.sim_hit_rates.empty() && o.sim_hit_rates.size() != o.sim_cache_fractions.size())
    throw UsageError(
        cell("--sim-hit-rate has %zu values: one per --sim-cache-fraction (%zu) "
             "is needed",
             o.sim_hit_rates.size(), o.sim_cache_fractions.size()));
  for (double h : o.sim_hit_rates)
    if (!(h >= 0 && h <= 1)) throw UsageError(cell("--sim-hit-rate %g is outside [0, 1]", h));
  if (!(o.sim_hbm_GB > 0) || !std::isfinite(o.sim_hbm_GB))
    throw UsageError(cell("--sim-hbm-GB %g must be positive", o.sim_hbm_GB));
  if (!(o.sim_host_GBps > 0) || !std::isfinite(o.sim_host_GBps))
    throw UsageError(cell("--sim-host-GBps %g must be positive", o.sim_host_GBps));
}

}  // namespace

Setup parse_and_validate(App& app, Options& o) {
  add_options(app.cli(), o);
  app.parse();
  const bool simulate = app.common().mode == Mode::simulate;
  if (simulate)
    validate_simulate(app, o);
  else
    reject_given(app.cli(), kSimOptions, "is for --mode simulate");
  if (app.common().device != Device::cpu)
    throw UsageError("emb_cache computes on the CPU only: --device cuda is not supported");
  if (o.batch < app.world().size())
    throw UsageError("--batch " + std::to_string(o.batch) + " is smaller than the " +
                     std::to_string(app.world().size()) +
                     " ranks: every rank needs a sample (data parallel)");
  Setup s;
  if (o.rows < 1 || o.max_rows < 1) throw UsageError("--rows and --max-rows must be at least 1");
  s.config = make_model(o);
  if (!(o.zipf > 0) || !std::isfinite(o.zipf))
    throw UsageError(cell("--zipf %g must be positive", o.zipf));
  s.data.seed = app.common().seed;
  s.data.zipf_exponent = o.zipf;
  s.data.validate();
  s.run.steps = o.steps;
  s.run.batch = o.batch;
  s.run.eval_every = o.eval_every;
  s.run.eval_batches = o.eval_batches;
  s.run.prefetch = !o.no_prefetch;
  s.run.opt.mlp_lr = static_cast<float>(o.lr);
  s.run.opt.embedding_lr = static_cast<float>(o.embedding_lr < 0 ? o.lr : o.embedding_lr);
  s.run.opt.embedding = o.optimizer == "sgd" ? dlrm::EmbeddingOptimizer::sgd
                                             : dlrm::EmbeddingOptimizer::rowwise_adagrad;
  s.run.opt.validate();
  s.variants = make_variants(o, app.common().seed);
  if (!o.criteo.empty()) load_criteo(o, s);
  if (simulate)
    s.sim_config = o.sim_model == "zionex-12t"
                       ? emb::zionex_12t(o.pooling)
                       : dlrm::criteo_kaggle(o.embedding_dim, 0, 1.0, o.pooling);
  if (app.common().check) {
    bool has_fp32 = false;
    for (const auto& v : s.variants) has_fp32 |= v.table.format == emb::Format::fp32;
    if (!has_fp32)
      throw UsageError("--check compares the fp32 format with the reference: add fp32 to --format");
  }
  kernels::set_threads(o.threads > 0 ? o.threads : kernels::default_threads(1));
  return s;
}

}  // namespace paralab::emb_cache
