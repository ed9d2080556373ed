// ring_attention: context-parallel long-context attention (pass-KV, pass-Q,
// all-gather; full and persistent-KV prefill) across the ranks, measured for
// real on the CPU kernels, with a per-step breakdown and an exactness check
// against single-rank attention. Yang et al., MLSys'25.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/options.hpp"
#include "core/stats.hpp"
#include "harness/app.hpp"
#include "harness/table.hpp"
#include "kernels/attention.hpp"
#include "kernels/bf16.hpp"
#include "kernels/threads.hpp"
#include "ring/ring_attention.hpp"

namespace paralab::ring_attention {
namespace {

struct Options {
  std::vector<std::string> algos = {"pass-kv", "pass-q"};
  std::vector<uint64_t> tokens = {4096};
  uint64_t cached = 0;
  int heads = 16;
  int kv_heads = 2;
  int head_dim = 128;
  int documents = 1;
  std::string sharding = "load-balanced";
  std::string dtype = "f32";
  int threads = 0;
};

void add_options(CLI::App& cli, Options& o) {
  cli.add_option("--algo", o.algos, "Algorithms, a comma list: pass-kv, pass-q, all-gather; or all")
      ->delimiter(',')
      ->check(CLI::IsMember({"pass-kv", "pass-q", "all-gather", "all"}))
      ->capture_default_str();
  add_size_option(cli, "-T,--tokens", o.tokens, "New (query) tokens per request, a sweep (4k,8k)");
  add_size_option(cli, "-P,--cached", o.cached,
                  "Tokens already in the KV cache before them (persistent-KV prefill)");
  cli.add_option("--heads", o.heads, "Query heads")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cli.add_option("--kv-heads", o.kv_heads, "Key/value heads (grouped-query attention)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cli.add_option("--head-dim", o.head_dim, "Head dimension")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cli.add_option("--documents", o.documents,
                 "Equal documents fused into the sequence (document mask with causal); 1 = one")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cli.add_option("--sharding", o.sharding,
                 "load-balanced (2N chunks, rank i holds i and 2N-1-i) or contiguous")
      ->check(CLI::IsMember({"load-balanced", "contiguous"}))
      ->capture_default_str();
  cli.add_option("-d,--dtype", o.dtype, "Input type of Q, K, V: f32 or bf16 (FP32 accumulation)")
      ->check(CLI::IsMember({"f32", "bf16"}))
      ->capture_default_str();
  cli.add_option("--threads", o.threads,
                 "Kernel threads per rank; default: this host's cores / its ranks");
}

std::vector<ring::Algorithm> algorithms(const Options& o) {
  std::vector<ring::Algorithm> out;
  for (const auto& name : o.algos) {
    if (name == "pass-kv" || name == "all") out.push_back(ring::Algorithm::pass_kv);
    if (name == "pass-q" || name == "all") out.push_back(ring::Algorithm::pass_q);
    if (name == "all-gather" || name == "all") out.push_back(ring::Algorithm::all_gather);
  }
  return out;
}

ring::RingProblem problem_for(const Options& o, int64_t T) {
  ring::RingProblem p;
  p.T = T;
  p.P = static_cast<int64_t>(o.cached);
  p.H = o.heads;
  p.H_kv = o.kv_heads;
  p.D = o.head_dim;
  p.causal = true;
  p.sharding =
      o.sharding == "contiguous" ? ring::Sharding::contiguous : ring::Sharding::load_balanced;
  // Documents split the whole sequence (cache and new tokens) evenly.
  const int64_t total = p.P + p.T;
  for (int d = 1; d < o.documents; ++d) p.doc_starts.push_back(total * d / o.documents);
  return p;
}

// Input rows are a function of (seed, tensor, position) alone, so every rank
// makes its own rows and rank 0 can remake the whole sequence for --check.
template <class E>
std::vector<E> make_rows(const ring::Shard& shard, size_t row_elems, uint64_t seed, int tensor) {
  std::vector<E> rows;
  rows.reserve(static_cast<size_t>(ring::shard_tokens(shard)) * row_elems);
  const uint64_t stream = seed * 4 + static_cast<uint64_t>(tensor);
  for (const auto& piece : shard)
    for (int64_t pos = piece.start; pos < piece.end(); ++pos)
      for (size_t e = 0; e < row_elems; ++e) {
        const uint32_t bits =
            kernels::stochastic_bits(stream, static_cast<uint64_t>(pos) * row_elems + e);
        const float value = static_cast<float>(bits) * (2.0f / 4294967296.0f) - 1.0f;
        if constexpr (std::is_same_v<E, bf16>)
          rows.push_back(float_to_bf16_rne(value));
        else
          rows.push_back(value);
      }
  return rows;
}

template <class E>
struct Inputs {
  std::vector<E> q, k, v;
  ring::LocalInputs<E> view() const { return {q, k, v}; }
};

template <class E>
Inputs<E> make_inputs(const ring::RingProblem& p, const ring::RankLayout& layout, int rank,
                      uint64_t seed) {
  const size_t q_row = static_cast<size_t>(p.H) * p.D, kv_row = static_cast<size_t>(p.H_kv) * p.D;
  return {make_rows<E>(layout.queries[rank], q_row, seed, 0),
          make_rows<E>(layout.kv[rank], kv_row, seed, 1),
          make_rows<E>(layout.kv[rank], kv_row, seed, 2)};
}

// One sweep point: the per-iteration wall time of every rank and the mean
// breakdown over iterations and ranks.
struct Measured {
  TimeMatrix total;  // [iteration][rank], seconds
  double attention_s = 0, merge_s = 0, comm_wait_s = 0, all2all_s = 0;
  ring::RingOutput last;  // kept for --check
};

double mean_over_ranks(MPI_Comm comm, double local) {
  int n = 1;
  MPI_Comm_size(comm, &n);
  MPI_Allreduce(MPI_IN_PLACE, &local, 1, MPI_DOUBLE, MPI_SUM, comm);
  return local / n;
}

template <class E>
Measured measure(App& app, comm::Communicator& c, ring::Algorithm algo, const ring::RingProblem& p,
                 const Inputs<E>& in) {
  const auto& common = app.common();
  for (int i = 0; i < common.warmup; ++i) ring::ring_attention(algo, c, p, in.view());
  Measured m;
  std::vector<double> totals;
  double attention = 0, merge = 0, wait = 0, all2all = 0;
  for (int i = 0; i < common.iters; ++i) {
    c.barrier();
    m.last = ring::ring_attention(algo, c, p, in.view());
    const ring::StepTiming steps = m.last.timing.summed();
    totals.push_back(m.last.timing.total);
    attention += steps.attention;
    merge += steps.merge + m.last.timing.final_merge;
    wait += steps.comm_wait;
    all2all += m.last.timing.all2all;
  }
  MPI_Comm world = app.world().comm();
  m.total = gather_samples(world, totals);
  m.attention_s = mean_over_ranks(world, attention / common.iters);
  m.merge_s = mean_over_ranks(world, merge / common.iters);
  m.comm_wait_s = mean_over_ranks(world, wait / common.iters);
  m.all2all_s = mean_over_ranks(world, all2all / common.iters);
  return m;
}

kernels::AttentionArgs single_rank_args(const ring::RingProblem& p) {
  kernels::AttentionArgs a;
  a.shape = {static_cast<int>(p.T), static_cast<int>(p.P + p.T), p.H, p.H_kv, p.D};
  a.mask.causal = p.causal;
  a.mask.q_offset = p.P;
  a.mask.doc_starts = p.doc_starts;
  a.scale = p.scale;
  return a;
}

// Largest |difference| relative to the largest |reference| value.
double relative_error(const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::isinf(want[i]) && got[i] == want[i]) continue;  // masked rows: -inf LSE
    diff = std::max(diff, std::fabs(double(got[i]) - want[i]));
    scale = std::max(scale, std::fabs(double(want[i])));
  }
  return scale > 0 ? diff / scale : diff;
}

// Gathers O and LSE and compares them on rank 0 with single-rank attention
// over the whole sequence; returns the larger relative error (on every rank).
template <class E>
double check(App& app, comm::Communicator& c, const ring::RingProblem& p,
             const ring::RankLayout& layout, const ring::RingOutput& out) {
  const size_t row = static_cast<size_t>(p.H) * p.D;
  const auto o = ring::gather_rows(c, out.o, row, layout.queries, p.P, p.T);
  const auto lse =
      ring::gather_rows(c, out.lse, static_cast<size_t>(p.H), layout.queries, p.P, p.T);
  double error = 0;
  if (app.world().is_root()) {
    const ring::Shard queries = {{p.P, p.T}}, keys = {{0, p.P + p.T}};
    const size_t kv_row = static_cast<size_t>(p.H_kv) * p.D;
    const auto q = make_rows<E>(queries, row, app.common().seed, 0);
    const auto k = make_rows<E>(keys, kv_row, app.common().seed, 1);
    const auto v = make_rows<E>(keys, kv_row, app.common().seed, 2);
    std::vector<float> want_o(o.size()), want_lse(lse.size());
    kernels::cpu::attention_forward(single_rank_args(p), q.data(), k.data(), v.data(),
                                    want_o.data(), want_lse.data());
    error = std::max(relative_error(o, want_o), relative_error(lse, want_lse));
  }
  MPI_Bcast(&error, 1, MPI_DOUBLE, 0, app.world().comm());
  return error;
}

Table make_table(const World& world) {
  return Table(world, {{"algo", "", 10},
                       {"T", "", 8},
                       {"P", "", 8},
                       {"ranks", "", 5},
                       {"time", "(ms)", 10},
                       {"min", "(ms)", 10},
                       {"attn", "(ms)", 9},
                       {"merge", "(ms)", 8},
                       {"wait", "(ms)", 8},
                       {"a2a", "(ms)", 8},
                       {"TFLOP/s", "/rank", 8},
                       {"error", "", 9}});
}

struct Point {
  ring::Algorithm algo;
  ring::RingProblem problem;
  Measured measured;
  Summary latency_s;
  double tflops_per_rank = 0;
  double error = -1;  // -1: not checked
};

void record(App& app, const Options& o, const Point& pt) {
  results::Group g = app.add_point();
  const auto& p = pt.problem;
  g.attr("parameters", std::vector<std::string>{"algo", "T", "P", "ranks", "dtype", "sharding"});
  g.attr("metrics", std::vector<std::string>{"time_ms_median", "time_ms_min", "time_ms_max",
                                             "attention_ms", "merge_ms", "comm_wait_ms",
                                             "all2all_ms", "tflops_per_rank", "error"});
  g.attr("algo", std::string(ring::algorithm_name(pt.algo)));
  g.attr("T", p.T);
  g.attr("P", p.P);
  g.attr("ranks", pt.measured.total.ranks);
  g.attr("dtype", o.dtype);
  g.attr("sharding", std::string(ring::sharding_name(p.sharding)));
  g.attr("heads", p.H);
  g.attr("kv_heads", p.H_kv);
  g.attr("head_dim", p.D);
  g.attr("documents", o.documents);
  g.attr("kv_cache_miss_ratio", double(p.T) / double(p.T + p.P));
  g.attr("time_ms_median", pt.latency_s.median * 1e3);
  g.attr("time_ms_min", pt.latency_s.min * 1e3);
  g.attr("time_ms_max", pt.latency_s.max * 1e3);
  g.attr("attention_ms", pt.measured.attention_s * 1e3);
  g.attr("merge_ms", pt.measured.merge_s * 1e3);
  g.attr("comm_wait_ms", pt.measured.comm_wait_s * 1e3);
  g.attr("all2all_ms", pt.measured.all2all_s * 1e3);
  g.attr("tflops_per_rank", pt.tflops_per_rank);
  g.attr("error", pt.error);
  const TimeMatrix& t = pt.measured.total;
  g.dataset("time_s", t.values, {t.iterations, t.ranks}, "s", "iteration,rank");
}

template <class E>
Point run_point(App& app, comm::Communicator& c, ring::Algorithm algo, const ring::RingProblem& p) {
  const ring::RankLayout layout = ring::layout_of(p, c.size());
  const Inputs<E> in = make_inputs<E>(p, layout, c.rank(), app.common().seed);
  Point pt{algo, p, measure(app, c, algo, p, in), {}, 0, -1};
  if (app.common().check) pt.error = check<E>(app, c, p, layout, pt.measured.last);
  if (app.world().is_root()) {
    pt.latency_s = summarize(pt.measured.total.max_over_ranks());
    const double flops = kernels::attention_forward_flops(single_rank_args(p));
    pt.tflops_per_rank = flops / c.size() / pt.latency_s.median / 1e12;
  }
  return pt;
}

void print_row(const Table& table, const Point& pt) {
  const Measured& m = pt.measured;
  table.print_row({std::string(ring::algorithm_name(pt.algo)),
                   cell("%lld", (long long)pt.problem.T), cell("%lld", (long long)pt.problem.P),
                   cell("%zu", m.total.ranks), cell("%.2f", pt.latency_s.median * 1e3),
                   cell("%.2f", pt.latency_s.min * 1e3), cell("%.2f", m.attention_s * 1e3),
                   cell("%.2f", m.merge_s * 1e3), cell("%.2f", m.comm_wait_s * 1e3),
                   cell("%.2f", m.all2all_s * 1e3), cell("%.3f", pt.tflops_per_rank),
                   pt.error < 0 ? "N/A" : cell("%.1e", pt.error)});
}

void run(App& app) {
  Options o;
  add_options(app.cli(), o);
  app.parse();
  World& world = app.world();
  if (app.common().device != Device::cpu)
    throw UsageError("ring_attention measures on the CPU kernels for now (--device cpu)");
  auto c = comm::make_communicator(app.common().device, world.comm());
  kernels::set_threads(o.threads > 0 ? o.threads : kernels::default_threads(world.local_size()));
  std::vector<ring::RingProblem> problems;
  for (uint64_t T : o.tokens) {
    problems.push_back(problem_for(o, static_cast<int64_t>(T)));
    ring::validate(problems.back(), world.size());
  }
  app.open_results(c->backend());
  world.printf(
      "# ring_attention: %d ranks, %d threads each, H %d, H_kv %d, D %d, %s, %s sharding, "
      "%d document(s)\n",
      world.size(), kernels::threads(), o.heads, o.kv_heads, o.head_dim, o.dtype.c_str(),
      o.sharding.c_str(), o.documents);
  const Table table = make_table(world);
  table.print_header();
  double worst = 0;
  for (const auto& p : problems)
    for (ring::Algorithm algo : algorithms(o)) {
      const Point pt = o.dtype == "bf16" ? run_point<bf16>(app, *c, algo, p)
                                         : run_point<float>(app, *c, algo, p);
      worst = std::max(worst, pt.error);
      if (!world.is_root()) continue;
      record(app, o, pt);
      print_row(table, pt);
    }
  app.finish();
  if (app.common().check) {
    // FP32: rounding only; BF16: the kernel rounds P per key block, and the
    // blocks differ between the split and the whole sequence.
    const double tolerance = o.dtype == "bf16" ? 1.0 / 128 : 1e-5;
    world.printf("# check: largest relative error %.2e (tolerance %.0e): %s\n", worst, tolerance,
                 worst <= tolerance ? "passed" : "FAILED");
    if (worst > tolerance) throw CheckFailed("ring attention differs from single-rank attention");
  }
}

}  // namespace
}  // namespace paralab::ring_attention

int main(int argc, char** argv) {
  return paralab::run_app(argc, argv,
                          {.name = "ring_attention",
                           .description = "paralab ring_attention: context-parallel long-context "
                                          "attention (pass-KV, pass-Q, all-gather), measured"},
                          paralab::ring_attention::run);
}
