// Measure mode: each packing in turn trains the same model from the same
// initial weights on the same stream of documents, on the real 4D engine.
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <map>
#include <numeric>

#include "core/errors.hpp"
#include "core/stats.hpp"
#include "core/timer.hpp"
#include "harness/table.hpp"
#include "harness/training.hpp"
#include "kernels/attention.hpp"
#include "kernels/threads.hpp"
#include "model/data.hpp"
#include "model/model.hpp"
#include "wlb_4d.hpp"

namespace paralab::wlb_4d {

namespace {

using packing::PackingKind;

// Tokens of every document, a pure function of its id: the same document has
// the same text under every packing.
class DocumentText {
 public:
  DocumentText(const Options& o, uint64_t seed)
      : source_(o.vocab, o.order, o.concentration, seed) {}

  // The packed sequence of one micro-batch and its CP shards. An empty
  // micro-batch (the packer had nothing for it) becomes one uncounted token.
  parallel::TrainMicroBatch micro_batch(const packing::MicroBatch& mb, int cp,
                                        packing::CpSharding sharding,
                                        const packing::KernelEfficiency& efficiency) const {
    parallel::TrainMicroBatch out;
    for (const packing::Document& doc : mb.docs) {
      // A piece of a cut document: tokens [offset, offset + length) of its text.
      const model::SampledBatch text =
          source_.sample(1, static_cast<int>(doc.offset + doc.length), doc.id);
      const auto first = static_cast<ptrdiff_t>(doc.offset);
      const auto last = first + static_cast<ptrdiff_t>(doc.length);
      out.tokens.insert(out.tokens.end(), text.tokens.begin() + first, text.tokens.begin() + last);
      out.targets.insert(out.targets.end(), text.targets.begin() + first,
                         text.targets.begin() + last);
    }
    if (out.tokens.empty()) {
      out.tokens = {0};
      out.targets = {-1};
      out.doc_starts = {0};
      out.shards = packing::CpShards(cp);
      out.shards[0] = {{0, 1}};
      return out;
    }
    out.doc_starts = mb.doc_starts();
    out.shards = packing::shard(mb, cp, sharding, &efficiency);
    return out;
  }

 private:
  model::MarkovSource source_;
};

// The attention kernel's throughput by query-chunk length on this machine,
// relative to the best: causal self-attention of q tokens (the diagonal block
// a chunk of a per-document split computes), q = 32 .. context, timed on
// every rank at once; rank 0's curve, broadcast. The adaptive CP sharding
// predicts each split's latency from it.
packing::KernelEfficiency measure_chunk_efficiency(const Options& o, MPI_Comm comm) {
  const model::ModelConfig config = model_config_of(o);
  kernels::AttentionArgs args;
  args.shape.H = config.heads;
  args.shape.H_kv = config.kv_heads;
  args.shape.D = config.head_dim();
  args.mask.causal = true;
  std::vector<double> lengths, rates;
  for (int64_t q = 32; q <= o.context; q *= 2) {
    args.shape.T = args.shape.S = static_cast<int>(q);
    const size_t n = static_cast<size_t>(q) * config.heads * config.head_dim();
    const size_t n_kv = static_cast<size_t>(q) * config.kv_heads * config.head_dim();
    std::vector<float> qv(n, 0.01f), k(n_kv, 0.02f), v(n_kv, 0.03f), out(n);
    std::vector<float> lse(static_cast<size_t>(q) * config.heads);
    // Enough repeats that a short chunk is timed over a millisecond or more.
    const int repeats = static_cast<int>(std::max<int64_t>(3, 65536 / q));
    double best = 1e30;
    for (int trial = 0; trial < 3; ++trial) {
      MPI_Barrier(comm);
      Stopwatch watch;
      for (int r = 0; r < repeats; ++r)
        kernels::cpu::attention_forward(args, qv.data(), k.data(), v.data(), out.data(),
                                        lse.data());
      best = std::min(best, watch.seconds() / repeats);
    }
    lengths.push_back(static_cast<double>(q));
    rates.push_back(kernels::attention_forward_flops(args) / best);
  }
  MPI_Bcast(rates.data(), static_cast<int>(rates.size()), MPI_DOUBLE, 0, comm);
  const double top = *std::max_element(rates.begin(), rates.end());
  packing::KernelEfficiency efficiency;
  for (size_t i = 0; i < rates.size(); ++i)
    efficiency.points.push_back({lengths[i], rates[i] / top});
  return efficiency;
}

// W(d) fitted to this machine: one layer's forward and backward on a single
// document of d tokens, timed on every rank at once (as in training); rank
// 0's fit, broadcast so that every rank packs alike.
packing::WorkloadModel calibrate_workload(const Options& o, MPI_Comm comm) {
  model::ModelConfig config = model_config_of(o);
  config.layers = 1;
  model::Model one_layer(config, model::parse_precision(o.precision), 7);
  const model::MarkovSource source(o.vocab, o.order, o.concentration, 11);
  std::vector<std::pair<int64_t, double>> samples;
  for (int64_t d = std::max<int64_t>(16, o.context / 16); d <= o.context; d *= 2) {
    const model::SampledBatch text = source.sample(1, static_cast<int>(d), 0);
    double best = 1e30;
    for (int repeat = 0; repeat < 3; ++repeat) {
      one_layer.parameters().zero_grads();
      MPI_Barrier(comm);
      Stopwatch watch;
      one_layer.forward_backward(text.view());
      best = std::min(best, watch.seconds());
    }
    samples.push_back({d, best});
  }
  packing::WorkloadModel w = packing::fit_workload(samples);
  double coef[2] = {w.attention_coef, w.linear_coef};
  MPI_Bcast(coef, 2, MPI_DOUBLE, 0, comm);
  // A noisy fit may go negative; a workload must not.
  w.attention_coef = std::max(coef[0], 0.0);
  w.linear_coef = std::max(coef[1], 0.0);
  return w;
}

// The latency of each micro-batch of a step: forward + backward compute,
// slowest over the tp x cp ranks of a stage, summed over the stages.
std::vector<double> micro_batch_latencies(const parallel::Engine4D& engine,
                                          const parallel::StepReport& r, int total, MPI_Comm comm) {
  const int m = static_cast<int>(r.forward_s.size());
  std::vector<double> mine(static_cast<size_t>(total) * engine.grid().pp, 0.0);
  for (int i = 0; i < m; ++i) {
    const int global = engine.dp_rank() * m + i;
    mine[static_cast<size_t>(engine.stage()) * total + global] = r.forward_s[i] + r.backward_s[i];
  }
  max_over_ranks(comm, mine);
  std::vector<double> latency(total, 0.0);
  for (int s = 0; s < engine.grid().pp; ++s)
    for (int i = 0; i < total; ++i) latency[i] += mine[static_cast<size_t>(s) * total + i];
  return latency;
}

// What one packing did, step by step (rank 0 keeps it).
struct PackingRun {
  PackingKind kind = PackingKind::plain;
  packing::CpSharding sharding = packing::CpSharding::per_sequence;
  std::vector<double> loss, step_s, bubble_s, pack_s, imbalance, latency_imbalance;
  std::vector<double> compute_s, tp_comm_s, cp_comm_s, pp_comm_s, dp_comm_s;
  std::vector<int64_t> tokens, micro_batch_tokens_max;
  std::vector<double> flops;  // model FLOPs of the step (Model::train_flops of its micro-batches)
  packing::DelayStats delay;
  int64_t diverged_at = -1;  // first step with a non-finite or exploding loss; -1: none
  std::string divergence;
  double tokens_per_s() const {
    const double t = std::accumulate(step_s.begin(), step_s.end(), 0.0);
    return t > 0
               ? static_cast<double>(std::accumulate(tokens.begin(), tokens.end(), int64_t{0})) / t
               : 0;
  }
  // Model FLOP/s: throughput at equal work. Packings train different
  // documents in a window of steps, and whole documents cost more attention
  // per token than the pieces plain packing cuts, so tokens/s alone favours
  // whoever trained the cheaper tokens.
  double flops_per_s() const {
    const double t = std::accumulate(step_s.begin(), step_s.end(), 0.0);
    return t > 0 ? std::accumulate(flops.begin(), flops.end(), 0.0) / t : 0;
  }
  static double mean(const std::vector<double>& v) {
    return v.empty() ? 0 : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  }
};

// The steps a packer produces from the document stream, one at a time.
class StepSource {
 public:
  StepSource(const Options& o, PackingKind kind, const packing::WorkloadModel& workload,
             uint64_t seed)
      : batches_(packing::make_length_source(spec_of(o), o.context, max_document_of(o), seed),
                 batch_tokens(o)) {
    packing::PackingConfig config;
    config.context = o.context;
    config.max_length = static_cast<int64_t>(static_cast<double>(o.context) * o.max_length_factor);
    config.micro_batches = micro_batches_per_replica(o) * o.dp;
    config.window = o.window;
    config.queues = o.queues;
    config.workload = workload;
    packer_ = packing::make_packer(kind, config);
    push_limit_ = 64 + 4 * o.window;
  }

  // Tokens of one global batch: --load of the step's capacity.
  static int64_t batch_tokens(const Options& o) {
    return static_cast<int64_t>(o.load * micro_batches_per_replica(o) * o.dp *
                                static_cast<double>(o.context));
  }

  static std::string spec_of(const Options& o) {
    return o.lengths.empty() ? packing::paper_like_spec(o.context) : o.lengths;
  }

  packing::Step next() {
    for (int pushes = 0; ready_.empty(); ++pushes) {
      if (pushes == push_limit_)
        throw RuntimeError(
            "packer produced no step after " + std::to_string(pushes) + " global batches",
            Scope::all_ranks);
      for (packing::Step& s : packer_->push(batches_.next())) ready_.push_back(std::move(s));
    }
    packing::Step step = std::move(ready_.front());
    ready_.pop_front();
    return step;
  }

 private:
  packing::GlobalBatches batches_;
  std::unique_ptr<packing::Packer> packer_;
  std::deque<packing::Step> ready_;
  int push_limit_ = 0;
};

Table make_table(const World& world) {
  return Table(world, {{"packing", "", 8},
                       {"step", "", 5},
                       {"loss", "", 8},
                       {"tokens", "", 7},
                       {"step", "(ms)", 9},
                       {"bubble", "(ms)", 9},
                       {"imbal", "W", 7},
                       {"imbal", "lat", 7},
                       {"pack", "(ms)", 7}});
}

double step_flops(const Options& o, std::span<const parallel::TrainMicroBatch> batch) {
  double flops = 0;
  for (const auto& mb : batch) {
    const std::vector<int64_t>* starts = &mb.doc_starts;
    flops += model::train_flops(model_config_of(o),
                                {1, static_cast<int>(mb.tokens.size()), mb.tokens, mb.targets,
                                 std::span<const std::vector<int64_t>>(starts, 1)});
  }
  return flops;
}

// --check: the first step's loss and gradients on the 4D engine against the
// single-rank model on the same micro-batches (every rank computes both).
void check_against_single_rank(const Options& o, uint64_t seed, parallel::Engine4D& engine,
                               std::span<const parallel::TrainMicroBatch> batch) {
  const parallel::StepReport r = engine.forward_backward(batch);
  const std::vector<float> got = engine.gather_full_gradients();
  model::Model reference(model_config_of(o), model::parse_precision(o.precision), seed);
  reference.parameters().zero_grads();
  double loss = 0;
  for (const auto& mb : batch) {
    const std::vector<int64_t>* starts = &mb.doc_starts;
    const model::Batch b{1, static_cast<int>(mb.tokens.size()), mb.tokens, mb.targets,
                         std::span<const std::vector<int64_t>>(starts, 1)};
    const double counted = static_cast<double>(
        std::count_if(mb.targets.begin(), mb.targets.end(), [](int32_t t) { return t >= 0; }));
    loss += reference.forward_backward(b, static_cast<double>(r.counted_tokens)) * counted;
  }
  loss /= static_cast<double>(r.counted_tokens);
  const std::span<const float> want = reference.parameters().grads();
  if (got.size() != want.size())
    throw CheckFailed("--check: the 4D engine gathered " + std::to_string(got.size()) +
                      " gradients, the model has " + std::to_string(want.size()));
  double scale = 0, worst = 0;
  std::string worst_tensor;
  for (const model::Parameter& p : reference.parameters()) {
    for (size_t i = p.offset(); i < p.offset() + p.size(); ++i) {
      scale = std::max(scale, std::abs(double{want[i]}));
      const double diff = std::abs(double{want[i]} - double{got[i]});
      if (diff > worst) worst = diff, worst_tensor = p.name();
    }
  }
  // FP32 sums in another order; BF16 GEMM operands round differently.
  const double tolerance = o.precision == "fp32" ? 1e-4 : 2e-2;
  if (worst > tolerance * scale ||
      std::abs(loss - r.loss) > tolerance * std::max(1.0, std::abs(loss)))
    throw CheckFailed("--check: the 4D step differs from the single-rank step: loss " +
                      std::to_string(r.loss) + " vs " + std::to_string(loss) +
                      ", largest gradient difference " + std::to_string(worst) + " in " +
                      worst_tensor + " (gradients up to " + std::to_string(scale) + ")");
}

PackingRun train_packing(App& app, const Options& o, PackingKind kind,
                         const packing::WorkloadModel& workload,
                         const packing::KernelEfficiency& efficiency, const DocumentText& text,
                         const Table& table) {
  World& world = app.world();
  const uint64_t seed = app.common().seed;
  const bool check = app.common().check;
  parallel::Engine4D engine(world.comm(), model_config_of(o), grid_of(o),
                            model::parse_precision(o.precision), seed);
  StepSource steps(o, kind, workload, seed);
  PackingRun run;
  run.kind = kind;
  run.sharding = sharding_for(o, kind);
  std::vector<packing::Step> done;
  StepWatch watch;
  for (int s = 0; s < steps_of(o, Mode::measure); ++s) {
    packing::Step step = steps.next();
    std::vector<parallel::TrainMicroBatch> batch;
    for (const packing::MicroBatch& mb : step.micro_batches)
      batch.push_back(text.micro_batch(mb, o.cp, run.sharding, efficiency));
    if (s == 0 && check) check_against_single_rank(o, seed, engine, batch);
    const parallel::StepReport r = engine.train_step(batch, o.lr, o.clip);
    const std::vector<double> latency =
        micro_batch_latencies(engine, r, static_cast<int>(batch.size()), world.comm());
    const double step_s = max_over_ranks(world.comm(), r.step_s);
    const double bubble_s = max_over_ranks(world.comm(), r.bubble_s);
    const double compute_s = max_over_ranks(
        world.comm(), std::accumulate(r.forward_s.begin(), r.forward_s.end(), 0.0) +
                          std::accumulate(r.backward_s.begin(), r.backward_s.end(), 0.0));
    run.loss.push_back(r.loss);
    run.step_s.push_back(step_s);
    run.bubble_s.push_back(bubble_s);
    run.compute_s.push_back(compute_s);
    run.tp_comm_s.push_back(max_over_ranks(world.comm(), r.tp_comm_s));
    run.cp_comm_s.push_back(max_over_ranks(world.comm(), r.cp_comm_s));
    run.pp_comm_s.push_back(max_over_ranks(world.comm(), r.pp_comm_s));
    run.dp_comm_s.push_back(max_over_ranks(world.comm(), r.dp_comm_s));
    run.pack_s.push_back(max_over_ranks(world.comm(), step.pack_seconds));
    run.imbalance.push_back(packing::imbalance(step, workload));
    run.latency_imbalance.push_back(packing::latency_imbalance(latency));
    run.tokens.push_back(r.tokens);
    run.flops.push_back(step_flops(o, batch));
    int64_t longest = 0;
    for (const auto& mb : step.micro_batches) longest = std::max(longest, mb.tokens());
    run.micro_batch_tokens_max.push_back(longest);
    table.print_row({to_string(kind), cell("%d", s), cell("%.4f", r.loss),
                     cell("%lld", static_cast<long long>(r.tokens)), cell("%.2f", 1e3 * step_s),
                     cell("%.2f", 1e3 * bubble_s), cell("%.3f", run.imbalance.back()),
                     cell("%.3f", run.latency_imbalance.back()),
                     cell("%.2f", 1e3 * run.pack_s.back())});
    done.push_back(std::move(step));
    // Steps are counted from 1 in the divergence record, as in every training app.
    if (watch.observe(world.comm(), s + 1, r.loss).diverged_now) {
      run.diverged_at = s + 1;
      run.divergence = watch.reason();
      announce_divergence(world.comm(), to_string(kind), "packing", watch, o.allow_divergence);
      if (!o.allow_divergence) break;
    }
  }
  run.delay = packing::delay_stats(done);
  return run;
}

void print_summary(const World& world, const std::vector<PackingRun>& runs) {
  const PackingRun* plain = nullptr;
  const PackingRun* fixed = nullptr;
  for (const auto& r : runs) {
    if (r.kind == PackingKind::plain) plain = &r;
    if (r.kind == PackingKind::fixed) fixed = &r;
  }
  world.printf(
      "\n# summary: throughput = all tokens (or model FLOPs) / all step time (slowest rank); "
      "steps after the first (warm-up) count; imbalance = mean over steps; speedups in "
      "tokens/s and (FLOPs) at equal model work\n");
  Table t(world, {{"packing", "", 8},
                  {"sharding", "", 13},
                  {"tokens/s", "", 10},
                  {"step", "(ms)", 9},
                  {"bubble", "frac", 7},
                  {"imbal", "W", 7},
                  {"imbal", "lat", 7},
                  {"delay", "(iter)", 7},
                  {"GFLOP/s", "", 8},
                  {"vs plain", "", 9},
                  {"vs fixed", "", 9},
                  {"vs plain", "(FLOPs)", 9},
                  {"vs fixed", "(FLOPs)", 9}});
  t.print_header();
  const auto ratio = [](double a, const PackingRun* b, double (PackingRun::*rate)() const) {
    return b ? cell("%.3fx", a / (b->*rate)()) : std::string("-");
  };
  for (const auto& r : runs) {
    const double bubble =
        PackingRun::mean(r.bubble_s) / std::max(PackingRun::mean(r.step_s), 1e-12);
    t.print_row({to_string(r.kind), to_string(r.sharding), cell("%.0f", r.tokens_per_s()),
                 cell("%.2f", 1e3 * PackingRun::mean(r.step_s)), cell("%.3f", bubble),
                 cell("%.3f", PackingRun::mean(r.imbalance)),
                 cell("%.3f", PackingRun::mean(r.latency_imbalance)),
                 cell("%.3f", r.delay.mean_per_token), cell("%.2f", 1e-9 * r.flops_per_s()),
                 ratio(r.tokens_per_s(), plain, &PackingRun::tokens_per_s),
                 ratio(r.tokens_per_s(), fixed, &PackingRun::tokens_per_s),
                 ratio(r.flops_per_s(), plain, &PackingRun::flops_per_s),
                 ratio(r.flops_per_s(), fixed, &PackingRun::flops_per_s)});
  }
}

// The first step is warm-up (buffers, caches): drop it from the summary's
// throughput when there are more.
PackingRun without_first_step(PackingRun r) {
  if (r.step_s.size() < 2) return r;
  r.step_s.erase(r.step_s.begin());
  r.tokens.erase(r.tokens.begin());
  r.flops.erase(r.flops.begin());
  return r;
}

template <class T>
void series(results::Group& g, const std::string& name, const std::vector<T>& values,
            const std::string& units) {
  g.dataset(name, std::span<const T>(values), {values.size()}, units, "step");
}

void record(App& app, const Options& o, const PackingRun& r, const PackingRun* plain,
            const PackingRun* fixed, const packing::WorkloadModel& w) {
  results::Group g = app.add_point();
  g.attr("packing", to_string(r.kind));
  g.attr("cp_sharding", to_string(r.sharding));
  g.attr("grid", grid_of(o).describe());
  g.attr("tp", o.tp), g.attr("cp", o.cp), g.attr("pp", o.pp), g.attr("dp", o.dp);
  g.attr("context", o.context);
  g.attr("micro_batches_per_replica", micro_batches_per_replica(o));
  // -1: the losses stayed finite and below 100x the first (harness/training.hpp).
  g.attr("diverged_at_step", r.diverged_at);
  if (r.diverged_at >= 0) g.attr("divergence", r.divergence);
  g.attr("lengths", StepSource::spec_of(o));
  g.attr("workload_attention_coef", w.attention_coef);
  g.attr("workload_linear_coef", w.linear_coef);
  const PackingRun timed = without_first_step(r);
  g.attr("tokens_per_s", timed.tokens_per_s());
  if (plain) g.attr("speedup_vs_plain", timed.tokens_per_s() / plain->tokens_per_s());
  if (fixed) g.attr("speedup_vs_fixed", timed.tokens_per_s() / fixed->tokens_per_s());
  g.attr("model_flops_per_s", timed.flops_per_s());
  if (plain) g.attr("flops_speedup_vs_plain", timed.flops_per_s() / plain->flops_per_s());
  if (fixed) g.attr("flops_speedup_vs_fixed", timed.flops_per_s() / fixed->flops_per_s());
  g.attr("mean_imbalance", PackingRun::mean(r.imbalance));
  g.attr("mean_latency_imbalance", PackingRun::mean(r.latency_imbalance));
  g.attr("mean_delay_per_token", r.delay.mean_per_token);
  g.attr("max_delay", r.delay.max);
  g.attr("ranks", o.tp * o.cp * o.pp * o.dp);
  g.attr("parameters",
         std::vector<std::string>{"packing", "cp_sharding", "grid", "context", "ranks"});
  std::vector<std::string> metrics = {"tokens_per_s", "model_flops_per_s", "mean_imbalance",
                                      "mean_latency_imbalance", "mean_delay_per_token"};
  if (plain) metrics.insert(metrics.end(), {"speedup_vs_plain", "flops_speedup_vs_plain"});
  if (fixed) metrics.insert(metrics.end(), {"speedup_vs_fixed", "flops_speedup_vs_fixed"});
  g.attr("metrics", metrics);
  series(g, "loss", r.loss, "nats");
  series(g, "step_s", r.step_s, "s");
  series(g, "bubble_s", r.bubble_s, "s");
  series(g, "compute_s", r.compute_s, "s");
  series(g, "tp_comm_s", r.tp_comm_s, "s");
  series(g, "cp_comm_s", r.cp_comm_s, "s");
  series(g, "pp_comm_s", r.pp_comm_s, "s");
  series(g, "dp_comm_s", r.dp_comm_s, "s");
  series(g, "pack_s", r.pack_s, "s");
  series(g, "imbalance", r.imbalance, "1");
  series(g, "latency_imbalance", r.latency_imbalance, "1");
  series(g, "tokens", r.tokens, "tokens");
  series(g, "model_flops", r.flops, "FLOP");
  series(g, "longest_micro_batch", r.micro_batch_tokens_max, "tokens");
}

// What the packers and the adaptive sharding were given, measured here.
void record_calibration(App& app, const packing::WorkloadModel& w,
                        const packing::KernelEfficiency& efficiency) {
  results::Group g = app.add_group("calibration");
  g.attr("workload_attention_coef", w.attention_coef);
  g.attr("workload_linear_coef", w.linear_coef);
  std::vector<double> lengths, values;
  for (const auto& [length, value] : efficiency.points) {
    lengths.push_back(length);
    values.push_back(value);
  }
  g.dataset("chunk_length", std::span<const double>(lengths), {lengths.size()}, "tokens", "chunk");
  g.dataset("chunk_efficiency", std::span<const double>(values), {values.size()}, "1", "chunk");
}

}  // namespace

void run_measure(App& app, const Options& o) {
  World& world = app.world();
  parallel::validate(grid_of(o), world.size());
  kernels::set_threads(o.threads > 0 ? o.threads : kernels::default_threads(world.local_size()));
  const packing::WorkloadModel workload = calibrate_workload(o, world.comm());
  const packing::KernelEfficiency efficiency = measure_chunk_efficiency(o, world.comm());
  const DocumentText text(o, app.common().seed);
  app.open_results("mpi");
  world.printf(
      "# wlb_4d: %s, %d threads per rank; model %d layers, d_model %d, %d heads (%d kv), ffn %d, "
      "%s; context %lld, %d micro-batches per replica, lengths %s\n"
      "# workload W(d) = %.3g d^2 + %.3g d (fitted to one layer's forward + backward here)\n",
      grid_of(o).describe().c_str(), kernels::threads(), o.layers, o.d_model, o.heads, o.kv_heads,
      o.ffn, o.precision.c_str(), static_cast<long long>(o.context), micro_batches_per_replica(o),
      StepSource::spec_of(o).c_str(), workload.attention_coef, workload.linear_coef);
  std::string curve;
  for (const auto& [length, value] : efficiency.points) curve += cell(" %.0f:%.2f", length, value);
  world.printf("# attention efficiency by query-chunk length (measured here, for adaptive CP):%s\n",
               curve.c_str());
  const Table table = make_table(world);
  table.print_header();
  std::vector<PackingRun> runs;
  for (PackingKind kind : packings_of(o))
    runs.push_back(train_packing(app, o, kind, workload, efficiency, text, table));

  std::vector<PackingRun> timed;
  for (const auto& r : runs) timed.push_back(without_first_step(r));
  print_summary(world, timed);
  if (world.is_root()) {
    const PackingRun* plain = nullptr;
    const PackingRun* fixed = nullptr;
    for (const auto& r : timed) {
      if (r.kind == PackingKind::plain) plain = &r;
      if (r.kind == PackingKind::fixed) fixed = &r;
    }
    for (const auto& r : runs) record(app, o, r, plain, fixed, workload);
    record_calibration(app, workload, efficiency);
  }
  app.finish();
  std::vector<std::pair<std::string, std::string>> diverged;
  for (const auto& r : runs)
    if (r.diverged_at >= 0) diverged.emplace_back(to_string(r.kind), r.divergence);
  raise_if_diverged(diverged, o.allow_divergence);
}

}  // namespace paralab::wlb_4d
