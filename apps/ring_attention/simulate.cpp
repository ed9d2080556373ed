// Simulate mode: the same schedules played on lib/sim with a hardware
// profile's cost models, at context-parallel sizes this machine cannot run;
// with --model, the whole prefill of a transformer (attention and linear
// layers of every layer, TP inside a node, CP across nodes). Rank 0 computes;
// nothing is measured.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "options.hpp"
#include "ring/decode.hpp"
#include "ring/schedule.hpp"
#include "ring/simulate.hpp"
#include "sim/hardware.hpp"
#include "sim/transformer.hpp"

namespace paralab::ring_attention {
namespace {

struct SimSetup {
  sim::HardwareProfile hardware;
  bool whole_model = false;
  sim::TransformerShape model;
  int tp = 1;
  sim::Precision precision = sim::Precision::fp32;
  int element_bytes = 4;
  int partial_element_bytes = 4;
  bool decoding = false;
  ring::DecodeBatch decode;
};

SimSetup setup_from(const Options& o) {
  SimSetup s;
  s.hardware = sim::resolve_profile(o.profile);
  s.whole_model = o.model != "none";
  s.tp = o.tp > 0 ? o.tp : (s.whole_model ? 8 : 1);
  s.precision = o.dtype == "bf16" ? sim::Precision::bf16 : sim::Precision::fp32;
  s.element_bytes = o.dtype == "bf16" ? 2 : 4;
  s.partial_element_bytes = o.partial_dtype == "bf16" ? 2 : 4;
  if (s.whole_model) s.model = sim::find_transformer(o.model);
  s.decoding = decoding(o);
  s.decode = {o.batch, static_cast<int64_t>(o.cached), o.decode_steps};
  return s;
}

// The attention one GPU runs: the problem's heads split over the TP group.
ring::RingProblem per_gpu_problem(const Options& o, const SimSetup& s, int64_t T) {
  ring::RingProblem p = problem_for(o, T);
  if (s.whole_model) {
    p.H = sim::heads_per_tp_rank(s.model, s.tp);
    p.H_kv = sim::kv_heads_per_tp_rank(s.model, s.tp);
    p.D = s.model.head_dim;
  } else if (p.H % s.tp != 0 || (p.H_kv % s.tp != 0 && s.tp % p.H_kv != 0)) {
    throw UsageError("--tp " + std::to_string(s.tp) + " does not split " + std::to_string(p.H) +
                     " query and " + std::to_string(p.H_kv) + " KV heads");
  } else {
    p.H /= s.tp;
    p.H_kv = p.H_kv >= s.tp ? p.H_kv / s.tp : 1;
  }
  return s.decoding ? ring::decode_problem(p, s.decode) : p;
}

void validate(const SimSetup& s, const ring::RingProblem& p, int N) {
  if (s.decoding)
    ring::validate_decode(p, s.decode, N);
  else
    ring::validate(p, N);
}

ring::SimulationSetup ring_setup(const SimSetup& s) {
  return {s.hardware, s.precision, s.element_bytes, s.tp, s.partial_element_bytes};
}

ring::AlgorithmChoice choose(const SimSetup& s, const ring::RingProblem& p, int N) {
  const sim::ComputeModel model = sim::compute_model(s.hardware, s.precision);
  const sim::LinkModel& link = s.hardware.link_between(0, (N - 1) * s.tp);
  ring::ChoiceInputs in{N, double(p.T), double(p.P), p.H, p.H_kv, p.D};
  in.element_bytes = s.element_bytes;
  in.partial_element_bytes = s.partial_element_bytes;
  in.flops_per_s = model.attention_flops_per_s;
  in.bytes_per_s = N > 1 ? link.bandwidth_bytes_per_s() : 1e30;
  return ring::choose_algorithm(in);
}

// The per-step breakdown of a prefill, [rank][step] as measure mode records it.
void add_steps(const ring::SimulatedRing& sim, PointResult& pt) {
  pt.ring_steps = sim.ranks.front().step_attention_s.size();
  for (const ring::SimulatedRank& r : sim.ranks) {
    auto append = [](std::vector<double>& to, const std::vector<double>& from) {
      to.insert(to.end(), from.begin(), from.end());
    };
    append(pt.step_attention_s, r.step_attention_s);
    append(pt.step_merge_s, r.step_merge_s);
    append(pt.step_comm_wait_s, r.step_wait_s);
    append(pt.step_transfer_s, r.step_transfer_s);
  }
}

// One layer's attention, simulated; breakdown averaged over ranks.
PointResult simulate_attention(const SimSetup& s, ring::Algorithm algo, const ring::RingProblem& p,
                               int N) {
  // Prefill is one layout; decode one per step (tokens move round robin).
  std::vector<ring::RankLayout> layouts;
  if (s.decoding)
    for (int step = 0; step < s.decode.steps; ++step)
      layouts.push_back(ring::decode_layout(s.decode, step, N));
  else
    layouts.push_back(ring::layout_of(p, N));
  PointResult pt;
  pt.algo = algo;
  pt.problem = p;
  pt.decode = s.decoding;
  pt.ranks = N;
  const double share = 1.0 / (N * double(layouts.size()));  // mean over ranks and steps
  double latency = 0, flops = 0;
  for (const ring::RankLayout& layout : layouts) {
    const ring::RingSchedule plan = ring::plan_ring(algo, p, layout);
    const ring::SimulatedRing sim = ring::simulate_ring(plan, ring_setup(s));
    latency += sim.latency_s / double(layouts.size());
    for (const auto& r : sim.ranks) {
      pt.attention_s += r.attention_s * share;
      pt.merge_s += r.merge_s * share;
      pt.comm_wait_s += r.comm_wait_s * share;
      pt.all2all_s += r.all2all_s * share;
    }
    if (layouts.size() == 1) add_steps(sim, pt);
    for (int r = 0; r < N; ++r) flops += plan.flops(r) / double(layouts.size());
  }
  pt.latency_s = {1, latency, latency, latency, latency, latency};
  pt.tflops_per_rank = flops / N / latency / 1e12;
  return pt;
}

// The whole forward pass: every layer is the simulated attention plus the
// linear layers on this CP rank's new tokens (and their TP all-reduces) and
// its elementwise kernels, then the per-pass work (embedding, LM head,
// sampling) for one output token per request: a prefill's request, or each
// request of a decode step's batch.
void add_whole_model(const SimSetup& s, PointResult& pt) {
  const double attention_flops = pt.tflops_per_rank * 1e12 * pt.latency_s.median * pt.ranks * s.tp;
  const double outputs = s.decoding ? double(s.decode.batch) : 1;
  const sim::ForwardCost cost =
      sim::forward_cost(s.model, double(pt.problem.T), pt.ranks, s.tp, pt.latency_s.median,
                        attention_flops, s.hardware, s.precision, s.element_bytes, outputs);
  pt.whole_model = true;
  pt.model_attention_s = cost.attention_s;
  pt.model_linear_s = cost.linear_s;
  pt.model_tp_comm_s = cost.tp_comm_s;
  pt.model_other_s = cost.other_s;
  pt.model_s = cost.total_s();
  pt.flops_utilization = cost.utilization(s.hardware, s.precision, pt.ranks * s.tp);
}

PointResult simulate_point(const Options& o, const SimSetup& s, AlgoRequest request, int64_t T,
                           int N) {
  const ring::RingProblem p = per_gpu_problem(o, s, T);
  validate(s, p, N);
  ring::Algorithm algo = algorithm_of(request);
  ring::AlgorithmChoice choice;
  if (request == AlgoRequest::automatic) {
    choice = choose(s, p, N);
    algo = choice.algorithm;
  }
  PointResult pt = simulate_attention(s, algo, p, N);
  pt.chosen = request == AlgoRequest::automatic;
  pt.choice = choice;
  if (s.whole_model) add_whole_model(s, pt);
  if (s.decoding) return pt;  // a decode step has no useful one-rank efficiency
  PointResult one = N == 1 ? pt : simulate_attention(s, algo, p, 1);
  if (s.whole_model) {
    if (N > 1) add_whole_model(s, one);
    pt.parallel_efficiency = one.model_s / (N * pt.model_s);
  } else {
    pt.parallel_efficiency = one.latency_s.median / (N * pt.latency_s.median);
  }
  return pt;
}

}  // namespace

void run_simulate(App& app, const Options& o) {
  World& world = app.world();
  const SimSetup s = setup_from(o);
  std::vector<int> ranks = o.sim_ranks.empty() ? std::vector<int>{world.size()} : o.sim_ranks;
  const std::vector<uint64_t> tokens = decoding(o) ? std::vector<uint64_t>{0} : o.tokens;
  for (uint64_t T : tokens)
    for (int N : ranks) validate(s, per_gpu_problem(o, s, static_cast<int64_t>(T)), N);
  app.open_results("sim");
  world.printf("# ring_attention: simulate on %s, %s%s, TP %d, %s\n", s.hardware.name.c_str(),
               s.whole_model ? "whole prefill of " : "attention of one layer",
               s.whole_model ? s.model.name.c_str() : "", s.tp, o.dtype.c_str());
  const Table table = make_table(world, true, decoding(o));
  table.print_header();
  if (world.is_root()) {
    for (uint64_t T : tokens)
      for (int N : ranks)
        for (AlgoRequest request : algo_requests(o)) {
          const PointResult pt = simulate_point(o, s, request, static_cast<int64_t>(T), N);
          record(app, o, pt);
          print_row(table, pt, true);
          if (pt.chosen)
            world.printf("#   auto chose %s: %s\n", ring::algorithm_name(pt.algo).data(),
                         pt.choice.reason.c_str());
        }
  }
  app.finish();
}

}  // namespace paralab::ring_attention
