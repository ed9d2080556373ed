// Single-rank training on the synthetic click logs learns: the training loss
// falls, the held-out AUC clearly beats chance and the untrained model, and
// learning the embeddings beats freezing them (the labels depend on the
// rows looked up, not only on the dense features).
#include <gtest/gtest.h>

#include <cstdio>
#include <numeric>
#include <vector>

#include "dlrm/train.hpp"
#include "dlrm_test_support.hpp"
#include "kernels/threads.hpp"

namespace paralab::dlrm::test {
namespace {

double mean(const std::vector<double>& v, size_t from, size_t to) {
  return std::accumulate(v.begin() + static_cast<long>(from), v.begin() + static_cast<long>(to),
                         0.0) /
         static_cast<double>(to - from);
}

DlrmConfig training_config() {
  DlrmConfig c;
  c.dense_features = 8;
  c.embedding_dim = 8;
  c.bottom_layers = {32, 8};
  c.top_layers = {32, 1};
  c.table_rows = {500, 60, 2000, 12, 300, 1000};
  c.pooling = {1, 2, 1, 1, 3, 1};
  return c;
}

struct TrainingRun {
  EvalResult before, after;
  std::vector<double> losses;
};

TrainingRun run(EmbeddingOptimizer optimizer, float embedding_lr, int steps) {
  // Tiny GEMMs: one thread is fastest.
  const int threads = kernels::threads();
  kernels::set_threads(1);
  const DlrmConfig c = training_config();
  DataConfig dc;
  dc.seed = 12;
  SyntheticClicks data(c, dc);
  Dlrm model(c, 34);
  TrainingRun r;
  r.before = evaluate(model, data, 4, 512);
  OptimizerConfig opt;
  opt.mlp_lr = 0.5f;
  opt.embedding_lr = embedding_lr;
  opt.embedding = optimizer;
  r.losses = train(model, data, steps, 256, opt);
  r.after = evaluate(model, data, 4, 512);
  const EvalResult ceiling = evaluate_teacher(data, 4, 512);
  std::printf(
      "  before: auc %.4f logloss %.4f; after %d steps: auc %.4f logloss %.4f; teacher "
      "auc %.4f logloss %.4f; train loss %.4f -> %.4f\n",
      r.before.auc, r.before.log_loss, steps, r.after.auc, r.after.log_loss, ceiling.auc,
      ceiling.log_loss, mean(r.losses, 0, 50),
      mean(r.losses, r.losses.size() - 50, r.losses.size()));
  EXPECT_LE(r.after.auc, ceiling.auc);
  kernels::set_threads(threads);
  return r;
}

TEST(DlrmTraining, RowwiseAdagradLearnsTheTeacher) {
  DLRM_SINGLE_PROCESS();
  const int steps = 800;
  const TrainingRun learned = run(EmbeddingOptimizer::rowwise_adagrad, 0.1f, steps);
  EXPECT_LT(mean(learned.losses, steps - 50, steps), mean(learned.losses, 0, 50) - 0.05);
  EXPECT_GT(learned.after.auc, 0.75);
  EXPECT_GT(learned.after.auc, learned.before.auc + 0.2);
  EXPECT_LT(learned.after.log_loss, learned.before.log_loss - 0.1);
  // Frozen embeddings (learning rate 0): only the dense features and the
  // initial rows' noise are left, clearly worse.
  const TrainingRun frozen = run(EmbeddingOptimizer::sgd, 0.0f, steps);
  EXPECT_GT(learned.after.auc, frozen.after.auc + 0.04);
}

TEST(DlrmTraining, SgdLearnsTheTeacher) {
  DLRM_SINGLE_PROCESS();
  const int steps = 600;
  const TrainingRun learned = run(EmbeddingOptimizer::sgd, 1.0f, steps);
  EXPECT_LT(mean(learned.losses, steps - 50, steps), mean(learned.losses, 0, 50) - 0.03);
  EXPECT_GT(learned.after.auc, 0.68);
  EXPECT_GT(learned.after.auc, learned.before.auc + 0.2);
  EXPECT_LT(learned.after.log_loss, learned.before.log_loss - 0.1);
}

}  // namespace
}  // namespace paralab::dlrm::test
