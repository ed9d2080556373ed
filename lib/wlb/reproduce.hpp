// reproduce.hpp: the simulated reproduction of WLB-LLM's evaluation (Wang et
// al., OSDI'25): for each of the paper's eight (model, context, grid)
// configurations, the same documents packed by plain packing (the paper's
// baseline: arrival order, cut at the context, per-sequence CP sharding), fixed-length greedy
// packing and WLB (variable-length packing with outlier-delay queues, per-
// document or adaptive CP sharding), each step simulated by step.hpp; and the
// 7B-128K imbalance table (plain, fixed over 1/2/4/8 global batches, WLB with
// 1/2/3 queues).
//
// The rows are what `wlb_4d --mode simulate` prints and writes to HDF5;
// docs/wlb_4d.md holds the table against the paper's figures.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "packing/packing.hpp"
#include "wlb/presets.hpp"

namespace paralab::wlb {

struct ReproductionOptions {
  std::string profile = "h100-gtt";   // a built-in profile or a JSON path (sim::resolve_profile)
  std::string lengths;                // a packing length spec; empty = packing::paper_like_spec
  std::vector<std::string> configs;   // paper_configs() names; empty = all eight
  int steps = 64;                     // global batches packed and simulated per packer
  uint64_t seed = 1;                  // the length source's (every packer sees the same documents)
  int micro_batches_per_replica = 0;  // 0 = each configuration's (2 x PP)
  // Tokens each global batch brings on average, over one step's capacity
  // (micro-batches x context): 1 = a fixed global batch that the baseline
  // (plain, documents split at the context) trains exactly, every sequence
  // full. The defaults are lib/packing's, shared with docs/packing.md's table.
  double load = packing::kDefaultLoad;
  int fixed_window = 1;  // fixed: global batches balanced together
  int wlb_queues = 2;    // wlb: outlier-delay queues
  // wlb: longest micro-batch over the context (>= 1); room above the context
  // lets a packer of whole documents keep up at load 1.
  double wlb_max_length_factor = packing::kDefaultWlbMaxLengthFactor;
  // plain: concatenate and cut at the context (the paper's baseline); false =
  // whole documents, partly empty micro-batches (for comparison).
  bool plain_split_documents = true;
  packing::CpSharding wlb_sharding = packing::CpSharding::adaptive;
  // Attention efficiency by query-chunk length for every packing's timing and
  // the adaptive choice; none = every kernel call at the profile's efficiency.
  std::optional<packing::KernelEfficiency> efficiency = h100_chunk_efficiency();
};

// One configuration under one packing, averaged over its steps. Steps are
// those the packer returns while the global batches arrive; what it still
// holds at the end (queued outliers, a backlog) is not trained.
struct ReproductionRow {
  std::string config;  // "7B-128K"
  std::string model;   // "7B"
  int64_t context = 0;
  Grid grid;
  std::string packing;    // "plain" | "fixed" | "wlb"
  std::string sharding;   // the CP sharding used
  int micro_batches = 0;  // per step, all replicas
  int steps = 0;          // steps simulated
  int64_t tokens = 0;     // trained over those steps
  double fill = 0;        // tokens over steps x micro-batches x context
  double mean_step_s = 0;
  double tokens_per_s = 0;  // all tokens over all step time
  double mfu = 0;           // mean over steps
  double bubble_fraction = 0;
  double imbalance = 0;            // mean over steps of packing::imbalance (the workload model's)
  double attention_imbalance = 0;  // the same over the attention part of the workload alone
  double latency_imbalance = 0;    // mean over steps of the micro-batches' max / mean latency
  double pair_imbalance = 0;       // mean over micro-batches of the CP ranks' max / mean pairs
  double mean_delay = 0;           // token-weighted delay in iterations (packing::delay_stats)
  double pack_ms = 0;              // packer wall time per step, measured here (noisy)
  double speedup = 1;              // tokens/s over plain's for the same configuration
  // Per simulated step, for the result file's datasets.
  std::vector<double> step_seconds, step_imbalance, step_latency_imbalance;
  std::vector<int64_t> step_tokens;
};

struct ReproductionTable {
  std::string profile;
  std::string lengths;                // the spec of the first configuration's context
  std::vector<ReproductionRow> rows;  // per configuration: plain, fixed, wlb
  // WLB over plain (tokens/s), arithmetic means over the configurations run,
  // all of them and those at 64K and 128K context (0 when none ran).
  double mean_speedup = 0, mean_speedup_64k = 0, mean_speedup_128k = 0;
  double mean_speedup_over_fixed = 0;  // WLB over fixed-length greedy, all configurations
  // WLB's MFU over plain's (each the mean over steps), averaged the same way:
  // the speedup at equal model FLOPs. Plain cuts documents at the context, so
  // its pieces' attention is cheaper than WLB's whole documents: tokens/s
  // charges WLB for that extra attention, this ratio does not.
  double mean_mfu_ratio = 0, mean_mfu_ratio_64k = 0, mean_mfu_ratio_128k = 0;
};

// Throws UsageError for an unknown configuration or profile, a bad length
// spec, steps < 1, or a window, queue count or length factor out of range.
ReproductionTable reproduce_paper(const ReproductionOptions& options);

// One packing of a configuration: what `wlb_4d --mode simulate --packing ..`
// runs for a grid of its own (any PaperConfig whose model is a preset name).
struct PackingChoice {
  packing::PackingKind kind = packing::PackingKind::plain;
  int window = 1;  // fixed
  int queues = 2;  // wlb
  packing::CpSharding sharding = packing::CpSharding::per_sequence;
  bool split_documents = true;  // plain: cut at the context (PackingConfig::split_documents)
};
// Packs options.steps global batches (whole windows for fixed) of options'
// lengths and seed, and simulates every step with options' profile, load,
// efficiency and WLB length factor; options.micro_batches_per_replica, when
// positive, overrides the configuration's (options.configs, fixed_window,
// wlb_queues and wlb_sharding are not used: `choice` says). The row's speedup is 1. Throws
// UsageError for a bad grid, model, profile or option.
ReproductionRow simulate_packing(const PaperConfig& config, const PackingChoice& choice,
                                 const ReproductionOptions& options);

// One packing variant of the imbalance table.
struct ImbalanceRow {
  std::string packing;             // "plain", "fixed", "wlb"; "plain-whole": whole documents
  int parameter = 0;               // fixed: window (global batches); wlb: queues; plain: 0
  double imbalance = 0;            // ours: mean packing::imbalance over the steps
  double attention_imbalance = 0;  // ours: the same, attention workload alone
  double latency_imbalance = 0;    // ours: mean max / mean simulated micro-batch latency
  double mean_delay = 0;           // token-weighted delay, iterations
  double paper = 0;                // the paper's imbalance degree
};
struct ImbalanceTable {
  std::string config;  // "7B-128K"
  std::vector<ImbalanceRow> rows;
};
// The paper's 7B-128K table: plain 1.44; fixed over 1/2/4/8 global batches
// 1.41/1.22/1.11/1.08; WLB with 1/2/3 queues 1.24/1.05/1.05; then a ninth row
// the paper does not have (paper = 0): plain packing of the other variant
// (whole documents when plain_split_documents, else split), "plain-whole"
// when it keeps documents whole. Uses options'
// profile, lengths, steps (rounded up to a multiple of 8 for the windows),
// seed, micro-batches and WLB length factor; `configs` may name another
// configuration (its first entry), default 7B-128K.
ImbalanceTable reproduce_imbalance(const ReproductionOptions& options);

}  // namespace paralab::wlb
