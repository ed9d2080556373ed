// Data-parallel training (lib/model/data_parallel.hpp) at 1..4 ranks equals
// single-rank training on the same global batch: every rank also trains a
// single-rank replica over MPI_COMM_SELF and compares, with global batches
// that do not divide by the rank count (and one smaller than it).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "../model/model_test_support.hpp"
#include "comm/comm.hpp"
#include "core/errors.hpp"
#include "model/data.hpp"
#include "model/data_parallel.hpp"
#include "mpi_test.hpp"

namespace paralab::model {
namespace {

ModelConfig small_config() {
  return test::small_model(16);
}

constexpr int kSeq = 16;

// max |a - b| / max |b|.
double relative_difference(std::span<const float> a, std::span<const float> b) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    diff = std::max(diff, std::fabs(double(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(double(b[i])));
  }
  return scale > 0 ? diff / scale : diff;
}

// ||a - b|| / ||b||.
double norm_difference(std::span<const float> a, std::span<const float> b) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    diff += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    norm += double(b[i]) * b[i];
  }
  return std::sqrt(diff / norm);
}

struct Replica {
  Model model;
  AdamW optimizer;
  DataParallelTrainer trainer;
  Replica(Precision p, comm::Communicator& c, double clip, GradDType dtype)
      : model(small_config(), p, 11),
        optimizer(AdamWConfig{0.9f, 0.99f, 1e-8f, 0.01f}, 3),
        trainer(model, optimizer, c, LrSchedule{3e-3f, 3e-4f, 2, 10}, clip, dtype) {}
};

TEST(DataParallel, RowSharesCoverTheBatchInOrder) {
  for (int ranks = 1; ranks <= 5; ++ranks)
    for (int rows : {1, 3, 7, 8, 16}) {
      int next = 0;
      for (int r = 0; r < ranks; ++r) {
        const RowShare s = row_share(rows, r, ranks);
        EXPECT_EQ(s.first, next) << rows << " rows, rank " << r << " of " << ranks;
        EXPECT_LE(s.count, rows / ranks + 1);
        EXPECT_GE(s.count, rows / ranks);
        next += s.count;
      }
      EXPECT_EQ(next, rows);
    }
}

TEST(DataParallel, GradDTypeNames) {
  EXPECT_EQ(parse_grad_dtype("bf16"), GradDType::bf16);
  EXPECT_EQ(to_string(parse_grad_dtype("f32")), "f32");
  EXPECT_THROW(parse_grad_dtype("fp16"), UsageError);
}

// Gradients, losses and weights of a few steps, FP32 all-reduce, for global
// batches of 7 sequences (never divisible by 2..4 ranks) and one of 3 (a
// rank without rows at 4 ranks). Splitting the batch changes only the order
// of FP32 additions (GEMMs of other sizes, the all-reduce): about 1e-7
// relative under fp32. bf16-mixed rounds activations and the weight copy to
// BF16, which turns such a difference into a whole BF16 ulp (2^-8) wherever a
// value lies near a rounding boundary, so its tolerance is wider.
// Relative tolerances: losses, gradients and weights (max |difference| over
// max |value|).
struct Tolerance {
  double loss, grads, weights;
};

void expect_equal_to_single_rank(Precision precision, Tolerance tolerance) {
  auto world = comm::make_mpi_communicator(MPI_COMM_WORLD);
  auto self = comm::make_mpi_communicator(MPI_COMM_SELF);
  Replica dp(precision, *world, 1.0, GradDType::f32);
  Replica single(precision, *self, 1.0, GradDType::f32);
  const MarkovSource source(16, 2, 0.3, 5);
  for (int step = 0; step < 4; ++step) {
    const int rows = step == 2 ? 3 : 7;
    const SampledBatch batch = source.sample(rows, kSeq, uint64_t(step));
    const DataParallelStep a = dp.trainer.step(batch);
    const DataParallelStep b = single.trainer.step(batch);
    EXPECT_EQ(a.tokens, int64_t{rows} * kSeq);
    EXPECT_NEAR(a.loss, b.loss, tolerance.loss * b.loss) << "step " << step;
    EXPECT_NEAR(a.grad_norm, b.grad_norm, tolerance.grads * b.grad_norm) << "step " << step;
    EXPECT_EQ(a.lr, b.lr);
    // Gradients (clipped alike) stay in grads() after the step.
    EXPECT_LT(relative_difference(dp.model.parameters().grads(), single.model.parameters().grads()),
              tolerance.grads)
        << "step " << step;
  }
  EXPECT_LT(relative_difference(dp.model.parameters().values(), single.model.parameters().values()),
            tolerance.weights);
  EXPECT_TRUE(dp.trainer.replicas_agree());
  EXPECT_EQ(dp.trainer.steps(), 4);
}

TEST(DataParallel, Fp32StepEqualsSingleRank) {
  expect_equal_to_single_rank(Precision::fp32, {1e-6, 1e-5, 2e-5});
}

TEST(DataParallel, Bf16MixedStepEqualsSingleRank) {
  expect_equal_to_single_rank(Precision::bf16_mixed, {1e-4, 2e-2, 1e-3});
}

// step_local: each rank brings its own rows (here an uneven split of its own
// choosing); the global token count comes from the all-reduce.
TEST(DataParallel, LocalRowsEqualSingleRank) {
  auto world = comm::make_mpi_communicator(MPI_COMM_WORLD);
  auto self = comm::make_mpi_communicator(MPI_COMM_SELF);
  Replica dp(Precision::fp32, *world, 0, GradDType::f32);
  Replica single(Precision::fp32, *self, 0, GradDType::f32);
  const MarkovSource source(16, 2, 0.3, 5);
  const int n = world->size(), me = world->rank();
  const int rows = 2 * n + 1;  // rank 0 takes three rows, the others two
  const SampledBatch batch = source.sample(rows, kSeq, 9);
  const int first = me == 0 ? 0 : 3 + 2 * (me - 1), count = me == 0 ? 3 : 2;
  const SampledBatch mine = batch.rows(first, count);
  const DataParallelStep a = dp.trainer.step_local(mine.view());
  const DataParallelStep b = single.trainer.step(batch);
  EXPECT_EQ(a.tokens, int64_t{rows} * kSeq);
  EXPECT_NEAR(a.loss, b.loss, 1e-6 * b.loss);
  EXPECT_LT(relative_difference(dp.model.parameters().grads(), single.model.parameters().grads()),
            1e-5);
}

// BF16 all-reduce: the gradients are rounded to BF16 and summed in BF16, so
// they are close to the FP32 ones (a few BF16 ulps per reduction step), not equal.
TEST(DataParallel, Bf16GradientAllReduceIsClose) {
  auto world = comm::make_mpi_communicator(MPI_COMM_WORLD);
  auto self = comm::make_mpi_communicator(MPI_COMM_SELF);
  Replica dp(Precision::bf16_mixed, *world, 0, GradDType::bf16);
  Replica single(Precision::bf16_mixed, *self, 0, GradDType::f32);
  const MarkovSource source(16, 2, 0.3, 5);
  const SampledBatch batch = source.sample(7, kSeq, 0);
  const DataParallelStep a = dp.trainer.step(batch);
  const DataParallelStep b = single.trainer.step(batch);
  EXPECT_NEAR(a.loss, b.loss, 1e-6 * b.loss);  // the loss is reduced in FP64
  const auto g = dp.model.parameters().grads(), want = single.model.parameters().grads();
  const double error = norm_difference(g, want);
  EXPECT_GT(error, 0) << "the BF16 all-reduce should round";
  EXPECT_LT(error, 0.01 * world->size());
  // Every reduced gradient is a BF16 value.
  for (float x : g) ASSERT_EQ(bf16_to_float(float_to_bf16_rne(x)), x);
  EXPECT_TRUE(dp.trainer.replicas_agree());
}

// The global mean held-out loss over a split batch equals the single-rank one.
TEST(DataParallel, EvaluateEqualsSingleRank) {
  auto world = comm::make_mpi_communicator(MPI_COMM_WORLD);
  auto self = comm::make_mpi_communicator(MPI_COMM_SELF);
  Replica dp(Precision::fp32, *world, 1, GradDType::f32);
  Replica single(Precision::fp32, *self, 1, GradDType::f32);
  const SampledBatch batch = MarkovSource(16, 2, 0.3, 5).sample(5, kSeq, 77);
  const double want = single.trainer.evaluate(batch);
  EXPECT_NEAR(dp.trainer.evaluate(batch), want, 1e-6 * want);
}

// A replica whose weights drift is caught on every rank.
TEST(DataParallel, ReplicaCheckCatchesADifference) {
  auto world = comm::make_mpi_communicator(MPI_COMM_WORLD);
  Replica dp(Precision::bf16_pure_kahan, *world, 1, GradDType::f32);
  const SampledBatch batch = MarkovSource(16, 2, 0.3, 5).sample(5, kSeq, 1);
  dp.trainer.step(batch);
  EXPECT_TRUE(dp.trainer.replicas_agree());
  if (world->size() < 2) return;
  if (world->rank() == world->size() - 1) dp.model.parameters()[3].set(0, 0.5f);
  EXPECT_FALSE(dp.trainer.replicas_agree());
}

}  // namespace
}  // namespace paralab::model
