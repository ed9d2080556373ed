// wlb_4d: 4D-parallel (TP x CP x PP x DP) transformer training with
// workload-balanced packing and per-document context sharding, after WLB-LLM
// (Wang et al., OSDI'25). Measure mode trains the lib/model transformer for
// real on the lib/parallel engine over MPI, each packing in turn on the same
// documents; simulate mode reproduces the paper's evaluation on lib/sim
// (lib/wlb). See docs/wlb_4d.md.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "harness/app.hpp"
#include "model/config.hpp"
#include "model/precision.hpp"
#include "packing/packing.hpp"
#include "parallel/engine4d.hpp"

namespace paralab::wlb_4d {

struct Options {
  // Grid (measure mode: the product is the world size).
  int tp = 1, cp = 1, pp = 1, dp = 1;
  // Packing.
  std::vector<std::string> packings = {"plain", "fixed", "wlb"};
  std::string cp_sharding = "auto";  // auto: plain/fixed per-sequence, wlb adaptive
  std::string lengths;               // empty: packing::paper_like_spec(context)
  int64_t context = 1024;
  int64_t max_document = 0;  // longest document the lengths may produce; 0 = context
  double max_length_factor = packing::kDefaultWlbMaxLengthFactor;  // wlb: longest over the context
  int micro_batches = 0;                // per data-parallel replica; 0 = 2 x pp
  int window = 1;                       // fixed: global batches balanced together
  int queues = 2;                       // wlb: outlier-delay queues
  double load = packing::kDefaultLoad;  // tokens per global batch over its capacity
  // Model and data (measure mode).
  int layers = 2, d_model = 64, heads = 4, kv_heads = 2, ffn = 172, vocab = 64;
  int order = 1;
  double concentration = 0.1;
  std::string precision = "fp32";
  // Training.
  int steps = 0;  // 0: 8 trained (measure), 64 simulated (simulate)
  float lr = 1e-3f;
  float clip = 1.0f;
  int threads = 0;
  // Simulate mode.
  std::string profile = "h100-gtt";
  std::vector<std::string> configs;  // paper configurations; empty = all
  std::string sim_model;             // a preset (550M, 7B, 30B, 70B): simulate this grid instead
  bool imbalance_table = true;
  bool allow_divergence = false;
};

void add_options(CLI::App& cli, Options& o);
// Checks what CLI11 cannot (cross-option rules); throws UsageError.
void validate(const Options& o, Mode mode);
std::vector<packing::PackingKind> packings_of(const Options& o);
packing::CpSharding sharding_for(const Options& o, packing::PackingKind kind);
model::ModelConfig model_config_of(const Options& o);
parallel::Grid4 grid_of(const Options& o);
int micro_batches_per_replica(const Options& o);
int steps_of(const Options& o, Mode mode);
int64_t max_document_of(const Options& o);

void run_measure(App& app, const Options& o);
void run_simulate(App& app, const Options& o);

}  // namespace paralab::wlb_4d
