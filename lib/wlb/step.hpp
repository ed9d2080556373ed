// step.hpp: one 4D-parallel (TP, CP, PP, DP) training step of packed micro-
// batches, simulated on lib/sim (the simulate mode of wlb_4d, issue 7).
//
// A micro-batch costs the same on every pipeline stage (equal layers per
// stage). Per layer, each CP rank runs attention over the query-key pairs its
// shard of the micro-batch sees under the causal document mask, and the
// layer's GEMMs on its tokens under TP; the layer's time is the slowest CP
// rank's compute (the ranks meet at every layer's K/V all-gather) plus the
// exposed communication: two TP all-reduces of the activations and the CP
// all-gather of K and V. Backward is twice the forward compute plus the same
// TP all-reduces and a reduce-scatter of dK, dV over CP.
//
// The stages run the 1F1B schedule on the sim::Timeline (one timeline rank
// per pipeline stage and data-parallel replica): each stage's forwards and
// backwards in 1F1B order on its compute stream, activations and gradients
// sent to the neighbour stage on its comm stream, then the gradient all-
// reduce over DP x CP (weights are replicated over both) per stage. Links
// follow the rank placement of presets.hpp's Grid: a group whose GPUs span
// nodes pays the inter-node link.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "packing/packing.hpp"
#include "sim/compute.hpp"
#include "sim/hardware.hpp"
#include "sim/timeline.hpp"
#include "sim/transformer.hpp"
#include "wlb/presets.hpp"

namespace paralab::wlb {

struct StepSetup {
  sim::HardwareProfile hardware;
  sim::Precision precision = sim::Precision::bf16;
  int element_bytes = 2;   // activations, K/V on the wire
  int gradient_bytes = 4;  // the DP gradient all-reduce (FP32 gradients)
  packing::CpSharding sharding = packing::CpSharding::per_sequence;
  // Attention kernel efficiency by query-chunk length (relative to the
  // profile's attention efficiency): used by the adaptive sharding to choose,
  // and to time every CP rank's attention as its kernel calls' pairs over
  // their efficiency (packing::cp_predicted_latency). None: every call runs
  // at the profile's efficiency and adaptive compares pairs alone.
  std::optional<packing::KernelEfficiency> efficiency;
};

// One micro-batch on one pipeline stage (all of the stage's layers).
struct MicroBatchCost {
  int64_t tokens = 0;
  double forward_s = 0, backward_s = 0;
  double attention_s = 0;     // forward, the slowest CP rank, all layers of the stage
  double gemm_s = 0;          // forward, the same rank
  double tp_comm_s = 0;       // forward TP all-reduces
  double cp_comm_s = 0;       // forward K/V all-gather
  double send_bytes = 0;      // activations to the next stage (= gradients back)
  double pair_imbalance = 1;  // max over mean of the CP ranks' attention pairs
  double model_flops = 0;     // forward + backward of this stage's layers, all GPUs
};
MicroBatchCost micro_batch_cost(const packing::MicroBatch& mb, const ModelPreset& model,
                                const Grid& grid, const StepSetup& setup);

// The workload model the packers balance, from the same costs: seconds of one
// layer's forward on one GPU for a document of d tokens, attention (d^2 pairs
// / 2 at the attention rate) plus GEMMs (d tokens at the GEMM rate).
packing::WorkloadModel workload_model(const ModelPreset& model, const Grid& grid,
                                      const StepSetup& setup);

// The 1F1B pipeline of one step: per replica, per micro-batch, its stage
// times (the same on every stage) and the bytes sent between stages.
struct StageWork {
  double forward_s = 0, backward_s = 0, send_bytes = 0;
};
struct PipelineInput {
  int stages = 1;
  std::vector<std::vector<StageWork>> replicas;  // [replica][micro-batch], >= 1 each
  std::vector<sim::LinkModel> boundary_links;    // stages - 1: the link after stage s
  double gradient_allreduce_s = 0;               // per stage, over the replicas (0: none)
  bool keep_trace = false;
};
struct PipelineResult {
  double step_s = 0;
  double bubble_fraction = 0;          // 1 - mean compute busy over every stage / step_s
  std::vector<sim::TaskRecord> trace;  // with keep_trace
};
// Throws UsageError for no stages, no replicas, an empty replica, or the
// wrong number of boundary links.
PipelineResult simulate_1f1b(const PipelineInput& input);

struct SimulatedStep {
  double step_s = 0;
  double bubble_fraction = 0;
  int64_t tokens = 0;
  double tokens_per_s = 0;
  double mfu = 0;                   // model FLOPs / (step_s x GPUs x BF16 peak)
  double latency_imbalance = 1;     // max over mean of the micro-batches' forward + backward
  double gradient_allreduce_s = 0;  // per stage
  std::vector<MicroBatchCost> micro_batches;
};
// The step's micro-batches split over grid.dp replicas as packing::Step says.
// Throws UsageError when their number is not a positive multiple of dp, or the
// grid does not fit the model.
SimulatedStep simulate_step(const packing::Step& step, const ModelPreset& model, const Grid& grid,
                            const StepSetup& setup);

}  // namespace paralab::wlb
