// The ring_attention app's options and the sweep point both modes record.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/stats.hpp"
#include "harness/app.hpp"
#include "harness/table.hpp"
#include "ring/choose.hpp"
#include "ring/ring_attention.hpp"

namespace paralab::ring_attention {

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
  // Decode: steps of one new token per request, batch requests of -P context.
  int decode_steps = 0;
  int batch = 1;
  // Simulate mode.
  std::string profile = "h100-gtt";
  std::vector<int> sim_ranks;  // empty: the run's ranks
  std::string model = "none";
  int tp = 0;                         // 0: 8 with --model, else 1
  std::string partial_dtype = "f32";  // pass-Q's returned partial outputs
};

void add_options(CLI::App& cli, Options& o);

// The algorithms to run, in order; "auto" stays a request to choose per point.
enum class AlgoRequest { pass_kv, pass_q, all_gather, automatic };
std::vector<AlgoRequest> algo_requests(const Options& o);
ring::Algorithm algorithm_of(AlgoRequest request);  // not for automatic

// The problem one -T value (or, decoding, the batch) describes; heads as given.
ring::RingProblem problem_for(const Options& o, int64_t T);
bool decoding(const Options& o);

// One sweep point as both modes report it.
struct PointResult {
  ring::Algorithm algo = ring::Algorithm::pass_kv;
  bool chosen = false;           // by --algo auto
  ring::AlgorithmChoice choice;  // valid when chosen
  ring::RingProblem problem;
  bool decode = false;  // one decode step, not a prefill
  int ranks = 1;
  Summary latency_s;  // per request (prefill) or per decode step
  double attention_s = 0, merge_s = 0, comm_wait_s = 0, all2all_s = 0;  // mean per rank
  double setup_s = 0;  // measure mode: allocating and packing message buffers
  double tflops_per_rank = 0;
  double error = -1;  // -1: not checked
  TimeMatrix times;   // measure mode: [iteration][rank]
  // Measure mode: per ring step, mean over calls, [rank][step] (rank 0 only).
  std::vector<double> step_attention_s, step_merge_s, step_comm_wait_s;
  size_t ring_steps = 0;
  // Simulate mode: per ring step, [rank][step], the transfer each rank sends.
  std::vector<double> step_transfer_s;
  // Simulate mode with --model: the whole prefill (TTFT) or decode step (TTIT).
  bool whole_model = false;
  double model_s = 0, model_attention_s = 0, model_linear_s = 0, model_tp_comm_s = 0;
  double model_other_s = 0;
  double flops_utilization = 0, parallel_efficiency = 0;  // prefill only
};

// simulate: the model columns; decode: TTIT instead of TTFT, no efficiency.
Table make_table(const World& world, bool simulate, bool decode);
void print_row(const Table& table, const PointResult& pt, bool simulate);
void record(App& app, const Options& o, const PointResult& pt);

void run_measure(App& app, const Options& o);
void run_simulate(App& app, const Options& o);

}  // namespace paralab::ring_attention
