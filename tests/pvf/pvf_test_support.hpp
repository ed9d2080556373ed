// pvf_test_support.hpp: a small trained DLRM and a DlrmTarget on it, shared
// by the pvf tests (one process and MPI).
#pragma once

#include <memory>

#include "dlrm/data.hpp"
#include "dlrm/model.hpp"
#include "pvf/dlrm_target.hpp"

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

  explicit SmallDlrm(int steps = 40, int eval_samples = 96, double threshold = 0.1) {
    data_config.seed = 7;
    data = std::make_unique<dlrm::SyntheticClicks>(config, data_config);
    model = std::make_unique<dlrm::Dlrm>(config, 7);
    dlrm::Batch eval = data->make_batch(dlrm::Split::eval, 0, 0, eval_samples);
    DlrmTraining training;
    training.steps = steps;
    training.batch = 64;
    summary = train_dlrm(*model, *data, training, eval);
    target = std::make_unique<DlrmTarget>(*model, std::move(eval), threshold);
  }
};

}  // namespace paralab::pvf::test
