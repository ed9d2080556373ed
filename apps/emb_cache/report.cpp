// The table emb_cache prints and the HDF5 points it writes (report.hpp).
#include "report.hpp"

#include <cmath>
#include <numeric>

#include "kernels/threads.hpp"

namespace paralab::emb_cache {

namespace {

double mean_after_first(const std::vector<double>& v) {
  if (v.size() < 2) return v.empty() ? 0.0 : v[0];
  return std::accumulate(v.begin() + 1, v.end(), 0.0) / static_cast<double>(v.size() - 1);
}

double sum(const std::vector<double>& v) {
  return std::accumulate(v.begin(), v.end(), 0.0);
}

std::string fixed(double value, const char* format) {
  return std::isfinite(value) ? cell(format, value) : "N/A";
}

}  // namespace

Summary summarise(std::string label, const Variant* variant, emb::RunResult result,
                  int64_t fp32_bytes) {
  Summary s;
  s.label = std::move(label);
  s.variant = variant;
  s.result = std::move(result);
  const auto& r = s.result;
  s.auc = r.eval_auc.back();
  s.logloss = r.eval_logloss.back();
  for (const auto& m : r.memory) s.bytes += m.total();
  s.fp32_bytes = fp32_bytes;
  s.step_s = mean_after_first(r.step_s);
  s.prefetch_s = r.prefetch_s.empty() ? 0.0 : mean_after_first(r.prefetch_s);
  if (variant) {
    s.lookups_per_s = static_cast<double>(r.lookups) / sum(r.lookup_s);
    s.updates_per_s = static_cast<double>(r.updated_rows) / sum(r.update_s);
    emb::CacheStats total;
    for (const auto& c : r.cache_totals) total += c;
    s.hit_rate = total.hit_rate();
  } else {
    s.lookups_per_s = s.updates_per_s = s.hit_rate = NAN;
  }
  return s;
}

Table make_table(const World& world) {
  return Table(world, {{"tables", "", 24},
                       {"AUC", "", 7},
                       {"logloss", "", 8},
                       {"dAUC", "vs fp32", 9},
                       {"emb mem", "(MB)", 9},
                       {"mem", "x less", 7},
                       {"step", "(ms)", 8},
                       {"prefetch", "(ms)", 8},
                       {"lookups", "(M/s)", 8},
                       {"updates", "(Mrow/s)", 9},
                       {"hit", "rate", 6}});
}

void print_row(const Table& table, const Summary& s, const Summary& ref) {
  table.print_row({s.label, cell("%.4f", s.auc), cell("%.4f", s.logloss),
                   cell("%+.4f", s.auc - ref.auc),
                   cell("%.2f", 1e-6 * static_cast<double>(s.bytes)),
                   cell("%.2f", static_cast<double>(s.fp32_bytes) / static_cast<double>(s.bytes)),
                   cell("%.2f", 1e3 * s.step_s), cell("%.2f", 1e3 * s.prefetch_s),
                   fixed(1e-6 * s.lookups_per_s, "%.1f"), fixed(1e-6 * s.updates_per_s, "%.2f"),
                   fixed(s.hit_rate, "%.3f")});
}

namespace {

void record_memory(results::Group& g, const emb::RunResult& r) {
  emb::MemoryUse total;
  std::vector<int64_t> per_table;
  for (const auto& m : r.memory) {
    total += m;
    per_table.push_back(m.total());
  }
  g.attr("storage_bytes", total.storage);
  g.attr("qparam_bytes", total.qparams);
  g.attr("cache_data_bytes", total.cache_data);
  g.attr("cache_tag_bytes", total.cache_tags);
  g.attr("lfu_count_bytes", total.lfu_counts);
  g.attr("optimizer_bytes", total.optimizer);
  g.dataset("table_bytes", per_table, {per_table.size()}, "bytes", "table");
}

void record_curves(results::Group& g, const emb::RunResult& r) {
  const size_t n = r.loss.size();
  g.dataset("loss", r.loss, {n}, "nats", "step");
  g.dataset("step_time_s", r.step_s, {n}, "s", "step");
  const size_t e = r.eval_step.size();
  g.dataset("eval_step", r.eval_step, {e}, "step", "eval");
  g.dataset("eval_auc", r.eval_auc, {e}, "1", "eval");
  g.dataset("eval_logloss", r.eval_logloss, {e}, "nats", "eval");
  if (r.hit_rate.empty()) return;
  g.dataset("prefetch_s", r.prefetch_s, {n}, "s", "step");
  g.dataset("lookup_s", r.lookup_s, {n}, "s", "step");
  g.dataset("update_s", r.update_s, {n}, "s", "step");
  g.dataset("dense_s", r.dense_s, {n}, "s", "step");
  g.dataset("comm_s", r.comm_s, {n}, "s", "step");
  std::vector<double> hits;
  for (const auto& t : r.hit_rate) hits.insert(hits.end(), t.begin(), t.end());
  g.dataset("hit_rate", hits, {r.hit_rate.size(), r.hit_rate[0].size()}, "1", "table,step");
}

}  // namespace

void record(App& app, const Options& o, const Setup& s, const Summary& run, const Summary& ref) {
  results::Group g = app.add_point();
  const Variant* v = run.variant;
  g.attr("tables_variant", run.label);
  g.attr("format", v ? emb::to_string(v->table.format) : std::string("reference"));
  g.attr("policy", v ? emb::to_string(v->table.cache.policy) : std::string("none"));
  g.attr("rounding", v ? emb::to_string(v->table.rounding) : std::string("none"));
  g.attr("cache_fraction", v ? o.cache_fraction : 0.0);
  g.attr("assoc", o.assoc);
  g.attr("prefetch", static_cast<int64_t>(!o.no_prefetch));
  g.attr("model", o.model);
  g.attr("model_config", s.config.describe());
  g.attr("zipf_exponent", o.zipf);
  g.attr("batch", o.batch);
  g.attr("steps", o.steps);
  g.attr("optimizer", o.optimizer);
  g.attr("lr", o.lr);
  g.attr("embedding_lr", static_cast<double>(s.run.opt.embedding_lr));
  g.attr("seed", app.common().seed);
  g.attr("threads", kernels::threads());
  g.attr("ranks", app.world().size());
  g.attr("final_auc", run.auc);
  g.attr("final_logloss", run.logloss);
  g.attr("auc_delta_vs_fp32", run.auc - ref.auc);
  g.attr("logloss_delta_vs_fp32", run.logloss - ref.logloss);
  g.attr("embedding_bytes", run.bytes);
  g.attr("fp32_embedding_bytes", run.fp32_bytes);
  g.attr("memory_reduction_ratio",
         static_cast<double>(run.fp32_bytes) / static_cast<double>(run.bytes));
  g.attr("step_time_s", run.step_s);
  g.attr("prefetch_time_s", run.prefetch_s);
  g.attr("lookups_per_s", run.lookups_per_s);
  g.attr("row_updates_per_s", run.updates_per_s);
  g.attr("hit_rate", run.hit_rate);
  record_memory(g, run.result);
  record_curves(g, run.result);
  g.attr("parameters", std::vector<std::string>{"format", "policy", "rounding", "cache_fraction"});
  g.attr("metrics", std::vector<std::string>{
                        "final_auc", "final_logloss", "auc_delta_vs_fp32", "logloss_delta_vs_fp32",
                        "embedding_bytes", "memory_reduction_ratio", "step_time_s",
                        "prefetch_time_s", "lookups_per_s", "row_updates_per_s", "hit_rate"});
}

}  // namespace paralab::emb_cache
