// Sharded training equals single-rank training: on every rank count, for
// every sharding type (table-, row-, column-wise, replicated, and a mix),
// both embedding optimizers, and uneven everything (13 samples, 5 tables, d
// = 7, and a split of the batch that is not even), the global losses and all
// parameters after a few steps match a single-rank Dlrm trained on the whole
// batches to ~1e-5. Every rank runs the single-rank reference itself.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "comm/comm.hpp"
#include "dlrm/distributed.hpp"
#include "dlrm/train.hpp"
#include "dlrm_test_support.hpp"

namespace paralab::dlrm::test {
namespace {

constexpr double kTolerance = 1e-5;

// max |a - b| / max |b| over a tensor.
double relative_error(std::span<const float> a, std::span<const float> b) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    diff = std::max(diff, std::abs(double{a[i]} - b[i]));
    scale = std::max(scale, std::abs(double{b[i]}));
  }
  return scale > 0 ? diff / scale : diff;
}

DlrmConfig config() {
  DlrmConfig c = small_config(7);
  c.embedding_init_scale = 0.3f;
  return c;
}

DataConfig data_config() {
  DataConfig d;
  d.seed = 31;
  d.calibration_samples = 256;
  return d;
}

struct Case {
  std::string name;
  PlannerOptions planner;
};

std::vector<Case> cases() {
  std::vector<Case> v;
  for (ShardingType type : {ShardingType::table_wise, ShardingType::row_wise,
                            ShardingType::column_wise, ShardingType::data_parallel}) {
    PlannerOptions o;
    o.type = type;
    v.push_back({sharding_name(type), o});
  }
  PlannerOptions mixed;
  mixed.per_table = {ShardingType::column_wise, ShardingType::table_wise, ShardingType::row_wise,
                     ShardingType::data_parallel, ShardingType::row_wise};
  v.push_back({"mixed", mixed});
  return v;
}

// Uneven slices of 13 samples unlike split_batch's: rank r gets up to 3 r +
// 2, the last rank the rest (none on 4 ranks: 2, 5, 6, 0).
BatchSplit uneven_split(int ranks) {
  std::vector<int> counts(static_cast<size_t>(ranks), 0);
  int left = 13;
  for (int r = 0; r + 1 < ranks; ++r) {
    counts[static_cast<size_t>(r)] = std::min(left, 3 * r + 2);
    left -= counts[static_cast<size_t>(r)];
  }
  counts.back() = left;
  return split_batch(counts);
}

void compare(DistributedDlrm& dist, Dlrm& ref, const std::string& what) {
  EXPECT_LT(relative_error(dist.bottom().parameters(), ref.bottom().parameters()), kTolerance)
      << what << ": bottom MLP";
  EXPECT_LT(relative_error(dist.top().parameters(), ref.top().parameters()), kTolerance)
      << what << ": top MLP";
  const DlrmConfig& c = ref.config();
  const int d = c.embedding_dim;
  for (size_t i = 0; i < dist.shard_count(); ++i) {
    const EmbeddingShard& s = dist.shard(i);
    const EmbeddingShard& whole = ref.table(s.table());
    std::vector<float> expect, expect_state;
    for (int64_t r = s.row_begin(); r < s.row_end(); ++r) {
      for (int j = s.col_begin(); j < s.col_end(); ++j)
        expect.push_back(whole.weights()[static_cast<size_t>(r * d + j)]);
      expect_state.push_back(whole.adagrad_state()[static_cast<size_t>(r)]);
    }
    EXPECT_LT(relative_error(s.weights(), expect), kTolerance)
        << what << ": table " << s.table() << " shard " << dist.shard_id(i);
    EXPECT_LT(relative_error(s.adagrad_state(), expect_state), kTolerance)
        << what << ": Adagrad state of table " << s.table();
  }
  for (int t = 0; t < c.tables(); ++t)
    if (EmbeddingShard* rep = dist.replicated(t)) {
      EXPECT_LT(relative_error(rep->weights(), ref.table(t).weights()), kTolerance)
          << what << ": replicated table " << t;
      EXPECT_LT(relative_error(rep->adagrad_state(), ref.table(t).adagrad_state()), kTolerance)
          << what << ": replicated Adagrad state " << t;
    }
}

void run_case(const Case& k, EmbeddingOptimizer optimizer, bool uneven) {
  auto comm = comm::make_mpi_communicator(MPI_COMM_WORLD);
  const int n = comm->size(), rank = comm->rank();
  const DlrmConfig c = config();
  SyntheticClicks data(c, data_config());
  const ShardingPlan plan = plan_sharding(c, n, k.planner);
  DistributedDlrm dist(c, plan, *comm, 77);
  Dlrm ref(c, 77);
  compare(dist, ref, k.name + " at init");
  OptimizerConfig opt;
  opt.mlp_lr = 0.5f;
  opt.embedding_lr = optimizer == EmbeddingOptimizer::sgd ? 2.0f : 0.2f;
  opt.embedding = optimizer;
  const BatchSplit split = uneven ? uneven_split(n) : split_batch(13, n);
  const std::vector<float> table0(ref.table(0).weights().begin(), ref.table(0).weights().end());
  for (int step = 0; step < 3; ++step) {
    const Batch whole = data.make_batch(Split::train, step, 0, 13);
    const Batch local = data.make_batch(Split::train, step, split.first[static_cast<size_t>(rank)],
                                        split.counts[static_cast<size_t>(rank)]);
    const double expect = ref.train_step(whole, opt);
    const StepStats stats = dist.train_step(local, split, opt);
    EXPECT_NEAR(stats.loss, expect, kTolerance * std::abs(expect)) << k.name << " step " << step;
  }
  compare(dist, ref, k.name + " after 3 steps");
  // The steps moved the parameters far more than the tolerance.
  EXPECT_GT(relative_error(ref.table(0).weights(), table0), 1e-2);
}

class DlrmDistributed : public ::testing::TestWithParam<std::tuple<int, EmbeddingOptimizer, bool>> {
};

TEST_P(DlrmDistributed, EqualsSingleRank) {
  const auto [index, optimizer, uneven] = GetParam();
  run_case(cases()[static_cast<size_t>(index)], optimizer, uneven);
}

INSTANTIATE_TEST_SUITE_P(AllShardings, DlrmDistributed,
                         ::testing::Combine(::testing::Range(0, 5),
                                            ::testing::Values(EmbeddingOptimizer::sgd,
                                                              EmbeddingOptimizer::rowwise_adagrad),
                                            ::testing::Bool()),
                         [](const auto& param_info) {
                           const auto& p = param_info.param;
                           return cases()[static_cast<size_t>(std::get<0>(p))].name +
                                  (std::get<1>(p) == EmbeddingOptimizer::sgd ? "_sgd"
                                                                             : "_adagrad") +
                                  (std::get<2>(p) ? "_uneven" : "_even");
                         });

// The exchange hook sees every pooled block: a pass-through subclass is
// called once per direction per step with consistent blocks, and one that
// corrupts the payload changes the result (the comparison above can fail).
class CountingExchange : public EmbeddingExchange {
 public:
  int forwards = 0, backwards = 0;
  float corrupt = 0;
  void forward(comm::Communicator& comm, const ExchangeLayout& layout, std::span<const float> send,
               std::span<float> recv, int64_t iteration) override {
    ++forwards;
    check(layout, send.size());
    EmbeddingExchange::forward(comm, layout, send, recv, iteration);
    for (float& v : recv) v += corrupt;
  }
  void backward(comm::Communicator& comm, const ExchangeLayout& layout, std::span<const float> send,
                std::span<float> recv, int64_t iteration) override {
    ++backwards;
    check(layout, send.size());
    EmbeddingExchange::backward(comm, layout, send, recv, iteration);
  }
  static void check(const ExchangeLayout& layout, size_t send_size) {
    size_t floats = 0;
    for (const auto& peer : layout.send_blocks)
      for (const ExchangeBlock& b : peer) floats += b.floats();
    EXPECT_EQ(floats, send_size);
  }
};

TEST(DlrmDistributedHook, ExchangeIsTheOnlyPath) {
  auto comm = comm::make_mpi_communicator(MPI_COMM_WORLD);
  const int n = comm->size(), rank = comm->rank();
  const DlrmConfig c = config();
  SyntheticClicks data(c, data_config());
  PlannerOptions o;
  o.type = ShardingType::row_wise;
  DistributedDlrm plain(c, plan_sharding(c, n, o), *comm, 5);
  DistributedDlrm hooked(c, plan_sharding(c, n, o), *comm, 5);
  DistributedDlrm corrupted(c, plan_sharding(c, n, o), *comm, 5);
  CountingExchange pass, bad;
  bad.corrupt = 0.05f;
  hooked.set_exchange(&pass);
  corrupted.set_exchange(&bad);
  const BatchSplit split = split_batch(13, n);
  OptimizerConfig opt;
  for (int step = 0; step < 2; ++step) {
    const Batch local = data.make_batch(Split::train, step, split.first[static_cast<size_t>(rank)],
                                        split.counts[static_cast<size_t>(rank)]);
    EXPECT_EQ(plain.train_step(local, split, opt).loss, hooked.train_step(local, split, opt).loss);
    corrupted.train_step(local, split, opt);
  }
  // The corruption shows in the logits and in the parameters.
  const Batch local = data.make_batch(Split::eval, 0, split.first[static_cast<size_t>(rank)],
                                      split.counts[static_cast<size_t>(rank)]);
  std::vector<float> a(static_cast<size_t>(local.size)), x(a.size());
  plain.forward(local, split, a);
  corrupted.forward(local, split, x);
  if (!a.empty()) {
    EXPECT_GT(relative_error(x, a), 100 * kTolerance);
  }
  EXPECT_GT(relative_error(corrupted.top().parameters(), plain.top().parameters()),
            100 * kTolerance);
  EXPECT_EQ(pass.forwards, 2);
  EXPECT_EQ(pass.backwards, 2);
  EXPECT_EQ(hooked.iteration(), 2);
}

// Distributed evaluation and training loops agree with single-rank ones.
TEST(DlrmDistributedLoops, TrainAndEvaluate) {
  auto comm = comm::make_mpi_communicator(MPI_COMM_WORLD);
  const DlrmConfig c = config();
  SyntheticClicks data(c, data_config());
  PlannerOptions o;
  o.per_table = {ShardingType::column_wise, ShardingType::table_wise, ShardingType::row_wise,
                 ShardingType::data_parallel, ShardingType::row_wise};
  DistributedDlrm dist(c, plan_sharding(c, comm->size(), o), *comm, 9);
  Dlrm ref(c, 9);
  OptimizerConfig opt;
  opt.embedding = EmbeddingOptimizer::rowwise_adagrad;
  const std::vector<double> a = train(dist, data, 5, 37, opt);
  const std::vector<double> b = train(ref, data, 5, 37, opt);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], kTolerance * b[i]);
  const EvalResult ea = evaluate(dist, data, 2, 101);
  const EvalResult eb = evaluate(ref, data, 2, 101);
  EXPECT_EQ(ea.samples, 202);
  EXPECT_NEAR(ea.auc, eb.auc, 1e-3);
  EXPECT_NEAR(ea.log_loss, eb.log_loss, kTolerance * eb.log_loss);
  EXPECT_EQ(ea.click_rate, eb.click_rate);
}

}  // namespace
}  // namespace paralab::dlrm::test
