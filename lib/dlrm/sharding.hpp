// sharding.hpp: where DLRM's embedding tables live across the ranks of a
// communicator, how the global batch is split, and the layout of the
// embedding all-to-all that follows from both (distributed.hpp runs it).
//
// Sharding types (per table):
//   table_wise     the whole table on one rank.
//   row_wise       rows split into contiguous ranges, one shard per rank
//                  (row_shards of them); each shard pools only the indices
//                  in its range, so the batch owner receives partial pooled
//                  sums and adds them up (a reduce-scatter done as an
//                  all-to-all plus a local sum, in source-rank order).
//   column_wise    the embedding dimension split into contiguous column
//                  ranges (column_shards of them, default min(ranks, d);
//                  uneven when d does not divide); each shard pools its
//                  columns for every sample and the batch owner
//                  concatenates. Row-wise Adagrad needs the whole row's mean
//                  squared gradient: the shards of a table exchange their
//                  per-row partial sums (distributed.cpp).
//   data_parallel  replicated on every rank; each rank pools its own
//                  samples, and the dense gradient is all-reduced with the
//                  MLPs'. For small tables.
//
// The planner (plan_sharding) is plain arithmetic on the config, so every
// rank computes the same plan. Tables with at most data_parallel_max_rows
// rows are replicated; the others take the requested type (or their own from
// per_table) and are cut into shards. Shards are then placed greedily: in
// order of decreasing cost (ties: table, then shard number), each goes to the
// rank with the least total cost so far (ties: less memory, then the lowest
// rank) among the ranks that hold no shard of its table yet (all ranks once
// every rank holds one). The cost of a shard per sample of the batch:
//   lookups: pooling x cols x (rows of the shard / rows of the table) for the
//            lookups, plus cols for the pooled row it sends (the default);
//   memory:  rows x cols.
//
// The batch: the global batch of B samples is split into contiguous slices,
// rank p owning samples [first[p], first[p] + count[p]) (split_batch: the
// first B mod ranks ranks get one more; any counts may be given, zero too).
//
// The forward exchange (pooled embeddings, owners -> batch owners), for this
// rank r: the send buffer holds, for each peer p in rank order, for each
// shard s that r holds (plan.rank_shards[r], ascending shard id), the block
// [count[p], cols(s)] of pooled (partial, for row-wise) sums of p's samples,
// row-major. The receive buffer holds, for each source q in rank order, for
// each shard of q, the block [count[r], cols(s)]. Counts and displacements
// are in floats. The backward exchange (gradients of the pooled embeddings,
// batch owners -> owners) is the exact transpose: the same blocks with send
// and receive swapped (ExchangeLayout::transposed). Each block says its
// table and columns, so a compressor can treat each table on its own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "dlrm/model.hpp"

namespace paralab::dlrm {

enum class ShardingType { table_wise, row_wise, column_wise, data_parallel };
const char* sharding_name(ShardingType type);  // "table", "row", "column", "data"
// Accepts the names above and table_wise, row_wise, column_wise,
// data_parallel; UsageError otherwise.
ShardingType parse_sharding(std::string_view name);

enum class ShardCost { lookups, memory };

struct Shard {
  int table = 0;
  int part = 0;  // its number within the table
  int rank = 0;
  int64_t row_begin = 0, row_end = 0;
  int col_begin = 0, col_end = 0;
  double cost = 0;
  int64_t rows() const { return row_end - row_begin; }
  int cols() const { return col_end - col_begin; }
};

struct TablePlacement {
  ShardingType type = ShardingType::table_wise;
  std::vector<int> shards;  // ids into ShardingPlan::shards; empty for data_parallel
};

struct ShardingPlan {
  int ranks = 1;
  std::vector<TablePlacement> tables;
  std::vector<Shard> shards;                  // ordered by (table, part)
  std::vector<std::vector<int>> rank_shards;  // per rank: its shard ids, ascending
  std::vector<double> rank_cost;              // per rank: sum of its shards' costs
  std::vector<double> rank_memory;            // per rank: floats of its shards
  std::vector<int> data_parallel_tables;      // replicated tables, ascending

  // Max over mean of the ranks' costs (1 = perfectly balanced).
  double imbalance() const;
  std::string describe() const;  // one line per rank
};

struct PlannerOptions {
  ShardingType type = ShardingType::table_wise;  // for tables not replicated
  std::vector<ShardingType> per_table;           // when not empty: one type per table
  int64_t data_parallel_max_rows = 0;            // replicate tables this small (0: none)
  int row_shards = 0;                            // row-wise shards per table (0: ranks)
  int column_shards = 0;                         // column-wise shards per table (0: min(ranks, d))
  ShardCost cost = ShardCost::lookups;
};

// A mixed plan by table size, as production DLRM planners do: tables of at
// most 1% of the largest table's rows replicated (no exchange), those of at
// least a quarter of it split row-wise, the rest whole on one rank.
PlannerOptions mixed_planner_options(const DlrmConfig& config);

// Throws UsageError for a bad config, per_table of the wrong length, or
// shard counts above the ranks. Shard counts are capped by the rows or
// columns there are.
ShardingPlan plan_sharding(const DlrmConfig& config, int ranks, const PlannerOptions& options = {});

// Contiguous slices of the global batch.
struct BatchSplit {
  int64_t total = 0;
  std::vector<int> counts;     // per rank
  std::vector<int64_t> first;  // per rank: its first sample
};
BatchSplit split_batch(int64_t total, int ranks);  // the first total % ranks get one more
BatchSplit split_batch(const std::vector<int>& counts);

// One block of an exchange buffer: shard `shard` (table, columns) for `rows`
// samples, starting `offset` floats into the whole buffer.
struct ExchangeBlock {
  int shard = 0;
  int table = 0;
  int col_begin = 0, cols = 0;
  int rows = 0;
  size_t offset = 0;
  size_t floats() const { return static_cast<size_t>(rows) * static_cast<size_t>(cols); }
};

// One rank's view of one all-to-all: per peer, the counts and displacements
// (floats) and the blocks in buffer order, for each direction of the data.
struct ExchangeLayout {
  std::vector<size_t> send_counts, send_displs, recv_counts, recv_displs;
  std::vector<std::vector<ExchangeBlock>> send_blocks, recv_blocks;
  size_t send_total = 0, recv_total = 0;
  // The same exchange run the other way (the backward of the forward).
  ExchangeLayout transposed() const;
};

// The forward exchange of `rank` (see the top of this file).
ExchangeLayout forward_exchange_layout(const ShardingPlan& plan, const BatchSplit& split, int rank);

}  // namespace paralab::dlrm
