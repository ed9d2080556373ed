// Options of emb_cache and their validation.
#include "options.hpp"

#include <cmath>

#include "core/errors.hpp"
#include "core/options.hpp"
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

Setup parse_and_validate(App& app, Options& o) {
  add_options(app.cli(), o);
  app.parse();
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
