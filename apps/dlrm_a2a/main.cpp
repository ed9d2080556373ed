// dlrm_a2a: DLRM training with model-parallel embeddings whose all-to-all is
// compressed (issue 5; Feng et al., "Accelerating Communication in DLRM
// Training with Dual-Level Adaptive Lossy Compression", SC'24). Each codec of
// --codec trains in turn from the same initial weights and data; per codec
// the loss curve, step and all-to-all times, compression ratios and the
// held-out AUC and log loss, against the uncompressed exchange (codec none).
// See docs/dlrm_a2a.md.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "comm/comm.hpp"
#include "core/errors.hpp"
#include "dlrm/compressed_exchange.hpp"
#include "dlrm/data.hpp"
#include "dlrm/distributed.hpp"
#include "dlrm/error_bounds.hpp"
#include "dlrm/model.hpp"
#include "dlrm/sharding.hpp"
#include "harness/app.hpp"
#include "harness/table.hpp"
#include "kernels/compress.hpp"
#include "kernels/threads.hpp"

namespace paralab::dlrm_a2a {
namespace {

namespace kc = kernels::compress;

struct Options {
  std::string model = "custom";
  int embedding_dim = 16;
  int64_t max_rows = 100'000;
  int pooling = 1;
  int tables = 8;
  int64_t rows = 1000;
  std::string sharding = "table";
  int batch = 256;
  int steps = 100;
  int eval_every = 50;
  int eval_batches = 4;
  std::string optimizer = "sgd";
  double lr = 0.1;
  double embedding_lr = -1;  // -1: --lr
  std::vector<std::string> codecs{"none", "fp16", "int8", "quantize_huffman"};
  double error_bound = 1e-2;
  double backward_bound = 0;
  bool backward_given = false;  // else --error-bound
  std::string bound_mode = "rel";
  std::string schedule = "constant";
  double schedule_start = 4;
  int64_t schedule_steps = 50;
  std::string classes = "none";
  double link_GBps = 10;
  bool measure_error = false;
  int threads = 0;
};

void add_options(CLI::App& cli, Options& o) {
  auto* model = "Model";
  cli.add_option("--model", o.model,
                 "criteo-kaggle (the Criteo Kaggle DLRM, tables capped at --max-rows) or custom "
                 "(--tables tables of --rows rows, bottom 13-64-d, top 64-1)")
      ->check(CLI::IsMember({"criteo-kaggle", "custom"}))
      ->capture_default_str()
      ->group(model);
  cli.add_option("--embedding-dim", o.embedding_dim, "Embedding dimension d")
      ->check(CLI::PositiveNumber)
      ->capture_default_str()
      ->group(model);
  cli.add_option("--max-rows", o.max_rows, "criteo-kaggle: cap on the rows of a table")
      ->check(CLI::PositiveNumber)
      ->capture_default_str()
      ->group(model);
  cli.add_option("--pooling", o.pooling, "Indices per lookup (bag size)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str()
      ->group(model);
  cli.add_option("--tables", o.tables, "custom: tables")
      ->check(CLI::PositiveNumber)
      ->capture_default_str()
      ->group(model);
  cli.add_option("--rows", o.rows, "custom: rows per table")
      ->check(CLI::PositiveNumber)
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
      ->check(CLI::PositiveNumber)
      ->capture_default_str()
      ->group(train);
  cli.add_option("--eval-every", o.eval_every, "Steps between evaluations (and the last step)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str()
      ->group(train);
  cli.add_option("--eval-batches", o.eval_batches, "Held-out batches (of --batch) per evaluation")
      ->check(CLI::PositiveNumber)
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
      ->check(CLI::NonNegativeNumber);
}

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

// One codec's run, summed over the ranks where it matters.
struct CodecRun {
  std::string codec;
  std::vector<double> loss, step_s, a2a_forward_s, a2a_backward_s, compress_s, ratio_forward,
      ratio_backward;
  std::vector<double> raw_forward, comp_forward, raw_backward, comp_backward;  // per step, bytes
  std::vector<int64_t> eval_step;
  std::vector<double> eval_auc, eval_logloss;
  dlrm::ExchangeStats table_forward, table_backward;  // summed over steps and ranks
  // Summaries (rank means, steps after the first).
  double mean_step_s = 0, mean_fwd_s = 0, mean_bwd_s = 0, mean_compress_s = 0;
  double ratio_fwd = 1, ratio_bwd = 1;
};

double mean_after_first(const std::vector<double>& v) {
  if (v.size() < 2) return v.empty() ? 0 : v[0];
  return std::accumulate(v.begin() + 1, v.end(), 0.0) / double(v.size() - 1);
}

void sum_over_ranks(MPI_Comm comm, std::vector<double>& v, MPI_Op op = MPI_SUM) {
  if (!v.empty())
    MPI_Allreduce(MPI_IN_PLACE, v.data(), static_cast<int>(v.size()), MPI_DOUBLE, op, comm);
}

Table make_table(const World& world) {
  return Table(world, {{"codec", "", 22},
                       {"step", "", 6},
                       {"train", "loss", 8},
                       {"eval", "AUC", 7},
                       {"eval", "logloss", 8},
                       {"step", "(ms)", 8},
                       {"ratio", "fwd", 7},
                       {"ratio", "bwd", 7}});
}

CodecRun train_codec(App& app, const Options& o, const dlrm::DlrmConfig& config,
                     const dlrm::ShardingPlan& plan, comm::Communicator& comm,
                     dlrm::SyntheticClicks& data, const dlrm::BoundPolicy& policy,
                     const std::string& codec, const Table& table) {
  World& world = app.world();
  const int T = config.tables();
  dlrm::DistributedDlrm model(config, plan, comm, app.common().seed);
  std::unique_ptr<dlrm::CompressedExchange> exchange;
  if (codec != "none") {
    dlrm::CompressedExchangeConfig ec;
    ec.codec = dlrm::parse_codec_choice(codec);
    ec.policy = policy;
    ec.link_bytes_per_s = o.link_GBps * 1e9;
    ec.measure_error = o.measure_error;
    ec.threads = 1;
    exchange = std::make_unique<dlrm::CompressedExchange>(T, ec);
    model.set_exchange(exchange.get());
  }
  dlrm::OptimizerConfig opt;
  opt.mlp_lr = static_cast<float>(o.lr);
  opt.embedding_lr = static_cast<float>(o.embedding_lr < 0 ? o.lr : o.embedding_lr);
  opt.embedding = o.optimizer == "adagrad" ? dlrm::EmbeddingOptimizer::rowwise_adagrad
                                           : dlrm::EmbeddingOptimizer::sgd;

  CodecRun r;
  r.codec = codec;
  r.table_forward.clear(T);
  r.table_backward.clear(T);
  const dlrm::BatchSplit split = dlrm::split_batch(o.batch, world.size());
  const auto me = static_cast<size_t>(world.rank());
  dlrm::Batch local;
  int last_eval = 0;
  for (int s = 0; s < o.steps; ++s) {
    data.make_batch(dlrm::Split::train, s, split.first[me], split.counts[me], local);
    const dlrm::StepStats st = model.train_step(local, split, opt);
    r.loss.push_back(st.loss);
    r.step_s.push_back(st.total);
    r.a2a_forward_s.push_back(st.a2a_forward);
    r.a2a_backward_s.push_back(st.a2a_backward);
    if (exchange) {
      const auto& f = exchange->last(dlrm::Direction::forward);
      const auto& b = exchange->last(dlrm::Direction::backward);
      r.compress_s.push_back(f.compress_s + f.decompress_s + b.compress_s + b.decompress_s);
      r.raw_forward.push_back(double(f.raw_bytes));
      r.comp_forward.push_back(double(f.compressed_bytes));
      r.raw_backward.push_back(double(b.raw_bytes));
      r.comp_backward.push_back(double(b.compressed_bytes));
      r.table_forward.add(f);
      r.table_backward.add(b);
    } else {
      r.compress_s.push_back(0);
      r.raw_forward.push_back(double(st.forward_floats * sizeof(float)));
      r.comp_forward.push_back(r.raw_forward.back());
      r.raw_backward.push_back(double(st.backward_floats * sizeof(float)));
      r.comp_backward.push_back(r.raw_backward.back());
    }
    if ((s + 1) % o.eval_every == 0 || s + 1 == o.steps) {
      const dlrm::EvalResult e = dlrm::evaluate(model, data, o.eval_batches, o.batch);
      r.eval_step.push_back(s + 1);
      r.eval_auc.push_back(e.auc);
      r.eval_logloss.push_back(e.log_loss);
      const double train_loss =
          std::accumulate(r.loss.begin() + last_eval, r.loss.end(), 0.0) / (s + 1 - last_eval);
      double step_ms = 0;
      for (int i = last_eval; i <= s; ++i) step_ms += 1e3 * r.step_s[size_t(i)];
      step_ms /= (s + 1 - last_eval);
      auto ratio = [&](const std::vector<double>& raw, const std::vector<double>& comp) {
        const double a = std::accumulate(raw.begin() + last_eval, raw.end(), 0.0);
        const double b = std::accumulate(comp.begin() + last_eval, comp.end(), 0.0);
        return b > 0 ? a / b : 1.0;
      };
      table.print_row({codec, cell("%d", s + 1), cell("%.4f", train_loss), cell("%.4f", e.auc),
                       cell("%.4f", e.log_loss), cell("%.2f", step_ms),
                       cell("%.2f", ratio(r.raw_forward, r.comp_forward)),
                       cell("%.2f", ratio(r.raw_backward, r.comp_backward))});
      last_eval = s + 1;
    }
  }

  // Over the ranks: times are rank means, bytes are sums (all the bytes sent).
  MPI_Comm c = world.comm();
  const double n = world.size();
  for (auto* v : {&r.step_s, &r.a2a_forward_s, &r.a2a_backward_s, &r.compress_s}) {
    sum_over_ranks(c, *v);
    for (double& x : *v) x /= n;
  }
  for (auto* v : {&r.raw_forward, &r.comp_forward, &r.raw_backward, &r.comp_backward})
    sum_over_ranks(c, *v);
  for (size_t i = 0; i < r.loss.size(); ++i) {
    r.ratio_forward.push_back(r.comp_forward[i] > 0 ? r.raw_forward[i] / r.comp_forward[i] : 1);
    r.ratio_backward.push_back(r.comp_backward[i] > 0 ? r.raw_backward[i] / r.comp_backward[i] : 1);
  }
  for (auto* stats : {&r.table_forward, &r.table_backward}) {
    std::vector<double> bytes, err;
    for (const auto& t : stats->tables) {
      bytes.insert(bytes.end(), {double(t.raw_bytes), double(t.compressed_bytes),
                                 t.compress_s + t.decompress_s});
      err.insert(err.end(), {t.max_error, t.bound});
    }
    sum_over_ranks(c, bytes);
    sum_over_ranks(c, err, MPI_MAX);
    for (size_t t = 0; t < stats->tables.size(); ++t) {
      auto& s = stats->tables[t];
      s.raw_bytes = size_t(bytes[3 * t]);
      s.compressed_bytes = size_t(bytes[3 * t + 1]);
      s.compress_s = bytes[3 * t + 2] / n;
      s.decompress_s = 0;
      s.max_error = err[2 * t];
      s.bound = err[2 * t + 1];
    }
  }
  r.mean_step_s = mean_after_first(r.step_s);
  r.mean_fwd_s = mean_after_first(r.a2a_forward_s);
  r.mean_bwd_s = mean_after_first(r.a2a_backward_s);
  r.mean_compress_s = mean_after_first(r.compress_s);
  auto total_ratio = [](const std::vector<double>& raw, const std::vector<double>& comp) {
    const double a = std::accumulate(raw.begin(), raw.end(), 0.0);
    const double b = std::accumulate(comp.begin(), comp.end(), 0.0);
    return b > 0 ? a / b : 1.0;
  };
  r.ratio_fwd = total_ratio(r.raw_forward, r.comp_forward);
  r.ratio_bwd = total_ratio(r.raw_backward, r.comp_backward);
  return r;
}

std::string fixed(double value, const char* format) {
  return std::isfinite(value) ? cell(format, value) : "N/A";
}

void print_summary(const World& world, const std::vector<CodecRun>& runs) {
  const CodecRun* none = nullptr;
  for (const auto& r : runs)
    if (r.codec == "none") none = &r;
  world.printf(
      "\n# summary: eval AUC and log loss at the last step; times are rank means over the "
      "steps after the first; ratios are raw / compressed bytes over all ranks and steps\n");
  const Table table(world, {{"codec", "", 22},
                            {"AUC", "", 7},
                            {"logloss", "", 8},
                            {"dAUC", "vs none", 9},
                            {"step", "(ms)", 8},
                            {"a2a fwd", "(ms)", 8},
                            {"a2a bwd", "(ms)", 8},
                            {"codec", "(ms)", 7},
                            {"ratio", "fwd", 7},
                            {"ratio", "bwd", 7},
                            {"speedup", "vs none", 8}});
  table.print_header();
  for (const auto& r : runs) {
    table.print_row({r.codec, cell("%.4f", r.eval_auc.back()), cell("%.4f", r.eval_logloss.back()),
                     fixed(none ? r.eval_auc.back() - none->eval_auc.back() : NAN, "%+.4f"),
                     cell("%.2f", 1e3 * r.mean_step_s), cell("%.3f", 1e3 * r.mean_fwd_s),
                     cell("%.3f", 1e3 * r.mean_bwd_s), cell("%.3f", 1e3 * r.mean_compress_s),
                     cell("%.2f", r.ratio_fwd), cell("%.2f", r.ratio_bwd),
                     fixed(none ? none->mean_step_s / r.mean_step_s : NAN, "%.3f")});
  }
}

void record(App& app, const Options& o, const dlrm::DlrmConfig& config,
            const dlrm::ShardingPlan& plan, const dlrm::BoundPolicy& policy, const CodecRun& r,
            const CodecRun* none) {
  results::Group g = app.add_point();
  g.attr("codec", r.codec);
  g.attr("sharding", o.sharding);
  g.attr("ranks", app.world().size());
  g.attr("error_bound", o.error_bound);
  g.attr("backward_bound", policy.backward_base.value);
  g.attr("bound_mode", o.bound_mode);
  g.attr("schedule", o.schedule);
  g.attr("schedule_start", o.schedule_start);
  g.attr("schedule_steps", o.schedule_steps);
  g.attr("classes", o.classes);
  g.attr("link_GBps", o.link_GBps);
  g.attr("model", o.model);
  g.attr("model_config", config.describe());
  g.attr("tables", config.tables());
  g.attr("embedding_dim", config.embedding_dim);
  g.attr("total_rows", config.total_rows());
  g.attr("batch", o.batch);
  g.attr("steps", o.steps);
  g.attr("eval_every", o.eval_every);
  g.attr("eval_batches", o.eval_batches);
  g.attr("optimizer", o.optimizer);
  g.attr("lr", o.lr);
  g.attr("embedding_lr", o.embedding_lr < 0 ? o.lr : o.embedding_lr);
  g.attr("seed", app.common().seed);
  g.attr("threads", kernels::threads());
  g.attr("plan_imbalance", plan.imbalance());

  std::vector<std::string> metrics = {"final_auc",
                                      "final_logloss",
                                      "final_train_loss",
                                      "step_time_s",
                                      "a2a_forward_s",
                                      "a2a_backward_s",
                                      "compress_s",
                                      "forward_ratio",
                                      "backward_ratio",
                                      "raw_forward_bytes",
                                      "compressed_forward_bytes",
                                      "raw_backward_bytes",
                                      "compressed_backward_bytes"};
  const size_t n = r.loss.size();
  const size_t tail = std::max<size_t>(1, n / 10);
  g.attr("final_auc", r.eval_auc.back());
  g.attr("final_logloss", r.eval_logloss.back());
  g.attr("final_train_loss",
         std::accumulate(r.loss.end() - static_cast<long>(tail), r.loss.end(), 0.0) / tail);
  g.attr("step_time_s", r.mean_step_s);
  g.attr("a2a_forward_s", r.mean_fwd_s);
  g.attr("a2a_backward_s", r.mean_bwd_s);
  g.attr("compress_s", r.mean_compress_s);
  g.attr("forward_ratio", r.ratio_fwd);
  g.attr("backward_ratio", r.ratio_bwd);
  auto total = [](const std::vector<double>& v) {
    return static_cast<int64_t>(std::accumulate(v.begin(), v.end(), 0.0));
  };
  g.attr("raw_forward_bytes", total(r.raw_forward));
  g.attr("compressed_forward_bytes", total(r.comp_forward));
  g.attr("raw_backward_bytes", total(r.raw_backward));
  g.attr("compressed_backward_bytes", total(r.comp_backward));
  if (none) {
    g.attr("auc_delta_vs_none", r.eval_auc.back() - none->eval_auc.back());
    g.attr("logloss_delta_vs_none", r.eval_logloss.back() - none->eval_logloss.back());
    g.attr("speedup_vs_none_ratio", none->mean_step_s / r.mean_step_s);
    metrics.insert(metrics.end(),
                   {"auc_delta_vs_none", "logloss_delta_vs_none", "speedup_vs_none_ratio"});
  }
  g.attr("parameters", std::vector<std::string>{"codec", "sharding", "ranks", "error_bound"});
  g.attr("metrics", metrics);

  g.dataset("loss", r.loss, {n}, "nats", "step");
  g.dataset("step_time_s", r.step_s, {n}, "s", "step");
  g.dataset("a2a_forward_s", r.a2a_forward_s, {n}, "s", "step");
  g.dataset("a2a_backward_s", r.a2a_backward_s, {n}, "s", "step");
  g.dataset("compress_s", r.compress_s, {n}, "s", "step");
  g.dataset("ratio_forward", r.ratio_forward, {n}, "ratio", "step");
  g.dataset("ratio_backward", r.ratio_backward, {n}, "ratio", "step");
  g.dataset("raw_forward_bytes", r.raw_forward, {n}, "bytes", "step");
  g.dataset("compressed_forward_bytes", r.comp_forward, {n}, "bytes", "step");
  g.dataset("raw_backward_bytes", r.raw_backward, {n}, "bytes", "step");
  g.dataset("compressed_backward_bytes", r.comp_backward, {n}, "bytes", "step");
  const size_t e = r.eval_step.size();
  g.dataset("eval_step", r.eval_step, {e}, "step", "eval");
  g.dataset("eval_auc", r.eval_auc, {e}, "1", "eval");
  g.dataset("eval_logloss", r.eval_logloss, {e}, "nats", "eval");

  const int T = config.tables();
  std::vector<int64_t> cls;
  for (int t = 0; t < T; ++t) cls.push_back(static_cast<int64_t>(policy.class_of(t)));
  g.dataset("table_class", cls, {size_t(T)}, "0 tight, 1 base, 2 loose", "table");
  for (const auto& [dir, stats] :
       {std::pair{"forward", &r.table_forward}, std::pair{"backward", &r.table_backward}}) {
    std::vector<double> raw, comp, ratio, err, bound, secs;
    for (const auto& t : stats->tables) {
      raw.push_back(double(t.raw_bytes));
      comp.push_back(double(t.compressed_bytes));
      ratio.push_back(t.ratio());
      err.push_back(t.max_error);
      bound.push_back(t.bound);
      secs.push_back(t.compress_s);
    }
    const std::string d = dir;
    g.dataset("table_raw_bytes_" + d, raw, {size_t(T)}, "bytes", "table");
    g.dataset("table_compressed_bytes_" + d, comp, {size_t(T)}, "bytes", "table");
    g.dataset("table_ratio_" + d, ratio, {size_t(T)}, "ratio", "table");
    g.dataset("table_max_error_" + d, err, {size_t(T)}, "1", "table");
    g.dataset("table_max_bound_" + d, bound, {size_t(T)}, "1", "table");
    g.dataset("table_compress_s_" + d, secs, {size_t(T)}, "s", "table");
  }
}

void run(App& app) {
  app.cli().remove_option(app.cli().get_option("--iters"));
  app.cli().remove_option(app.cli().get_option("--warmup"));
  Options o;
  add_options(app.cli(), o);
  app.parse();
  o.backward_given = app.cli().count("--backward-bound") > 0;
  World& world = app.world();
  if (app.common().device != Device::cpu)
    throw UsageError("dlrm_a2a trains on the CPU for now (--device cpu)");

  // Everything that can be wrong with the input, before the result file.
  if (o.batch < world.size())
    throw UsageError("--batch " + std::to_string(o.batch) + " is smaller than the " +
                     std::to_string(world.size()) + " ranks: every rank needs a sample");
  for (const auto& c : o.codecs)
    if (c != "none") dlrm::parse_codec_choice(c);
  if (o.codecs.empty()) throw UsageError("--codec: give at least one codec");
  if (o.link_GBps <= 0) throw UsageError("--link-GBps must be positive");
  const dlrm::DlrmConfig config = model_of(o);
  const std::vector<std::string> shardings = {"table", "row", "column", "data", "mixed"};
  if (std::find(shardings.begin(), shardings.end(), o.sharding) == shardings.end())
    throw UsageError("unknown sharding '" + o.sharding +
                     "' (expected table, row, column, data or mixed)");
  const dlrm::ShardingPlan plan = dlrm::plan_sharding(config, world.size(), planner_of(o, config));
  dlrm::BoundPolicy policy = policy_of(o);
  const bool has_none = std::find(o.codecs.begin(), o.codecs.end(), "none") != o.codecs.end();
  if (app.common().check && !has_none)
    throw UsageError("--check compares the lossless codecs with none: add none to --codec");

  kernels::set_threads(o.threads > 0 ? o.threads : kernels::default_threads(world.local_size()));
  auto comm = comm::make_mpi_communicator(world.comm());
  dlrm::DataConfig dc;
  dc.seed = app.common().seed;
  dlrm::SyntheticClicks data(config, dc);

  if (o.classes == "measured") {
    // Sensitivity of the initial model (the same on every rank) on one
    // calibration batch; rank 0's numbers are the ones used.
    dlrm::Dlrm single(config, app.common().seed);
    const dlrm::Batch cal =
        data.make_batch(dlrm::Split::calibration, 1, 0, std::min(o.batch, 1024));
    std::vector<double> sens = dlrm::measure_table_sensitivity(single, cal, policy.forward_base);
    dlrm::agree_on_rank0(*comm, sens);
    policy.classes = dlrm::assign_classes(sens);
    world.printf("# table sensitivity (mean |dloss| per sample at the forward bound):");
    for (size_t t = 0; t < sens.size(); ++t)
      world.printf(" %zu:%.2e(%s)", t, sens[t], dlrm::bound_class_name(policy.classes[t]));
    world.printf("\n");
  }
  app.open_results(comm->backend());

  world.printf("# dlrm_a2a: %d ranks, %d threads each; model %s: %s\n", world.size(),
               kernels::threads(), o.model.c_str(), config.describe().c_str());
  world.printf("# sharding %s (imbalance %.3f); batch %d, %d steps, %s lr %g; bounds %s\n",
               o.sharding.c_str(), plan.imbalance(), o.batch, o.steps, o.optimizer.c_str(), o.lr,
               policy.describe().c_str());
  const Table table = make_table(world);
  table.print_header();
  std::vector<CodecRun> runs;
  for (const auto& codec : o.codecs)
    runs.push_back(train_codec(app, o, config, plan, *comm, data, policy, codec, table));
  print_summary(world, runs);

  const CodecRun* none = nullptr;
  for (const auto& r : runs)
    if (r.codec == "none") none = &r;
  if (app.common().check) {
    for (const auto& r : runs) {
      if (r.codec != "raw" && r.codec != "dedup") continue;
      const bool same = r.loss == none->loss && r.eval_auc == none->eval_auc;
      world.printf("# check: %s losses and AUC %s codec none's\n", r.codec.c_str(),
                   same ? "equal" : "DIFFER from");
      if (!same)
        throw RuntimeError(
            "check failed: lossless codec " + r.codec + " gave other losses than none",
            Scope::all_ranks);
    }
  }
  if (world.is_root())
    for (const auto& r : runs) record(app, o, config, plan, policy, r, none);
  app.finish();
}

}  // namespace
}  // namespace paralab::dlrm_a2a

int main(int argc, char** argv) {
  return paralab::run_app(argc, argv,
                          {.name = "dlrm_a2a",
                           .description = "paralab dlrm_a2a: DLRM training with model-parallel "
                                          "embeddings and a compressed embedding all-to-all"},
                          paralab::dlrm_a2a::run);
}
