// The tables dlrm_a2a prints and the HDF5 points it writes, both modes.
#include "report.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "kernels/threads.hpp"

namespace paralab::dlrm_a2a {

std::string fixed(double value, const char* format) {
  return std::isfinite(value) ? cell(format, value) : "N/A";
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

void record(App& app, const Options& o, const Setup& s, const CodecRun& r, const CodecRun* none) {
  const dlrm::DlrmConfig& config = s.config;
  const dlrm::ShardingPlan& plan = s.plan;
  const dlrm::BoundPolicy& policy = s.policy;
  results::Group g = app.add_point();
  g.attr("codec", r.codec);
  // -1: the losses stayed finite and below 100x the first (harness/training.hpp).
  g.attr("diverged_at_step", r.diverged_at);
  if (r.diverged_at >= 0) g.attr("divergence", r.divergence);
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

Table make_simulate_table(const World& world) {
  return Table(world, {{"codec", "", 22},
                       {"ranks", "", 6},
                       {"nodes", "", 6},
                       {"compute", "(ms)", 8},
                       {"a2a", "(ms)", 8},
                       {"a2a comp", "(ms)", 9},
                       {"codec", "(ms)", 8},
                       {"step", "(ms)", 8},
                       {"step comp", "(ms)", 9},
                       {"speedup", "", 7},
                       {"meas step", "(ms)", 9},
                       {"meas comp", "(ms)", 9}});
}

void print_simulated(const Table& table, const SimulatedPoint& p) {
  const dlrm::SimulatedStep& s = p.step;
  const int nodes = (s.ranks + p.gpus_per_node - 1) / p.gpus_per_node;
  table.print_row({p.codec, cell("%d", s.ranks), cell("%d", nodes), cell("%.3f", 1e3 * s.compute_s),
                   cell("%.3f", 1e3 * s.a2a_s()), cell("%.3f", 1e3 * s.a2a_compressed_s()),
                   cell("%.3f", 1e3 * s.codec_s), cell("%.3f", 1e3 * s.step_s()),
                   cell("%.3f", 1e3 * s.step_compressed_s()), cell("%.3f", s.speedup()),
                   fixed(1e3 * p.measured_step_s, "%.3f"),
                   fixed(1e3 * p.measured_step_compressed_s, "%.3f")});
}

void record_simulated(App& app, const Options& o, const Setup& s, const SimulatedPoint& p) {
  results::Group g = app.add_point();
  const dlrm::SimulatedStep& st = p.step;
  g.attr("codec", p.codec);
  g.attr("ranks", st.ranks);
  g.attr("simulated", int64_t{1});
  g.attr("profile", p.hardware);
  g.attr("gpus_per_node", p.gpus_per_node);
  g.attr("sharding", o.sharding);
  g.attr("model", o.model);
  g.attr("model_config", s.config.describe());
  g.attr("batch", o.predicted_batch());
  g.attr("calibration_batch", o.batch);
  g.attr("calibration_ranks", app.world().size());
  g.attr("error_bound", o.error_bound);
  g.attr("compute_source", p.compute_source);
  g.attr("codec_rate_source", p.codec_source);
  g.attr("ratio_source", p.ratio_source);
  g.attr("codec_s_per_byte", p.compression.codec_s_per_byte);
  g.attr("forward_ratio", p.ratio_forward);
  g.attr("backward_ratio", p.ratio_backward);
  g.attr("compute_s", st.compute_s);
  g.attr("dense_s", st.dense_s);
  g.attr("embedding_s", st.embedding_s);
  g.attr("input_s", st.input_s);
  g.attr("allreduce_s", st.allreduce_s);
  g.attr("optimizer_exchange_s", st.optimizer_s);
  g.attr("a2a_forward_s", st.a2a_forward_s);
  g.attr("a2a_backward_s", st.a2a_backward_s);
  g.attr("a2a_s", st.a2a_s());
  g.attr("a2a_forward_compressed_s", st.a2a_forward_compressed_s);
  g.attr("a2a_backward_compressed_s", st.a2a_backward_compressed_s);
  g.attr("codec_s", st.codec_s);
  g.attr("a2a_compressed_s", st.a2a_compressed_s());
  g.attr("step_time_s", st.step_s());
  g.attr("step_time_compressed_s", st.step_compressed_s());
  g.attr("speedup_ratio", st.speedup());
  g.attr("raw_bytes", st.raw_bytes);
  g.attr("compressed_bytes", st.compressed_bytes);
  g.attr("measured_step_time_s", p.measured_step_s);
  g.attr("measured_step_time_compressed_s", p.measured_step_compressed_s);
  g.attr("parameters", std::vector<std::string>{"codec", "ranks", "profile"});
  g.attr("metrics",
         std::vector<std::string>{"step_time_s", "step_time_compressed_s", "speedup_ratio", "a2a_s",
                                  "a2a_compressed_s", "codec_s", "compute_s", "allreduce_s",
                                  "optimizer_exchange_s", "input_s", "measured_step_time_s",
                                  "measured_step_time_compressed_s"});
  const auto T = p.compression.forward_ratio.size();
  g.dataset("table_ratio_forward", p.compression.forward_ratio, {T}, "ratio", "table");
  g.dataset("table_ratio_backward", p.compression.backward_ratio, {T}, "ratio", "table");
}

}  // namespace paralab::dlrm_a2a
