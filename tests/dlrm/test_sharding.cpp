// The sharding planner, batch splits and exchange layouts: shards cover
// every table exactly (rows for row-wise, columns for column-wise, uneven
// where they do not divide), the greedy placement balances, bad options are
// usage errors, and every rank's layout matches its peers' (checked on the
// real ranks with an all-to-all of the counts).
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <vector>

#include "comm/comm.hpp"
#include "core/errors.hpp"
#include "dlrm/sharding.hpp"
#include "dlrm_test_support.hpp"

namespace paralab::dlrm::test {
namespace {

// Every table's shards tile it exactly once.
void expect_covers(const DlrmConfig& c, const ShardingPlan& plan) {
  ASSERT_EQ(plan.tables.size(), static_cast<size_t>(c.tables()));
  std::vector<int> seen(plan.shards.size(), 0);
  for (int r = 0; r < plan.ranks; ++r)
    for (int id : plan.rank_shards[static_cast<size_t>(r)]) {
      ++seen[static_cast<size_t>(id)];
      EXPECT_EQ(plan.shards[static_cast<size_t>(id)].rank, r);
    }
  for (int s : seen) EXPECT_EQ(s, 1);
  for (int t = 0; t < c.tables(); ++t) {
    const TablePlacement& tp = plan.tables[static_cast<size_t>(t)];
    const bool replicated =
        std::find(plan.data_parallel_tables.begin(), plan.data_parallel_tables.end(), t) !=
        plan.data_parallel_tables.end();
    EXPECT_EQ(replicated, tp.type == ShardingType::data_parallel);
    if (replicated) {
      EXPECT_TRUE(tp.shards.empty());
      continue;
    }
    // Count how often each (row, col) is covered: exactly once.
    const int64_t rows = c.table_rows[static_cast<size_t>(t)];
    std::vector<int> cover(static_cast<size_t>(rows * c.embedding_dim), 0);
    std::vector<int> ranks;
    for (int id : tp.shards) {
      const Shard& s = plan.shards[static_cast<size_t>(id)];
      EXPECT_EQ(s.table, t);
      ranks.push_back(s.rank);
      for (int64_t r = s.row_begin; r < s.row_end; ++r)
        for (int j = s.col_begin; j < s.col_end; ++j)
          ++cover[static_cast<size_t>(r * c.embedding_dim + j)];
    }
    for (int v : cover) EXPECT_EQ(v, 1) << "table " << t;
    std::sort(ranks.begin(), ranks.end());
    EXPECT_EQ(std::unique(ranks.begin(), ranks.end()), ranks.end())
        << "table " << t << " twice on a rank";
  }
}

TEST(DlrmSharding, EveryTypeCoversTheTables) {
  DLRM_SINGLE_PROCESS();
  const DlrmConfig c = small_config(7);
  for (int ranks : {1, 2, 3, 4, 8})
    for (ShardingType type : {ShardingType::table_wise, ShardingType::row_wise,
                              ShardingType::column_wise, ShardingType::data_parallel}) {
      PlannerOptions o;
      o.type = type;
      const ShardingPlan plan = plan_sharding(c, ranks, o);
      SCOPED_TRACE(std::string(sharding_name(type)) + " on " + std::to_string(ranks));
      expect_covers(c, plan);
      for (int t = 0; t < c.tables(); ++t) {
        const TablePlacement& tp = plan.tables[static_cast<size_t>(t)];
        const size_t expect =
            type == ShardingType::table_wise ? 1
            : type == ShardingType::row_wise
                ? std::min<size_t>(static_cast<size_t>(ranks),
                                   static_cast<size_t>(c.table_rows[static_cast<size_t>(t)]))
            : type == ShardingType::column_wise ? std::min<size_t>(static_cast<size_t>(ranks), 7)
                                                : 0;
        EXPECT_EQ(tp.shards.size(), expect);
      }
    }
  // Column-wise d = 7 over 4: uneven [0,1) [1,3) [3,5) [5,7).
  PlannerOptions o;
  o.type = ShardingType::column_wise;
  const ShardingPlan plan = plan_sharding(c, 4, o);
  std::vector<int> begins;
  for (int id : plan.tables[0].shards)
    begins.push_back(plan.shards[static_cast<size_t>(id)].col_begin);
  EXPECT_EQ(begins, (std::vector<int>{0, 1, 3, 5}));
}

TEST(DlrmSharding, MixedAndReplicated) {
  DLRM_SINGLE_PROCESS();
  const DlrmConfig c = small_config(7);
  PlannerOptions o;
  o.type = ShardingType::row_wise;
  o.data_parallel_max_rows = 10;  // tables 1 (7 rows) and 3 (1 row)
  ShardingPlan plan = plan_sharding(c, 3, o);
  expect_covers(c, plan);
  EXPECT_EQ(plan.data_parallel_tables, (std::vector<int>{1, 3}));
  o.per_table = {ShardingType::column_wise, ShardingType::table_wise, ShardingType::row_wise,
                 ShardingType::data_parallel, ShardingType::table_wise};
  o.column_shards = 2;
  o.row_shards = 3;
  plan = plan_sharding(c, 3, o);
  expect_covers(c, plan);
  EXPECT_EQ(plan.tables[0].shards.size(), 2u);
  EXPECT_EQ(plan.tables[2].shards.size(), 3u);
  EXPECT_EQ(plan.data_parallel_tables, (std::vector<int>{3}));
  EXPECT_FALSE(plan.describe().empty());
  // Bad options.
  o.per_table.pop_back();
  EXPECT_THROW(plan_sharding(c, 3, o), UsageError);
  PlannerOptions bad;
  bad.row_shards = 4;
  EXPECT_THROW(plan_sharding(c, 3, bad), UsageError);
  EXPECT_THROW(plan_sharding(c, 0, {}), UsageError);
  EXPECT_THROW(parse_sharding("diagonal"), UsageError);
  EXPECT_EQ(parse_sharding("column"), ShardingType::column_wise);
  EXPECT_EQ(parse_sharding("data_parallel"), ShardingType::data_parallel);
}

TEST(DlrmSharding, MixedPlanByTableSize) {
  DLRM_SINGLE_PROCESS();
  DlrmConfig c = small_config(7);
  // Largest 10000 rows: at most 100 replicated, at least 2500 row-wise.
  c.table_rows = {10000, 50, 3000, 2000, 120};
  c.pooling.assign(c.table_rows.size(), 1);
  const PlannerOptions o = mixed_planner_options(c);
  EXPECT_EQ(o.per_table,
            (std::vector<ShardingType>{ShardingType::row_wise, ShardingType::data_parallel,
                                       ShardingType::row_wise, ShardingType::table_wise,
                                       ShardingType::table_wise}));
  const ShardingPlan plan = plan_sharding(c, 3, o);
  EXPECT_EQ(plan.tables[1].type, ShardingType::data_parallel);
  EXPECT_EQ(plan.tables[0].type, ShardingType::row_wise);
  EXPECT_EQ(plan.tables[3].type, ShardingType::table_wise);
}

TEST(DlrmSharding, GreedyBalances) {
  DLRM_SINGLE_PROCESS();
  // Criteo table-wise by memory on 4 ranks: the greedy keeps every rank
  // within one shard's cost of the least loaded.
  const DlrmConfig c = criteo_kaggle(16);
  PlannerOptions o;
  o.cost = ShardCost::memory;
  const ShardingPlan plan = plan_sharding(c, 4, o);
  expect_covers(c, plan);
  double largest = 0;
  for (const Shard& s : plan.shards) largest = std::max(largest, s.cost);
  const auto [lo, hi] = std::minmax_element(plan.rank_cost.begin(), plan.rank_cost.end());
  EXPECT_LE(*hi - *lo, largest);
  // By lookups every table-wise shard costs the same (pooling 1): 26 over 4
  // is 7, 7, 6, 6.
  const ShardingPlan by_lookups = plan_sharding(c, 4, {});
  std::vector<size_t> counts;
  for (const auto& l : by_lookups.rank_shards) counts.push_back(l.size());
  std::sort(counts.begin(), counts.end());
  EXPECT_EQ(counts, (std::vector<size_t>{6, 6, 7, 7}));
  EXPECT_NEAR(by_lookups.imbalance(), 7.0 / 6.5, 1e-12);
  // Deterministic.
  const ShardingPlan again = plan_sharding(c, 4, o);
  EXPECT_EQ(again.rank_shards, plan.rank_shards);
}

TEST(DlrmSharding, BatchSplit) {
  DLRM_SINGLE_PROCESS();
  const BatchSplit s = split_batch(10, 4);
  EXPECT_EQ(s.counts, (std::vector<int>{3, 3, 2, 2}));
  EXPECT_EQ(s.first, (std::vector<int64_t>{0, 3, 6, 8}));
  EXPECT_EQ(s.total, 10);
  const BatchSplit u = split_batch(std::vector<int>{0, 5, 1});
  EXPECT_EQ(u.first, (std::vector<int64_t>{0, 0, 5}));
  EXPECT_EQ(u.total, 6);
  EXPECT_THROW(split_batch(std::vector<int>{1, -1}), UsageError);
}

// On the real ranks: what r sends to p is what p expects from r, block by
// block; the backward layout is the transpose.
TEST(DlrmSharding, LayoutsAgreeAcrossRanks) {
  auto comm = comm::make_mpi_communicator(MPI_COMM_WORLD);
  const int n = comm->size(), r = comm->rank();
  const DlrmConfig c = small_config(7);
  PlannerOptions o;
  o.per_table = {ShardingType::column_wise, ShardingType::table_wise, ShardingType::row_wise,
                 ShardingType::data_parallel, ShardingType::row_wise};
  const ShardingPlan plan = plan_sharding(c, n, o);
  const BatchSplit split = split_batch(13, n);
  const ExchangeLayout l = forward_exchange_layout(plan, split, r);
  std::vector<size_t> expected(static_cast<size_t>(n));
  comm->alltoall(l.send_counts.data(), expected.data(), 1, DType::i64);
  EXPECT_EQ(expected, l.recv_counts);
  size_t blocks_floats = 0;
  for (int p = 0; p < n; ++p) {
    const auto& sb = l.send_blocks[static_cast<size_t>(p)];
    EXPECT_EQ(sb.size(), plan.rank_shards[static_cast<size_t>(r)].size());
    size_t offset = l.send_displs[static_cast<size_t>(p)];
    for (const ExchangeBlock& b : sb) {
      EXPECT_EQ(b.offset, offset);
      EXPECT_EQ(b.rows, split.counts[static_cast<size_t>(p)]);
      offset += b.floats();
      blocks_floats += b.floats();
    }
    for (const ExchangeBlock& b : l.recv_blocks[static_cast<size_t>(p)])
      EXPECT_EQ(b.rows, split.counts[static_cast<size_t>(r)]);
  }
  EXPECT_EQ(blocks_floats, l.send_total);
  const ExchangeLayout t = l.transposed();
  EXPECT_EQ(t.send_counts, l.recv_counts);
  EXPECT_EQ(t.recv_total, l.send_total);
}

}  // namespace
}  // namespace paralab::dlrm::test
