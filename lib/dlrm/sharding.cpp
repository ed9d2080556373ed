// sharding.cpp: the sharding planner, batch splits and exchange layouts
// (sharding.hpp).
#include "dlrm/sharding.hpp"

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <tuple>

#include "core/errors.hpp"

namespace paralab::dlrm {

const char* sharding_name(ShardingType type) {
  switch (type) {
    case ShardingType::table_wise:
      return "table";
    case ShardingType::row_wise:
      return "row";
    case ShardingType::column_wise:
      return "column";
    case ShardingType::data_parallel:
      return "data";
  }
  return "?";
}

ShardingType parse_sharding(std::string_view name) {
  if (name == "table" || name == "table_wise") return ShardingType::table_wise;
  if (name == "row" || name == "row_wise") return ShardingType::row_wise;
  if (name == "column" || name == "column_wise") return ShardingType::column_wise;
  if (name == "data" || name == "data_parallel") return ShardingType::data_parallel;
  throw UsageError("unknown sharding '" + std::string(name) +
                   "' (expected table, row, column or data)");
}

double ShardingPlan::imbalance() const {
  if (rank_cost.empty()) return 1;
  const double total = std::accumulate(rank_cost.begin(), rank_cost.end(), 0.0);
  if (total <= 0) return 1;
  return *std::max_element(rank_cost.begin(), rank_cost.end()) /
         (total / static_cast<double>(rank_cost.size()));
}

std::string ShardingPlan::describe() const {
  std::string s;
  char buf[160];
  for (int r = 0; r < ranks; ++r) {
    std::snprintf(buf, sizeof buf, "rank %d: cost %.0f, %.1f MB:", r,
                  rank_cost[static_cast<size_t>(r)], rank_memory[static_cast<size_t>(r)] * 4e-6);
    s += buf;
    for (int id : rank_shards[static_cast<size_t>(r)]) {
      const Shard& sh = shards[static_cast<size_t>(id)];
      const ShardingType type = tables[static_cast<size_t>(sh.table)].type;
      if (type == ShardingType::table_wise)
        std::snprintf(buf, sizeof buf, " t%d", sh.table);
      else if (type == ShardingType::row_wise)
        std::snprintf(buf, sizeof buf, " t%d[rows %lld-%lld)", sh.table,
                      static_cast<long long>(sh.row_begin), static_cast<long long>(sh.row_end));
      else
        std::snprintf(buf, sizeof buf, " t%d[cols %d-%d)", sh.table, sh.col_begin, sh.col_end);
      s += buf;
    }
    s += '\n';
  }
  if (!data_parallel_tables.empty()) {
    s += "replicated:";
    for (int t : data_parallel_tables) s += " t" + std::to_string(t);
    s += '\n';
  }
  return s;
}

ShardingPlan plan_sharding(const DlrmConfig& config, int ranks, const PlannerOptions& options) {
  config.validate();
  if (ranks < 1) throw UsageError("sharding: needs at least one rank");
  if (!options.per_table.empty() &&
      options.per_table.size() != static_cast<size_t>(config.tables()))
    throw UsageError("sharding: " + std::to_string(options.per_table.size()) +
                     " per-table types for " + std::to_string(config.tables()) + " tables");
  if (options.row_shards < 0 || options.row_shards > ranks)
    throw UsageError("sharding: row shards per table must be 0 (all ranks) .. " +
                     std::to_string(ranks) + " (got " + std::to_string(options.row_shards) + ")");
  if (options.column_shards < 0 || options.column_shards > ranks)
    throw UsageError("sharding: column shards per table must be 0 (min(ranks, d)) .. " +
                     std::to_string(ranks) + " (got " + std::to_string(options.column_shards) +
                     ")");
  if (options.data_parallel_max_rows < 0)
    throw UsageError("sharding: the data-parallel row limit must be >= 0");

  ShardingPlan plan;
  plan.ranks = ranks;
  plan.tables.resize(static_cast<size_t>(config.tables()));
  const int d = config.embedding_dim;
  for (int t = 0; t < config.tables(); ++t) {
    const int64_t rows = config.table_rows[static_cast<size_t>(t)];
    TablePlacement& tp = plan.tables[static_cast<size_t>(t)];
    if (!options.per_table.empty())
      tp.type = options.per_table[static_cast<size_t>(t)];
    else
      tp.type = rows <= options.data_parallel_max_rows ? ShardingType::data_parallel : options.type;
    if (tp.type == ShardingType::data_parallel) {
      plan.data_parallel_tables.push_back(t);
      continue;
    }
    int parts = 1;
    if (tp.type == ShardingType::row_wise)
      parts = static_cast<int>(
          std::min<int64_t>(options.row_shards ? options.row_shards : ranks, rows));
    if (tp.type == ShardingType::column_wise)
      parts = std::min(options.column_shards ? options.column_shards : ranks, d);
    for (int i = 0; i < parts; ++i) {
      Shard s;
      s.table = t;
      s.part = i;
      s.row_begin = 0, s.row_end = rows;
      s.col_begin = 0, s.col_end = d;
      if (tp.type == ShardingType::row_wise) {
        s.row_begin = rows * i / parts;
        s.row_end = rows * (i + 1) / parts;
      } else if (tp.type == ShardingType::column_wise) {
        s.col_begin = d * i / parts;
        s.col_end = d * (i + 1) / parts;
      }
      const double row_fraction = static_cast<double>(s.rows()) / static_cast<double>(rows);
      s.cost = options.cost == ShardCost::memory
                   ? static_cast<double>(s.rows()) * s.cols()
                   : config.pooling[static_cast<size_t>(t)] * s.cols() * row_fraction + s.cols();
      tp.shards.push_back(static_cast<int>(plan.shards.size()));
      plan.shards.push_back(s);
    }
  }

  // Greedy placement, largest first.
  std::vector<int> order(plan.shards.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) {
    const Shard& x = plan.shards[static_cast<size_t>(a)];
    const Shard& y = plan.shards[static_cast<size_t>(b)];
    return std::tuple(-x.cost, x.table, x.part) < std::tuple(-y.cost, y.table, y.part);
  });
  plan.rank_cost.assign(static_cast<size_t>(ranks), 0.0);
  plan.rank_memory.assign(static_cast<size_t>(ranks), 0.0);
  plan.rank_shards.assign(static_cast<size_t>(ranks), {});
  std::vector<std::vector<char>> holds(static_cast<size_t>(config.tables()),
                                       std::vector<char>(static_cast<size_t>(ranks), 0));
  for (int id : order) {
    Shard& s = plan.shards[static_cast<size_t>(id)];
    std::vector<char>& held = holds[static_cast<size_t>(s.table)];
    const bool all_hold = std::all_of(held.begin(), held.end(), [](char h) { return h != 0; });
    int best = -1;
    for (int r = 0; r < ranks; ++r) {
      if (!all_hold && held[static_cast<size_t>(r)]) continue;
      if (best < 0 || std::tuple(plan.rank_cost[static_cast<size_t>(r)],
                                 plan.rank_memory[static_cast<size_t>(r)]) <
                          std::tuple(plan.rank_cost[static_cast<size_t>(best)],
                                     plan.rank_memory[static_cast<size_t>(best)]))
        best = r;
    }
    s.rank = best;
    held[static_cast<size_t>(best)] = 1;
    plan.rank_cost[static_cast<size_t>(best)] += s.cost;
    plan.rank_memory[static_cast<size_t>(best)] += static_cast<double>(s.rows()) * s.cols();
    plan.rank_shards[static_cast<size_t>(best)].push_back(id);
  }
  for (auto& list : plan.rank_shards) std::sort(list.begin(), list.end());
  return plan;
}

BatchSplit split_batch(int64_t total, int ranks) {
  if (ranks < 1) throw UsageError("batch split: needs at least one rank");
  if (total < 0) throw UsageError("batch split: the batch must not be negative");
  std::vector<int> counts(static_cast<size_t>(ranks));
  for (int r = 0; r < ranks; ++r)
    counts[static_cast<size_t>(r)] = static_cast<int>(total / ranks + (r < total % ranks ? 1 : 0));
  return split_batch(counts);
}

BatchSplit split_batch(const std::vector<int>& counts) {
  if (counts.empty()) throw UsageError("batch split: needs at least one rank");
  BatchSplit s;
  s.counts = counts;
  for (int c : counts) {
    if (c < 0) throw UsageError("batch split: a rank's sample count is negative");
    s.first.push_back(s.total);
    s.total += c;
  }
  return s;
}

ExchangeLayout ExchangeLayout::transposed() const {
  ExchangeLayout t;
  t.send_counts = recv_counts, t.send_displs = recv_displs, t.send_blocks = recv_blocks;
  t.recv_counts = send_counts, t.recv_displs = send_displs, t.recv_blocks = send_blocks;
  t.send_total = recv_total, t.recv_total = send_total;
  return t;
}

ExchangeLayout forward_exchange_layout(const ShardingPlan& plan, const BatchSplit& split,
                                       int rank) {
  if (static_cast<int>(split.counts.size()) != plan.ranks)
    throw UsageError("exchange: the batch split has " + std::to_string(split.counts.size()) +
                     " ranks, the sharding plan " + std::to_string(plan.ranks));
  if (rank < 0 || rank >= plan.ranks) throw UsageError("exchange: rank out of range");
  const auto n = static_cast<size_t>(plan.ranks);
  ExchangeLayout l;
  l.send_counts.assign(n, 0), l.send_displs.assign(n, 0);
  l.recv_counts.assign(n, 0), l.recv_displs.assign(n, 0);
  l.send_blocks.assign(n, {}), l.recv_blocks.assign(n, {});
  auto block = [&](int id, int rows, size_t offset) {
    const Shard& s = plan.shards[static_cast<size_t>(id)];
    return ExchangeBlock{id, s.table, s.col_begin, s.cols(), rows, offset};
  };
  for (size_t p = 0; p < n; ++p) {
    l.send_displs[p] = l.send_total;
    for (int id : plan.rank_shards[static_cast<size_t>(rank)]) {
      l.send_blocks[p].push_back(block(id, split.counts[p], l.send_total));
      l.send_total += l.send_blocks[p].back().floats();
    }
    l.send_counts[p] = l.send_total - l.send_displs[p];
  }
  for (size_t q = 0; q < n; ++q) {
    l.recv_displs[q] = l.recv_total;
    for (int id : plan.rank_shards[q]) {
      l.recv_blocks[q].push_back(block(id, split.counts[static_cast<size_t>(rank)], l.recv_total));
      l.recv_total += l.recv_blocks[q].back().floats();
    }
    l.recv_counts[q] = l.recv_total - l.recv_displs[q];
  }
  return l;
}

PlannerOptions mixed_planner_options(const DlrmConfig& config) {
  // One type per table (per_table takes precedence over data_parallel_max_rows).
  PlannerOptions p;
  const int64_t largest = *std::max_element(config.table_rows.begin(), config.table_rows.end());
  for (int64_t rows : config.table_rows)
    p.per_table.push_back(100 * rows <= largest ? ShardingType::data_parallel
                          : 4 * rows >= largest ? ShardingType::row_wise
                                                : ShardingType::table_wise);
  return p;
}

}  // namespace paralab::dlrm
