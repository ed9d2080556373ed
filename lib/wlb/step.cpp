// A simulated 4D training step: micro-batch costs and the 1F1B pipeline on
// the lib/sim timeline; see step.hpp for what is modelled.
#include "wlb/step.hpp"

#include <algorithm>
#include <numeric>
#include <string>

#include "core/errors.hpp"
#include "schedule/pipeline.hpp"
#include "schedule/play.hpp"
#include "sim/collectives.hpp"
#include "sim/links.hpp"

namespace paralab::wlb {
namespace {

using sim::Resource;

// A collective over `ranks` ranks spaced `stride` apart (ranks packed node
// by node), costed by the profile's communication model (sim/collectives.hpp).
double collective_s(const sim::HardwareProfile& hw, sim::Collective kind, int ranks, int stride,
                    double bytes) {
  return sim::collective_time(hw, kind, sim::strided_group(hw, ranks, stride), bytes).seconds;
}

double max_of(const std::vector<double>& values) {
  return values.empty() ? 0 : *std::max_element(values.begin(), values.end());
}

double mean_of(const std::vector<double>& values) {
  return values.empty() ? 0 : std::accumulate(values.begin(), values.end(), 0.0) / values.size();
}

// max / mean, 1 when everything is zero.
double max_over_mean(const std::vector<double>& values) {
  const double mean = mean_of(values);
  return mean > 0 ? max_of(values) / mean : 1;
}

}  // namespace

MicroBatchCost micro_batch_cost(const packing::MicroBatch& mb, const ModelPreset& model,
                                const Grid& grid, const StepSetup& setup) {
  MicroBatchCost cost;
  cost.tokens = mb.tokens();
  if (cost.tokens == 0) return cost;  // a bubble of padding: nothing runs
  const sim::TransformerShape& shape = model.shape;
  const sim::HardwareProfile& hw = setup.hardware;
  const sim::ComputeModel compute = sim::compute_model(hw, setup.precision);
  const double heads = sim::heads_per_tp_rank(shape, grid.tp);
  const double kv_heads = sim::kv_heads_per_tp_rank(shape, grid.tp);
  const double dh = double(shape.head_dim), e = double(setup.element_bytes);

  const packing::CpShards shards =
      packing::shard(mb, grid.cp, setup.sharding, setup.efficiency ? &*setup.efficiency : nullptr);
  const std::vector<double> pairs = packing::cp_attention_pairs(mb, shards);
  // Pairs over the kernel calls' relative efficiency: what the rank's
  // attention costs in pairs at the profile's efficiency.
  const std::vector<double> effective_pairs =
      setup.efficiency ? packing::cp_predicted_latency(mb, shards, &*setup.efficiency) : pairs;

  // Per layer: the slowest CP rank's attention + GEMMs (the ranks wait for
  // each other at every layer's all-gather).
  double slowest = -1, attention = 0, gemm = 0;
  int64_t most_tokens = 0;
  for (size_t c = 0; c < shards.size(); ++c) {
    int64_t tokens = 0;
    for (const packing::TokenRange& range : shards[c]) tokens += range.end - range.begin;
    const double a =
        effective_pairs[c] > 0 ? compute.attention_s(4 * effective_pairs[c] * heads * dh) : 0;
    const double g = tokens > 0 ? sim::linear_layer_cost(shape, double(tokens), grid.tp, hw,
                                                         setup.precision, setup.element_bytes)
                                      .gemm_s
                                : 0;
    if (a + g > slowest) slowest = a + g, attention = a, gemm = g;
    most_tokens = std::max(most_tokens, tokens);
  }
  cost.pair_imbalance = max_over_mean(pairs);

  // Two all-reduces of [tokens, d_model] per layer and direction over TP.
  const double tp_comm = 2 * collective_s(hw, sim::Collective::all_reduce, grid.tp, 1,
                                          double(most_tokens) * double(shape.d_model) * e);
  // K and V of every token, gathered (forward) and their gradients reduce-
  // scattered (backward) over CP.
  const double kv_bytes = double(cost.tokens) * 2 * kv_heads * dh * e;
  const double cp_gather =
      collective_s(hw, sim::Collective::all_gather, grid.cp, grid.tp, kv_bytes);
  const double cp_scatter =
      collective_s(hw, sim::Collective::reduce_scatter, grid.cp, grid.tp, kv_bytes);

  const double layers = double(shape.layers / grid.pp);
  cost.attention_s = layers * attention;
  cost.gemm_s = layers * gemm;
  cost.tp_comm_s = layers * tp_comm;
  cost.cp_comm_s = layers * cp_gather;
  cost.forward_s = layers * (attention + gemm + tp_comm + cp_gather);
  cost.backward_s = layers * (2 * (attention + gemm) + tp_comm + cp_scatter);
  // With sequence parallelism a stage sends its 1/TP share of the activations.
  cost.send_bytes = double(most_tokens) * double(shape.d_model) * e / grid.tp;

  const double all_pairs = std::accumulate(pairs.begin(), pairs.end(), 0.0);
  const double forward_flops =
      4 * all_pairs * shape.heads * dh + sim::linear_flops_per_layer(shape, double(cost.tokens), 1);
  cost.model_flops = 3 * forward_flops * layers;
  return cost;
}

packing::WorkloadModel workload_model(const ModelPreset& model, const Grid& grid,
                                      const StepSetup& setup) {
  const sim::ComputeModel compute = sim::compute_model(setup.hardware, setup.precision);
  const double heads = sim::heads_per_tp_rank(model.shape, grid.tp);
  packing::WorkloadModel workload;
  // d^2 / 2 causal pairs of 4 FLOPs per head and head dimension.
  workload.attention_coef =
      2 * heads * double(model.shape.head_dim) / compute.attention_flops_per_s;
  workload.linear_coef =
      sim::linear_flops_per_layer(model.shape, 1, grid.tp) / compute.gemm_flops_per_s;
  return workload;
}

// The pipeline's program (schedule/pipeline.hpp, what Engine4D walks), every
// cost fixed by the caller, played by the schedule layer.
PipelineResult simulate_1f1b(const PipelineInput& input) {
  schedule::PipelineProgramInputs program;
  program.stages = input.stages;
  for (const auto& replica : input.replicas) {
    program.replicas.emplace_back();
    for (const StageWork& w : replica)
      program.replicas.back().push_back(
          {schedule::fixed_cost(w.forward_s), schedule::fixed_cost(w.backward_s), w.send_bytes});
  }
  program.boundary_links = input.boundary_links;
  if (input.stages > 1 && input.boundary_links.size() != size_t(input.stages - 1))
    throw UsageError("pipeline: " + std::to_string(input.stages) + " stages need " +
                     std::to_string(input.stages - 1) + " boundary links, got " +
                     std::to_string(input.boundary_links.size()));
  program.gradient_allreduce_s = input.gradient_allreduce_s;
  // Every cost is fixed: the profile prices nothing.
  const schedule::Played played = schedule::play(schedule::pipeline_program(program), {});

  PipelineResult result;
  const sim::Timeline& timeline = played.timeline();
  result.step_s = played.makespan_s();
  double busy = 0;
  for (int rank = 0; rank < timeline.ranks(); ++rank)
    busy += timeline.busy_s(rank, Resource::compute);
  result.bubble_fraction =
      result.step_s > 0 ? 1 - busy / (double(timeline.ranks()) * result.step_s) : 0;
  if (input.keep_trace) result.trace = timeline.trace();
  return result;
}

SimulatedStep simulate_step(const packing::Step& step, const ModelPreset& model, const Grid& grid,
                            const StepSetup& setup) {
  validate_grid(grid, model.shape);
  const size_t n = step.micro_batches.size();
  if (n == 0 || n % size_t(grid.dp) != 0)
    throw UsageError("step " + std::to_string(step.iteration) + ": " + std::to_string(n) +
                     " micro-batches do not split over dp " + std::to_string(grid.dp));
  const sim::HardwareProfile& hw = setup.hardware;
  const size_t per_replica = n / size_t(grid.dp);
  const int stage_ranks = grid.tp * grid.cp;  // GPUs of one stage of one replica

  SimulatedStep result;
  PipelineInput pipeline;
  pipeline.stages = grid.pp;
  pipeline.replicas.assign(size_t(grid.dp), {});
  for (int s = 0; s + 1 < grid.pp; ++s)
    pipeline.boundary_links.push_back(hw.link_between(s * stage_ranks, (s + 1) * stage_ranks));
  std::vector<double> latencies;
  double flops = 0;
  for (size_t i = 0; i < n; ++i) {
    const MicroBatchCost cost = micro_batch_cost(step.micro_batches[i], model, grid, setup);
    pipeline.replicas[i / per_replica].push_back(
        {cost.forward_s, cost.backward_s, cost.send_bytes});
    latencies.push_back(cost.forward_s + cost.backward_s);
    result.tokens += cost.tokens;
    flops += cost.model_flops * grid.pp;  // every stage runs its share of the layers
    result.micro_batches.push_back(cost);
  }

  // Weights are replicated over DP and CP: one gradient all-reduce per stage
  // over both, of the stage's 1/TP share of the layer weights.
  const int reducers = grid.dp * grid.cp;
  if (reducers > 1) {
    const double bytes = double(model.layer_parameters()) * double(model.shape.layers / grid.pp) /
                         grid.tp * setup.gradient_bytes;
    // The reducers span from the first to the farthest of them.
    const int farthest = std::max((grid.cp - 1) * grid.tp, (grid.dp - 1) * grid.pp * stage_ranks);
    const int nodes = std::min(farthest / hw.gpus_per_node + 1, reducers);
    result.gradient_allreduce_s =
        sim::collective_time(hw, sim::Collective::all_reduce, {reducers, nodes}, bytes).seconds;
  }
  pipeline.gradient_allreduce_s = result.gradient_allreduce_s;

  const PipelineResult played = simulate_1f1b(pipeline);
  result.step_s = played.step_s;
  result.bubble_fraction = played.bubble_fraction;
  result.tokens_per_s = result.step_s > 0 ? double(result.tokens) / result.step_s : 0;
  const double peak =
      setup.precision == sim::Precision::bf16 ? hw.bf16_peak_flops : hw.fp32_peak_flops;
  result.mfu = result.step_s > 0 ? flops / (result.step_s * grid.gpus() * peak) : 0;
  result.latency_imbalance = max_over_mean(latencies);
  return result;
}

}  // namespace paralab::wlb
