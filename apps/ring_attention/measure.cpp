// Measure mode: real ranks, the CPU kernels, the MPI communicator; one
// schedule per point, planned before the timed iterations.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/resources.hpp"
#include "core/stats.hpp"
#include "core/timer.hpp"
#include "kernels/attention.hpp"
#include "kernels/bf16.hpp"
#include "kernels/threads.hpp"
#include "options.hpp"
#include "ring/decode.hpp"
#include "ring/schedule.hpp"

namespace paralab::ring_attention {
namespace {

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

float as_float(float x) {
  return x;
}
float as_float(bf16 x) {
  return bf16_to_float(x);
}

// --algo auto's inputs, measured in this run on these ranks: C, the attention
// kernel's rate on one rank's share of a ring step (capped in size), and BW,
// a ring send-receive of one K/V block (capped at 64 MiB); the slowest rank's
// figures, so every rank makes the same choice.
template <class E>
ring::ChoiceInputs measure_rates(comm::Communicator& c, MPI_Comm world,
                                 const ring::RingProblem& p) {
  const int N = c.size();
  ring::ChoiceInputs in{N, double(p.T), double(p.P), p.H, p.H_kv, p.D, double(sizeof(E)), 0, 0};
  kernels::AttentionArgs args;
  const int q = static_cast<int>(std::min<int64_t>(p.T / N, 1024));
  const int k = static_cast<int>(std::min<int64_t>((p.T + p.P) / N, 4096));
  args.shape = {std::max(q, 1), std::max(k, 1), p.H, p.H_kv, p.D};
  args.mask.causal = false;
  const ring::Shard qs = {{0, args.shape.T}}, ks = {{0, args.shape.S}};
  const auto qd = make_rows<E>(qs, size_t(p.H) * p.D, 7, 0);
  const auto kd = make_rows<E>(ks, size_t(p.H_kv) * p.D, 7, 1);
  std::vector<float> o(qd.size()), lse(size_t(args.shape.T) * p.H);
  double best = 1e30;
  for (int i = 0; i < 3; ++i) {
    Stopwatch watch;
    kernels::cpu::attention_forward(args, qd.data(), kd.data(), kd.data(), o.data(), lse.data());
    best = std::min(best, watch.seconds());
  }
  in.flops_per_s = min_over_ranks(world, kernels::attention_forward_flops(args) / best);
  const size_t bytes =
      std::min<size_t>(2 * size_t((p.T + p.P + N - 1) / N) * p.H_kv * p.D * sizeof(E), 64 << 20);
  std::vector<uint8_t> send(bytes, 1), recv(bytes);
  best = 1e30;
  for (int i = 0; N > 1 && i < 3; ++i) {
    c.barrier();
    Stopwatch watch;
    c.start_ring_step(send.data(), recv.data(), bytes, DType::u8).wait();
    best = std::min(best, watch.seconds());
  }
  in.bytes_per_s = N > 1 ? min_over_ranks(world, bytes / best) : 1e30;
  return in;
}

// A point's timings summed over its calls (iterations, decode steps);
// finish() turns them into the point's means over calls and ranks, its
// per-call latency samples and its per-ring-step breakdown per rank.
struct Breakdown {
  std::vector<double> totals;
  double attention = 0, merge = 0, wait = 0, all2all = 0, setup = 0;
  std::vector<ring::StepTiming> steps;  // per ring step, summed over calls

  void add(const ring::RingTiming& t) {
    const ring::StepTiming sum = t.summed();
    totals.push_back(t.total);
    attention += sum.attention;
    merge += sum.merge + t.final_merge;
    wait += sum.comm_wait;
    all2all += t.all2all;
    setup += t.setup;
    steps.resize(std::max(steps.size(), t.steps.size()));
    for (size_t k = 0; k < t.steps.size(); ++k) {
      steps[k].attention += t.steps[k].attention;
      steps[k].merge += t.steps[k].merge;
      steps[k].comm_wait += t.steps[k].comm_wait;
    }
  }

  void finish(MPI_Comm world, PointResult& pt) const {
    const double calls = double(totals.size());
    pt.times = gather_samples(world, totals);
    pt.attention_s = mean_over_ranks(world, attention / calls);
    pt.merge_s = mean_over_ranks(world, merge / calls);
    pt.comm_wait_s = mean_over_ranks(world, wait / calls);
    pt.all2all_s = mean_over_ranks(world, all2all / calls);
    pt.setup_s = mean_over_ranks(world, setup / calls);
    pt.step_attention_s = gather_steps(
        world, [](const auto& s) { return s.attention; }, calls);
    pt.step_merge_s = gather_steps(
        world, [](const auto& s) { return s.merge; }, calls);
    pt.step_comm_wait_s = gather_steps(
        world, [](const auto& s) { return s.comm_wait; }, calls);
    pt.ring_steps = steps.size();
  }

  // One field per step, averaged over calls, from every rank: [rank][step] on rank 0.
  template <class Field>
  std::vector<double> gather_steps(MPI_Comm world, Field field, double calls) const {
    std::vector<double> mine;
    for (const auto& s : steps) mine.push_back(field(s) / calls);
    int ranks = 1, rank = 0;
    MPI_Comm_size(world, &ranks);
    MPI_Comm_rank(world, &rank);
    std::vector<double> all(rank == 0 ? mine.size() * ranks : 0);
    MPI_Gather(mine.data(), int(mine.size()), MPI_DOUBLE, all.data(), int(mine.size()), MPI_DOUBLE,
               0, world);
    return all;
  }
};

template <class E>
ring::RingOutput measure(App& app, comm::Communicator& c, const ring::RingProblem& p,
                         const ring::RankLayout& layout, const ring::RingSchedule& plan,
                         const Inputs<E>& in, PointResult& pt) {
  const auto& common = app.common();
  ring::RingWorkspace ws;  // buffers kept across iterations, as a serving loop keeps them
  for (int i = 0; i < common.warmup; ++i) ring::run_ring(c, p, layout, plan, in.view(), &ws);
  Breakdown breakdown;
  ring::RingOutput last;
  for (int i = 0; i < common.iters; ++i) {
    c.barrier();
    last = ring::run_ring(c, p, layout, plan, in.view(), &ws);
    breakdown.add(last.timing);
  }
  breakdown.finish(app.world().comm(), pt);
  return last;
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

// Largest |difference| relative to the largest |reference| value, or to
// `scale` when that is larger.
double relative_error(const std::vector<float>& got, const std::vector<float>& want,
                      double scale = 0) {
  double diff = 0;
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
    // O is a convex combination of V's rows: its rounding error scales with
    // |V|, not with |O|, which cancels toward 0 as the keys grow (random V).
    double v_scale = 0;
    for (E x : v) v_scale = std::max(v_scale, std::fabs(double(as_float(x))));
    error = std::max(relative_error(o, want_o, v_scale), relative_error(lse, want_lse));
  }
  MPI_Bcast(&error, 1, MPI_DOUBLE, 0, app.world().comm());
  return error;
}

// A point's problem and algorithm; --algo auto measures C and BW here and
// applies the rule (every rank gets the same choice).
template <class E>
PointResult start_point(App& app, comm::Communicator& c, AlgoRequest request,
                        const ring::RingProblem& p) {
  PointResult pt;
  pt.problem = p;
  pt.ranks = c.size();
  pt.algo = algorithm_of(request);
  if (request == AlgoRequest::automatic) {
    pt.chosen = true;
    pt.choice = ring::choose_algorithm(measure_rates<E>(c, app.world().comm(), p));
    pt.algo = pt.choice.algorithm;
  }
  return pt;
}

template <class E>
PointResult run_point(App& app, comm::Communicator& c, AlgoRequest request,
                      const ring::RingProblem& p) {
  PointResult pt = start_point<E>(app, c, request, p);
  const ring::RankLayout layout = ring::layout_of(p, c.size());
  const ring::RingSchedule plan = ring::plan_ring(pt.algo, p, layout);
  const Inputs<E> in = make_inputs<E>(p, layout, c.rank(), app.common().seed);
  const ring::RingOutput last = measure(app, c, p, layout, plan, in, pt);
  if (app.common().check) pt.error = check<E>(app, c, p, layout, last);
  if (app.world().is_root()) {
    pt.latency_s = summarize(pt.times.max_over_ranks());
    const double flops = kernels::attention_forward_flops(single_rank_args(p));
    pt.tflops_per_rank = flops / c.size() / pt.latency_s.median / 1e12;
  }
  return pt;
}

// Decode: every step is its own ring problem (decode.hpp); each step of each
// iteration is one latency sample. Inputs are remade per step, untimed.
template <class E>
double check_decode(const ring::RingProblem& p, const ring::DecodeBatch& d, int step,
                    const ring::Shard& my_queries, const ring::RingOutput& out, uint64_t seed) {
  const size_t q_row = size_t(p.H) * p.D, kv_row = size_t(p.H_kv) * p.D;
  double error = 0;
  size_t row = 0;
  for (const ring::Piece& query : my_queries) {
    const int64_t first = query.start - d.context - step;  // the request's position 0
    const ring::Shard keys = {{first, query.start - first + 1}};
    const auto q = make_rows<E>({query}, q_row, seed, 0);
    const auto k = make_rows<E>(keys, kv_row, seed, 1);
    const auto v = make_rows<E>(keys, kv_row, seed, 2);
    kernels::AttentionArgs args;
    args.shape = {1, int(keys[0].length), p.H, p.H_kv, p.D};
    args.mask = {true, query.start, first, {}};
    std::vector<float> o(q_row), lse(p.H);
    kernels::cpu::attention_forward(args, q.data(), k.data(), v.data(), o.data(), lse.data());
    double v_scale = 0;
    for (E x : v) v_scale = std::max(v_scale, std::fabs(double(as_float(x))));
    const std::vector<float> got_o(out.o.begin() + row * q_row, out.o.begin() + (row + 1) * q_row);
    const std::vector<float> got_lse(out.lse.begin() + row * p.H,
                                     out.lse.begin() + (row + 1) * p.H);
    error = std::max({error, relative_error(got_o, o, v_scale), relative_error(got_lse, lse)});
    ++row;
  }
  return error;
}

template <class E>
PointResult run_decode_point(App& app, comm::Communicator& c, AlgoRequest request,
                             const ring::RingProblem& p, const ring::DecodeBatch& d) {
  const auto& common = app.common();
  PointResult pt = start_point<E>(app, c, request, p);
  Breakdown breakdown;
  double flops = 0, error = 0;
  ring::RingWorkspace ws;
  for (int i = -common.warmup; i < common.iters; ++i)
    for (int s = 0; s < d.steps; ++s) {
      const ring::RankLayout layout = ring::decode_layout(d, s, c.size());
      const ring::RingSchedule plan = ring::plan_ring(pt.algo, p, layout);
      const Inputs<E> in = make_inputs<E>(p, layout, c.rank(), common.seed);
      c.barrier();
      const ring::RingOutput out = ring::run_ring(c, p, layout, plan, in.view(), &ws);
      if (i < 0) continue;  // warm-up
      breakdown.add(out.timing);
      if (i == 0)
        for (int r = 0; r < c.size(); ++r) flops += plan.flops(r);
      if (i == 0 && common.check)
        error =
            std::max(error, check_decode<E>(p, d, s, layout.queries[c.rank()], out, common.seed));
    }
  MPI_Comm world = app.world().comm();
  breakdown.finish(world, pt);
  MPI_Allreduce(MPI_IN_PLACE, &error, 1, MPI_DOUBLE, MPI_MAX, world);
  if (common.check) pt.error = error;
  if (app.world().is_root()) {
    pt.latency_s = summarize(pt.times.max_over_ranks());
    pt.tflops_per_rank = flops / d.steps / c.size() / pt.latency_s.median / 1e12;
  }
  return pt;
}

// What one rank holds at the largest point: its shard of Q, K, V and two more K/V shards in
// flight (the ring's buffers; all-gather's full K/V is bounded by the reference's), its output
// and scratch in FP32; rank 0 also the whole problem for the exactness check (Q, K, V, the
// gathered output and the reference's).
uint64_t bytes_needed(const std::vector<ring::RingProblem>& problems, const Options& o,
                      const World& world) {
  const double elem = o.dtype == "bf16" ? 2 : 4, n = world.size();
  double most = 0;
  for (const auto& p : problems) {
    const double q = double(p.T) * p.H * p.D, kv = double(p.P + p.T) * p.H_kv * p.D;
    double bytes = elem * (q + 3 * 2 * kv) / n + 4 * 2 * q / n;
    if (world.is_root()) bytes += elem * (q + 2 * kv) + 4 * 2 * (q + double(p.T) * p.H);
    most = std::max(most, bytes);
  }
  return most >= 1.8e19 ? UINT64_MAX : static_cast<uint64_t>(most);
}

}  // namespace

void run_measure(App& app, const Options& o) {
  World& world = app.world();
  if (app.common().device != Device::cpu)
    throw UsageError("ring_attention measures on the CPU kernels for now (--device cpu)");
  auto c = comm::make_communicator(app.common().device, world.comm());
  kernels::set_threads(o.threads > 0 ? o.threads : kernels::default_threads(world.local_size()));
  const ring::DecodeBatch batch{o.batch, static_cast<int64_t>(o.cached), o.decode_steps};
  std::vector<ring::RingProblem> problems;
  if (decoding(o)) {
    problems.push_back(ring::decode_problem(problem_for(o, 0), batch));
    ring::validate_decode(problems.back(), batch, world.size());
  } else {
    for (uint64_t T : o.tokens) {
      problems.push_back(problem_for(o, static_cast<int64_t>(T)));
      ring::validate(problems.back(), world.size());
    }
  }
  check_memory(world, bytes_needed(problems, o, world), "ring attention",
               "lower --tokens, --cached, --heads or --head-dim, or use more nodes");
  app.open_results(c->backend());
  if (decoding(o))
    world.printf("# decode: batch %d, context %lld, %d steps; each row is one step\n", o.batch,
                 (long long)o.cached, o.decode_steps);
  world.printf(
      "# ring_attention: measure, %d ranks, %d threads each, H %d, H_kv %d, D %d, %s, %s "
      "sharding, %d document(s)\n",
      world.size(), kernels::threads(), o.heads, o.kv_heads, o.head_dim, o.dtype.c_str(),
      o.sharding.c_str(), o.documents);
  const Table table = make_table(world, false, decoding(o));
  table.print_header();
  double worst = 0;
  for (const auto& p : problems)
    for (AlgoRequest request : algo_requests(o)) {
      const bool bf = o.dtype == "bf16";
      const PointResult pt =
          decoding(o)
              ? (bf ? run_decode_point<bf16>(app, *c, request, p, batch)
                    : run_decode_point<float>(app, *c, request, p, batch))
              : (bf ? run_point<bf16>(app, *c, request, p) : run_point<float>(app, *c, request, p));
      worst = std::max(worst, pt.error);
      if (!world.is_root()) continue;
      record(app, o, pt);
      print_row(table, pt, false);
      if (pt.chosen)
        world.printf("#   auto chose %s: %s\n", ring::algorithm_name(pt.algo).data(),
                     pt.choice.reason.c_str());
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

}  // namespace paralab::ring_attention
