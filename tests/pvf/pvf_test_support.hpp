// pvf_test_support.hpp: a small trained DLRM and a DlrmTarget on it, and a
// small trained transformer and a TransformerTarget on it, shared by the pvf
// tests (one process and MPI).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "dlrm/data.hpp"
#include "dlrm/model.hpp"
#include "pvf/dlrm_target.hpp"
#include "pvf/transformer_target.hpp"

namespace paralab::pvf::test {

// 13 dense features, bottom 13-32-8, top 36-16-1 (d 8), 4 tables of 300
// rows with two lookups per bag (so a row shows up in several samples and a
// sample reads several rows), 96 evaluation samples.
inline dlrm::DlrmConfig small_config() {
  dlrm::DlrmConfig c;
  c.bottom_layers = {32, 8};
  c.top_layers = {16, 1};
  c.embedding_dim = 8;
  c.table_rows = {300, 300, 300, 300};
  c.pooling = {2, 2, 2, 2};
  return c;
}

struct SmallDlrm {
  dlrm::DlrmConfig config = small_config();
  dlrm::DataConfig data_config;
  std::unique_ptr<dlrm::SyntheticClicks> data;
  std::unique_ptr<dlrm::Dlrm> model;
  std::unique_ptr<DlrmTarget> target;
  TrainingSummary summary;

  // extra: components after the five whole-model ones (parse_dlrm_component names).
  explicit SmallDlrm(int steps = 40, int eval_samples = 96, double threshold = 0.1,
                     const std::vector<std::string>& extra = {}) {
    data_config.seed = 7;
    data = std::make_unique<dlrm::SyntheticClicks>(config, data_config);
    model = std::make_unique<dlrm::Dlrm>(config, 7);
    dlrm::Batch eval = data->make_batch(dlrm::Split::eval, 0, 0, eval_samples);
    DlrmTraining training;
    training.steps = steps;
    training.batch = 64;
    summary = train_dlrm(*model, *data, training, eval);
    std::vector<DlrmComponent> components = default_dlrm_components();
    for (const auto& n : extra) components.push_back(parse_dlrm_component(n, config));
    target = std::make_unique<DlrmTarget>(*model, std::move(eval), threshold, components);
  }
};

// 2 layers, d 32, 2 query heads sharing 1 key/value head, ffn 64, vocab 16;
// 4 evaluation sequences of 16 tokens.
inline model::ModelConfig small_transformer_config() {
  model::ModelConfig c;
  c.vocab = 16;
  c.layers = 2;
  c.d_model = 32;
  c.heads = 2;
  c.kv_heads = 1;
  c.ffn = 64;
  c.context = 16;
  return c;
}

struct SmallTransformer {
  model::ModelConfig config = small_transformer_config();
  TransformerTraining training;
  std::unique_ptr<model::MarkovSource> data;
  std::unique_ptr<model::Model> model;
  std::unique_ptr<TransformerTarget> target;
  TransformerTrainingSummary summary;

  explicit SmallTransformer(int steps = 40, double threshold = 0.05,
                            std::vector<std::string> names = default_transformer_components()) {
    training.steps = steps;
    training.batch = 8;
    training.seq = 16;
    training.seed = 7;
    data = std::make_unique<model::MarkovSource>(training.vocab, training.order,
                                                 training.concentration, training.seed);
    model = std::make_unique<model::Model>(config, model::Precision::fp32, training.seed);
    model::SampledBatch eval = transformer_eval_set(*data, 4, training.seq);
    summary = train_transformer(*model, *data, training, eval);
    std::vector<TransformerComponent> components;
    for (const auto& n : names) components.push_back(parse_transformer_component(n, config.layers));
    target = std::make_unique<TransformerTarget>(*model, std::move(eval), components, threshold);
  }
};

}  // namespace paralab::pvf::test
