// Options of pvf and their validation.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "dlrm/data.hpp"
#include "dlrm/model.hpp"
#include "harness/app.hpp"
#include "pvf/campaign.hpp"
#include "pvf/dlrm_target.hpp"
#include "pvf/transformer_target.hpp"

namespace paralab::pvf_app {

struct Options {
  std::string model = "dlrm";
  // The DLRM (lib/dlrm) and its brief training.
  int tables = 8;
  int64_t rows = 10000;
  int pooling = 1;
  int embedding_dim = 16;
  std::vector<int> bottom{64, 16};
  std::vector<int> top{64, 32, 1};
  // --train-steps, --batch, --lr: the DLRM's defaults; --model transformer
  // uses kTransformer* when they are not given.
  int train_steps = 2000;
  int batch = 256;
  float lr = 0.1f;
  int eval_samples = 256;
  double ctr_threshold = 0.1;
  // The transformer (lib/model) on its synthetic Markov language.
  int layers = 2;
  int d_model = 64;
  int heads = 4;
  int kv_heads = 4;
  int ffn = 172;
  int vocab = 16;
  int order = 2;
  double concentration = 0.2;
  int seq = 64;
  int eval_sequences = 8;
  double loss_threshold = 0.05;
  // The campaign.
  std::vector<std::string> components{"embedding", "bottom.weight", "bottom.bias", "top.weight",
                                      "top.bias"};
  std::vector<std::string> faults{"flip"};
  std::vector<std::string> dtypes{"fp32", "bf16", "fp16", "int8"};
  std::vector<std::string> bit_classes{"sign", "exponent", "mantissa", "high", "low"};
  int64_t trials = 1000;
  int64_t round = 64;
  double ci_width = 0.05;
  std::string checkpoint;  // empty: <out>.ckpt
  bool resume = false;
  int64_t stop_after_rounds = 0;
  int bench_trials = 200;
  int threads = 0;  // 0: the rank's share of the host's cores
};

inline constexpr int kTransformerTrainSteps = 300;
inline constexpr int kTransformerBatch = 16;
inline constexpr float kTransformerLr = 3e-3f;

// Everything the run needs, validated on every rank alike.
struct Setup {
  bool transformer = false;  // --model transformer; otherwise the DLRM
  dlrm::DlrmConfig model;
  dlrm::DataConfig data;
  pvf::DlrmTraining training;
  // The DLRM target's components: the five whole-model ones (indices 0-4,
  // whatever --components lists), then the others --components names.
  std::vector<pvf::DlrmComponent> dlrm_components;
  model::ModelConfig transformer_model;
  pvf::TransformerTraining transformer_training;
  std::vector<pvf::TransformerComponent> transformer_components;  // cell component i
  std::vector<pvf::Cell> cells;
  pvf::CampaignConfig campaign;
};

void add_options(CLI::App& cli, Options& o);
// Parses (App::parse) and validates; UsageError names the first problem.
Setup parse_and_validate(App& app, Options& o);

}  // namespace paralab::pvf_app
