// The dlrm_a2a app's options, and what they turn into: the model, the
// sharding planner's options and the error-bound policy, validated before
// any training (one clear UsageError from rank 0 on bad input).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dlrm/error_bounds.hpp"
#include "dlrm/model.hpp"
#include "dlrm/sharding.hpp"
#include "harness/app.hpp"

namespace paralab::dlrm_a2a {

struct Options {
  std::string model = "custom";
  int embedding_dim = 16;
  int64_t max_rows = 100'000;
  int pooling = 1;
  int tables = 8;
  int64_t rows = 1000;
  std::string sharding = "table";
  int batch = 256;
  int steps = 100;
  int eval_every = 50;
  int eval_batches = 4;
  std::string optimizer = "sgd";
  double lr = 0.1;
  double embedding_lr = -1;  // -1: --lr
  std::vector<std::string> codecs{"none", "fp16", "int8", "quantize_huffman"};
  double error_bound = 1e-2;
  double backward_bound = 0;
  bool backward_given = false;  // else --error-bound
  std::string bound_mode = "rel";
  std::string schedule = "constant";
  double schedule_start = 4;
  int64_t schedule_steps = 50;
  std::string classes = "none";
  double link_GBps = 10;
  bool measure_error = false;
  int threads = 0;
  bool allow_divergence = false;
  // Simulate mode (--mode simulate).
  std::string profile = "cluster-100g-tcp";
  std::vector<int> sim_ranks;  // empty: the run's ranks
  std::string sim_compute = "profile";
  double sim_codec_GBps = 0;  // 0: measured in this run
  double sim_ratio = 0;       // 0: measured per table in this run
  int64_t sim_batch = 0;      // global batch to predict; 0: --batch
  int64_t predicted_batch() const { return sim_batch > 0 ? sim_batch : batch; }
};

void add_options(CLI::App& cli, Options& o);

// Everything the options describe, checked.
struct Setup {
  dlrm::DlrmConfig config;
  dlrm::PlannerOptions planner;
  dlrm::ShardingPlan plan;  // for the run's ranks
  dlrm::BoundPolicy policy;
};

// Parses the app's options (and the harness's), checks everything that can
// be wrong with them on the app's world (and, simulating, at every
// --sim-ranks), and builds the setup. Throws UsageError with one message
// naming the option.
Setup parse_and_validate(App& app, Options& o);

}  // namespace paralab::dlrm_a2a
