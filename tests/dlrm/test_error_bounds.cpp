// The dual-level error bounds: schedule values, class assignment (tertiles
// and thresholds), the policy's product, and the sensitivity measurement:
// zero at bound 0, growing with the bound, deterministic and the same on
// every rank.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "comm/comm.hpp"
#include "core/errors.hpp"
#include "dlrm/data.hpp"
#include "dlrm/error_bounds.hpp"
#include "dlrm_test_support.hpp"

namespace paralab::dlrm::test {
namespace {

namespace compress = kernels::compress;

TEST(DlrmErrorBounds, ScheduleValues) {
  IterationSchedule s;
  EXPECT_EQ(s.multiplier(0), 1.0);
  EXPECT_EQ(s.multiplier(1000), 1.0);
  s = {ScheduleKind::step, 8, 10, 1};
  EXPECT_EQ(s.multiplier(0), 8.0);
  EXPECT_EQ(s.multiplier(9), 8.0);
  EXPECT_EQ(s.multiplier(10), 4.0);
  EXPECT_EQ(s.multiplier(25), 2.0);
  EXPECT_EQ(s.multiplier(30), 1.0);
  EXPECT_EQ(s.multiplier(1000), 1.0);
  s = {ScheduleKind::linear, 4, 10, 1};
  EXPECT_DOUBLE_EQ(s.multiplier(0), 4.0);
  EXPECT_DOUBLE_EQ(s.multiplier(5), 2.5);
  EXPECT_DOUBLE_EQ(s.multiplier(10), 1.0);
  EXPECT_DOUBLE_EQ(s.multiplier(50), 1.0);
  s = {ScheduleKind::log, 4, 1, 1};
  EXPECT_DOUBLE_EQ(s.multiplier(0), 4.0);
  EXPECT_NEAR(s.multiplier(1), 4 / (1 + std::log(2.0)), 1e-12);
  EXPECT_EQ(s.multiplier(100), 1.0);  // 4 / (1 + ln 101) < 1: clamped
  for (ScheduleKind k :
       {ScheduleKind::constant, ScheduleKind::step, ScheduleKind::linear, ScheduleKind::log}) {
    const IterationSchedule q{k, 6, 7, 0.5};
    q.validate();
    double prev = q.multiplier(0);
    for (int64_t t = 1; t < 2000; ++t) {
      const double m = q.multiplier(t);
      ASSERT_GE(m, 1.0);
      ASSERT_LE(m, prev) << schedule_name(k) << " at " << t;
      prev = m;
    }
    EXPECT_EQ(parse_schedule(schedule_name(k)), k);
  }
  EXPECT_THROW((IterationSchedule{ScheduleKind::linear, 0.5, 10, 1}.validate()), UsageError);
  EXPECT_THROW((IterationSchedule{ScheduleKind::linear, 2, 0, 1}.validate()), UsageError);
  EXPECT_THROW(parse_schedule("cosine"), UsageError);
}

TEST(DlrmErrorBounds, Classes) {
  const std::vector<double> s = {0.3, 0.1, 0.5, 0.2, 0.9, 0.4};
  using C = BoundClass;
  EXPECT_EQ(assign_classes(s),
            (std::vector<C>{C::base, C::loose, C::tight, C::loose, C::tight, C::base}));
  ClassOptions o;
  o.rule = ClassRule::thresholds;  // median 0.3: > 0.6 tight, < 0.15 loose
  EXPECT_EQ(assign_classes(s, o),
            (std::vector<C>{C::base, C::loose, C::base, C::base, C::tight, C::base}));
  // Ties go by table id; one table is loose (the lowest third of one).
  EXPECT_EQ(assign_classes(std::vector<double>{1, 1, 1}),
            (std::vector<C>{C::loose, C::base, C::tight}));
  EXPECT_EQ(assign_classes(std::vector<double>{2}), (std::vector<C>{C::loose}));
}

TEST(DlrmErrorBounds, Policy) {
  BoundPolicy p;
  p.forward_base = {compress::ErrorBound::absolute, 1e-3};
  p.backward_base = {compress::ErrorBound::relative, 1e-2};
  p.schedule = {ScheduleKind::linear, 4, 10, 1};
  p.classes = {BoundClass::tight, BoundClass::base, BoundClass::loose};
  p.validate();
  EXPECT_DOUBLE_EQ(p.bound(0, 0, Direction::forward).value, 0.5 * 1e-3 * 4);
  EXPECT_DOUBLE_EQ(p.bound(1, 5, Direction::forward).value, 1e-3 * 2.5);
  EXPECT_DOUBLE_EQ(p.bound(2, 10, Direction::forward).value, 2e-3);
  EXPECT_DOUBLE_EQ(p.bound(7, 100, Direction::forward).value, 1e-3);  // no class: base
  EXPECT_EQ(p.bound(0, 0, Direction::forward).mode, compress::ErrorBound::absolute);
  EXPECT_EQ(p.bound(0, 0, Direction::backward).mode, compress::ErrorBound::relative);
  EXPECT_DOUBLE_EQ(p.bound(2, 0, Direction::backward).value, 2 * 1e-2 * 4);
  p.schedule_backward = false;
  EXPECT_DOUBLE_EQ(p.bound(2, 0, Direction::backward).value, 2 * 1e-2);
  EXPECT_FALSE(p.describe().empty());
}

TEST(DlrmErrorBounds, SensitivityMeasurement) {
  auto comm = comm::make_mpi_communicator(MPI_COMM_WORLD);
  DlrmConfig c = small_config(6);
  c.embedding_init_scale = 0.3f;
  DataConfig dc;
  dc.seed = 3;
  dc.calibration_samples = 256;
  SyntheticClicks data(c, dc);
  const Dlrm model(c, 21);
  const Batch batch = data.make_batch(Split::calibration, 1, 0, 200);
  const compress::ErrorBound eb{compress::ErrorBound::absolute, 1e-2};
  const std::vector<double> s = measure_table_sensitivity(model, batch, eb);
  ASSERT_EQ(s.size(), 5u);
  EXPECT_EQ(s, measure_table_sensitivity(model, batch, eb));  // deterministic
  const std::vector<double> zero =
      measure_table_sensitivity(model, batch, {compress::ErrorBound::absolute, 0});
  const std::vector<double> twice =
      measure_table_sensitivity(model, batch, {compress::ErrorBound::absolute, 2e-2});
  for (size_t t = 0; t < s.size(); ++t) {
    EXPECT_EQ(zero[t], 0.0);
    EXPECT_GT(s[t], 0.0) << "table " << t;
    EXPECT_GT(twice[t], 1.5 * s[t]) << "table " << t;  // about linear in the bound
  }
  const std::vector<double> rel =
      measure_table_sensitivity(model, batch, {compress::ErrorBound::relative, 1e-2});
  for (double v : rel) EXPECT_GE(v, 0.0);
  // The same on every rank, bit for bit, before and after agreeing.
  std::vector<double> lo(s.size()), hi(s.size());
  comm->allreduce(s.data(), lo.data(), s.size(), DType::f64, comm::ReduceOp::min);
  comm->allreduce(s.data(), hi.data(), s.size(), DType::f64, comm::ReduceOp::max);
  EXPECT_EQ(lo, hi);
  std::vector<double> agreed = s;
  agree_on_rank0(*comm, agreed);
  EXPECT_EQ(agreed, lo);
  const std::vector<BoundClass> classes = assign_classes(agreed);
  std::vector<int> mine(classes.size()), low(classes.size()), high(classes.size());
  for (size_t t = 0; t < classes.size(); ++t) mine[t] = static_cast<int>(classes[t]);
  comm->allreduce(mine.data(), low.data(), mine.size(), DType::i32, comm::ReduceOp::min);
  comm->allreduce(mine.data(), high.data(), mine.size(), DType::i32, comm::ReduceOp::max);
  EXPECT_EQ(low, high);
}

}  // namespace
}  // namespace paralab::dlrm::test
