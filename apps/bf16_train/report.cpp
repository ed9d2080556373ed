// Limits, the table, the summary and the HDF5 record of the bf16_train app.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "bf16_train.hpp"
#include "core/stats.hpp"
#include "core/timer.hpp"
#include "kernels/gemm.hpp"
#include "kernels/threads.hpp"

namespace paralab::bf16_train {

namespace {

using model::Precision;

std::string policy_name(Precision p) {
  return std::string(model::to_string(p));
}

// Best wall time of `repeats` runs of `work` after one untimed run, every
// rank of `comm` running at once (as they do when training).
template <class Work>
double best_seconds(MPI_Comm comm, int repeats, Work&& work) {
  work();
  double best = 1e30;
  for (int i = 0; i < repeats; ++i) {
    MPI_Barrier(comm);
    Stopwatch watch;
    work();
    best = std::min(best, watch.seconds());
  }
  return best;
}

template <class E>
std::vector<E> filled(size_t n, float value) {
  if constexpr (std::is_same_v<E, bf16>)
    return std::vector<E>(n, float_to_bf16_rne(value));
  else
    return std::vector<E>(n, value);
}

// The GEMMs of one training step on `rows` sequences of `seq` tokens: for
// every linear layer (per layer Wq, Wk, Wv, Wo, W_gate, W_up, W_down, then
// the LM head) the forward y = x W^T, dW += dy^T x and dx = dy W, with the
// shapes and transposes of model/layers.cpp.
std::vector<kernels::GemmShape> step_gemms(const model::ModelConfig& c, int tokens) {
  const int hd = c.head_dim(), d = c.d_model;
  std::vector<std::pair<int, int>> linears;  // (in, out)
  for (int l = 0; l < c.layers; ++l) {
    linears.insert(linears.end(), {{d, c.heads * hd},
                                   {d, c.kv_heads * hd},
                                   {d, c.kv_heads * hd},
                                   {c.heads * hd, d},
                                   {d, c.ffn},
                                   {d, c.ffn},
                                   {c.ffn, d}});
  }
  linears.push_back({d, c.vocab});
  std::vector<kernels::GemmShape> out;
  for (auto [in, o] : linears) {
    kernels::GemmShape forward;
    forward.trans_b = kernels::Trans::yes;
    forward.M = tokens, forward.N = o, forward.K = in;
    kernels::GemmShape dw;
    dw.trans_a = kernels::Trans::yes;
    dw.M = o, dw.N = in, dw.K = tokens;
    dw.beta = 1;
    kernels::GemmShape dx;
    dx.M = tokens, dx.N = in, dx.K = o;
    out.insert(out.end(), {forward, dw, dx});
  }
  return out;
}

// FLOP/s of a list of GEMMs run back to back, in element type E.
template <class E>
double gemm_rate(MPI_Comm comm, const std::vector<kernels::GemmShape>& shapes, int repeats) {
  size_t a = 0, b = 0, c = 0;
  double flops = 0;
  for (const auto& s : shapes) {
    a = std::max(a, size_t(s.M) * s.K);
    b = std::max(b, size_t(s.K) * s.N);
    c = std::max(c, size_t(s.M) * s.N);
    flops += kernels::gemm_flops(s);
  }
  const auto A = filled<E>(a, 0.01f), B = filled<E>(b, 0.02f);
  std::vector<float> C(c, 0.0f);
  const double seconds = best_seconds(comm, repeats, [&] {
    for (const auto& s : shapes) kernels::cpu::gemm(s, A.data(), B.data(), C.data());
  });
  return mean_over_ranks(comm, flops / seconds);
}

std::string fixed(double value, const char* format) {
  return std::isfinite(value) ? cell(format, value) : "N/A";
}

}  // namespace

Limits measure_limits(MPI_Comm comm, const model::ModelConfig& config, int rows, int seq) {
  Limits l;
  l.size = 2048;
  kernels::GemmShape square;
  square.M = square.N = square.K = l.size;
  l.sgemm_tflops = gemm_rate<float>(comm, {square}, 3) / 1e12;
  l.bf16_gemm_tflops = gemm_rate<bf16>(comm, {square}, 3) / 1e12;
  const auto shapes = step_gemms(config, std::max(rows, 1) * seq);
  for (const auto& s : shapes) l.step_gemm_flops += kernels::gemm_flops(s);
  l.step_gemm_f32_tflops = gemm_rate<float>(comm, shapes, 3) / 1e12;
  l.step_gemm_bf16_tflops = gemm_rate<bf16>(comm, shapes, 3) / 1e12;
  return l;
}

Table make_table(const World& world) {
  return Table(world, {{"policy", "", 16},
                       {"step", "", 6},
                       {"train", "loss", 8},
                       {"held-out", "loss", 8},
                       {"lr", "", 9},
                       {"grad", "norm", 8},
                       {"lost", "(%)", 7},
                       {"tokens/s", "", 9}});
}

void print_row(const Table& table, Precision policy, const History& h, size_t i,
               int64_t tokens_per_step) {
  const size_t step = size_t(h.eval_step[i]);
  const size_t first = i > 0 ? size_t(h.eval_step[i - 1]) : 0;
  std::vector<std::string> cells = {policy_name(policy), cell("%zu", step)};
  if (step <= first || step > h.loss.size()) {
    cells.insert(cells.end(), {"-", cell("%.4f", h.heldout_loss[i]), "-", "-", "-", "-"});
  } else {
    auto mean = [&](const std::vector<double>& v) {
      return std::accumulate(v.begin() + first, v.begin() + step, 0.0) / double(step - first);
    };
    const double time =
        std::accumulate(h.step_time_s.begin() + first, h.step_time_s.begin() + step, 0.0);
    cells.insert(
        cells.end(),
        {cell("%.4f", mean(h.loss)), cell("%.4f", h.heldout_loss[i]), cell("%.2e", h.lr[step - 1]),
         cell("%.3f", mean(h.grad_norm)), cell("%.2f", 100 * mean(h.lost_fraction)),
         cell("%.0f", double(tokens_per_step) * double(step - first) / time)});
  }
  table.print_row(cells);
}

void print_summary(const World& world, const std::vector<PolicyResult>& results,
                   const Limits& limits, std::optional<double> floor) {
  const PolicyResult* fp32 = nullptr;
  for (const auto& r : results)
    if (r.policy == Precision::fp32) fp32 = &r;
  world.printf(
      "\n# summary: final train loss (mean of the last 10%% of steps), held-out loss at "
      "the last step%s\n",
      floor ? cell("; entropy floor %.4f nats/token", *floor).c_str() : "");
  std::vector<Column> columns = {
      {"policy", "", 16}, {"train", "loss", 8}, {"held-out", "loss", 8}, {"vs fp32", "(%)", 8}};
  if (floor) columns.push_back({"vs floor", "(nats)", 8});
  columns.insert(columns.end(), {{"lost", "(%)", 7},
                                 {"tokens/s", "", 9},
                                 {"vs fp32", "(x)", 7},
                                 {"step", "GFLOP/s", 8},
                                 {"step/", "SGEMM", 7},
                                 {"GEMMs/", "SGEMM", 7}});
  const Table table(world, columns);
  table.print_header();
  for (const auto& r : results) {
    const double gap =
        fp32 ? 100 * (r.final_heldout_loss - fp32->final_heldout_loss) / fp32->final_heldout_loss
             : NAN;
    std::vector<std::string> cells = {policy_name(r.policy), cell("%.4f", r.final_train_loss),
                                      cell("%.4f", r.final_heldout_loss), fixed(gap, "%+.2f")};
    if (floor) cells.push_back(cell("%+.4f", r.final_heldout_loss - *floor));
    const double gemm =
        r.policy == Precision::fp32 ? limits.step_gemm_f32_tflops : limits.step_gemm_bf16_tflops;
    cells.insert(cells.end(), {cell("%.3f", 100 * r.lost_fraction), cell("%.0f", r.tokens_per_s),
                               fixed(fp32 ? r.tokens_per_s / fp32->tokens_per_s : NAN, "%.2f"),
                               cell("%.1f", r.rank_tflops * 1e3),
                               cell("%.2f", r.rank_tflops / limits.sgemm_tflops),
                               cell("%.2f", gemm / limits.sgemm_tflops)});
    table.print_row(cells);
  }
  world.printf(
      "# per rank: SGEMM %d^3 %.1f GFLOP/s, BF16 GEMM %.1f GFLOP/s; the step's GEMMs alone: "
      "FP32 %.1f, BF16 %.1f GFLOP/s\n",
      limits.size, limits.sgemm_tflops * 1e3, limits.bf16_gemm_tflops * 1e3,
      limits.step_gemm_f32_tflops * 1e3, limits.step_gemm_bf16_tflops * 1e3);
}

void record_limits(App& app, const Limits& l) {
  results::Group g = app.add_group("limits");
  g.attr("gemm_size", l.size);
  g.attr("sgemm_tflops", l.sgemm_tflops);
  g.attr("bf16_gemm_tflops", l.bf16_gemm_tflops);
  g.attr("step_gemm_f32_tflops", l.step_gemm_f32_tflops);
  g.attr("step_gemm_bf16_tflops", l.step_gemm_bf16_tflops);
  g.attr("step_gemm_flops", l.step_gemm_flops);
  g.attr("threads", kernels::threads());
}

void record(App& app, const Options& o, const DataSet& data, const Limits& limits,
            const PolicyResult& r, const PolicyResult* fp32) {
  results::Group g = app.add_point();
  const History& h = r.history;
  g.attr("precision", policy_name(r.policy));
  g.attr("data", o.data);
  g.attr("grad_dtype", o.grad_dtype);
  g.attr("ranks", app.world().size());
  g.attr("threads", kernels::threads());
  g.attr("vocab", data.vocab());
  if (o.data == "markov") {
    g.attr("order", o.order);
    g.attr("concentration", o.concentration);
    g.attr("entropy_floor_nats", *data.floor_nats());
  } else {
    g.attr("corpus", o.corpus);
    g.attr("heldout_fraction", o.heldout_fraction);
    g.attr("train_bytes", uint64_t{data.train_bytes()});
    g.attr("heldout_bytes", uint64_t{data.heldout_bytes()});
  }
  g.attr("layers", o.layers);
  g.attr("d_model", o.d_model);
  g.attr("heads", o.heads);
  g.attr("kv_heads", o.kv_heads);
  g.attr("ffn", o.ffn);
  g.attr("context", o.context);
  g.attr("batch", o.batch);
  g.attr("steps", o.steps);
  g.attr("optimizer", o.optimizer);
  g.attr("lr", o.lr);
  g.attr("warmup", o.warmup);
  g.attr("min_lr", o.min_lr);
  g.attr("weight_decay", o.weight_decay);
  g.attr("clip", o.clip);
  g.attr("eval_batches", o.eval_batches);
  g.attr("seed", app.common().seed);
  g.attr("init_seed", o.init_seed >= 0 ? o.init_seed : int64_t(app.common().seed));
  g.attr("params", r.params);
  g.attr("tokens_per_step", r.tokens_per_step);
  g.attr("flops_per_step", r.flops_per_step);
  g.attr("resumed_from_step", r.resumed_from);
  // -1: the losses stayed finite and below 100x the first (harness/training.hpp).
  g.attr("diverged_at_step", r.diverged_at);
  if (r.diverged_at >= 0) g.attr("divergence", r.divergence);
  g.attr("steps_done", r.steps_done);

  std::vector<std::string> metrics = {
      "final_train_loss",    "final_heldout_loss", "lost_update_ratio",
      "tokens_per_s",        "step_time_s",        "rank_step_tflops",
      "step_to_sgemm_ratio", "step_gemm_tflops",   "step_gemm_to_sgemm_ratio"};
  g.attr("final_train_loss", r.final_train_loss);
  g.attr("final_heldout_loss", r.final_heldout_loss);
  g.attr("lost_update_ratio", r.lost_fraction);
  g.attr("tokens_per_s", r.tokens_per_s);
  g.attr("step_time_s", r.step_time_s);
  g.attr("rank_step_tflops", r.rank_tflops);
  g.attr("step_to_sgemm_ratio", r.rank_tflops / limits.sgemm_tflops);
  const double gemm =
      r.policy == Precision::fp32 ? limits.step_gemm_f32_tflops : limits.step_gemm_bf16_tflops;
  g.attr("step_gemm_tflops", gemm);
  g.attr("step_gemm_to_sgemm_ratio", gemm / limits.sgemm_tflops);
  if (fp32) {
    g.attr("gap_to_fp32_ratio",
           (r.final_heldout_loss - fp32->final_heldout_loss) / fp32->final_heldout_loss);
    g.attr("train_gap_to_fp32_ratio",
           (r.final_train_loss - fp32->final_train_loss) / fp32->final_train_loss);
    g.attr("speedup_vs_fp32_ratio", r.tokens_per_s / fp32->tokens_per_s);
    metrics.insert(metrics.end(),
                   {"gap_to_fp32_ratio", "train_gap_to_fp32_ratio", "speedup_vs_fp32_ratio"});
  }
  if (const auto floor = data.floor_nats()) {
    g.attr("gap_to_floor_nats", r.final_heldout_loss - *floor);
    g.attr("gap_to_floor_ratio", (r.final_heldout_loss - *floor) / *floor);
    metrics.insert(metrics.end(), {"gap_to_floor_nats", "gap_to_floor_ratio"});
  }
  g.attr("parameters", std::vector<std::string>{"precision", "data", "grad_dtype", "ranks"});
  g.attr("metrics", metrics);

  const size_t n = h.loss.size();
  g.dataset("loss", h.loss, {n}, "nats", "step");
  g.dataset("lr", h.lr, {n}, "1", "step");
  g.dataset("grad_norm", h.grad_norm, {n}, "1", "step");
  g.dataset("lost_fraction", h.lost_fraction, {n}, "ratio", "step");
  g.dataset("step_time_s", h.step_time_s, {n}, "s", "step");
  g.dataset("compute_s", h.compute_s, {n}, "s", "step");
  g.dataset("allreduce_s", h.allreduce_s, {n}, "s", "step");
  g.dataset("update_s", h.update_s, {n}, "s", "step");
  std::vector<int64_t> eval_steps(h.eval_step.begin(), h.eval_step.end());
  g.dataset("heldout_step", eval_steps, {eval_steps.size()}, "step", "eval");
  g.dataset("heldout_loss", h.heldout_loss, {h.heldout_loss.size()}, "nats", "eval");
}

}  // namespace paralab::bf16_train
