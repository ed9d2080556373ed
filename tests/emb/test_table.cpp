// lib/emb's tables and cache (table.hpp, cache.hpp): bags against an FP32
// reference, admission and hits, LRU and LFU victims, write-back on
// eviction, requantised updates, memory accounting.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "emb/table.hpp"

namespace paralab::emb {
namespace {

const Format kAll[] = {Format::fp32, Format::fp16, Format::bf16, Format::int8, Format::int4};

RowInit test_init(int dim) {
  return [dim](int64_t r, float* out) {
    for (int j = 0; j < dim; ++j)
      out[j] = static_cast<float>(uniform01(static_cast<uint64_t>(r), j)) - 0.5f;
  };
}

dlrm::Lookups bags(const std::vector<std::vector<int32_t>>& b) {
  dlrm::Lookups l;
  for (const auto& bag : b) {
    l.indices.insert(l.indices.end(), bag.begin(), bag.end());
    l.offsets.push_back(static_cast<int32_t>(l.indices.size()));
  }
  return l;
}

dlrm::Lookups one(int32_t row) {
  return bags({{row}});
}

TableOptions options(Format f, double fraction, int assoc, Policy p = Policy::lru) {
  TableOptions o;
  o.format = f;
  o.cache = {fraction, assoc, p};
  return o;
}

// Forward pools the decoded rows; backward sums the bag gradients per row.
TEST(EmbTable, BagForwardBackwardAgainstFp32Reference) {
  const int dim = 5;
  const auto lookups = bags({{3, 1, 3}, {}, {7}, {1, 1, 2, 9}});
  for (Format f : kAll) {
    for (double fraction : {0.0, 0.3}) {
      TableOptions o = options(f, fraction, 2);
      o.vectorised = fraction > 0;  // the reference row kernel once, the fused one once
      CachedTable table(0, 10, dim, o, test_init(dim), false);
      table.prepare(lookups, 0);
      std::vector<float> out(4 * dim);
      table.forward(lookups, out.data(), dim);
      std::vector<float> row(dim);
      for (int b = 0; b < 4; ++b) {
        std::vector<double> want(dim, 0.0);
        for (int32_t k = lookups.offsets[b]; k < lookups.offsets[b + 1]; ++k) {
          table.read_row(lookups.indices[k], row.data());
          for (int j = 0; j < dim; ++j) want[j] += row[j];
        }
        for (int j = 0; j < dim; ++j) EXPECT_NEAR(out[b * dim + j], want[j], 1e-6);
      }
      std::vector<float> dout(4 * dim);
      for (size_t i = 0; i < dout.size(); ++i) dout[i] = static_cast<float>(i) * 0.25f;
      table.backward(lookups, dout.data(), dim);
      const auto& g = table.gradient();
      ASSERT_EQ(g.rows, (std::vector<int32_t>{3, 1, 7, 2, 9}));  // first touch order
      // Row 1: bag 0 once, bag 3 twice; row 3: bag 0 twice.
      for (int j = 0; j < dim; ++j) {
        EXPECT_EQ(g.values[1 * dim + j], dout[0 * dim + j] + 2 * dout[3 * dim + j]);
        EXPECT_EQ(g.values[0 * dim + j], 2 * dout[0 * dim + j]);
      }
    }
  }
}

TEST(EmbTable, DecodedValuesMatchTheInitWithinTheFormat) {
  const int dim = 8;
  std::vector<float> want(dim), got(dim);
  for (Format f : kAll) {
    CachedTable table(0, 50, dim, options(f, 0, 1), test_init(dim), false);
    for (int64_t r = 0; r < 50; ++r) {
      test_init(dim)(r, want.data());
      table.read_row(r, got.data());
      for (int j = 0; j < dim; ++j)
        EXPECT_NEAR(got[j], want[j], f == Format::int4 ? 0.04 : f == Format::int8 ? 0.002 : 2e-3);
    }
  }
}

TEST(EmbCache, RowHitsAfterAdmission) {
  CachedTable table(0, 100, 4, options(Format::int8, 0.1, 2), test_init(4), false);
  EXPECT_EQ(table.cache().slots(), 10);
  EXPECT_EQ(table.cache().sets(), 5);
  auto s = table.prepare(one(7), 0);
  EXPECT_EQ(s.hits, 0);
  EXPECT_EQ(s.admitted, 1);
  EXPECT_GE(table.cache().find(7), 0);
  s = table.prepare(bags({{7, 7}, {7}}), 1);
  EXPECT_EQ(s.lookups, 3);
  EXPECT_EQ(s.hits, 3);
  EXPECT_EQ(s.admitted, 0);
  EXPECT_DOUBLE_EQ(s.hit_rate(), 1.0);
}

// One set of three ways: every row maps to it. A is used three times, then
// B, C, D arrive. LRU evicts the least recently used (A); LFU the least
// frequently used (B and C tie at 1: the older, B).
TEST(EmbCache, LruAndLfuEvictInTheirOrder) {
  const int32_t A = 10, B = 20, C = 30, D = 40;
  for (Policy p : {Policy::lru, Policy::lfu}) {
    CachedTable table(0, 100, 2, options(Format::fp16, 0.03, 3, p), test_init(2), false);
    ASSERT_EQ(table.cache().sets(), 1);
    ASSERT_EQ(table.cache().ways(), 3);
    int step = 0;
    for (int32_t r : {A, A, A, B, C}) table.prepare(one(r), step++);
    const auto s = table.prepare(one(D), step++);
    EXPECT_EQ(s.evicted, 1);
    EXPECT_GE(table.cache().find(D), 0);
    EXPECT_GE(table.cache().find(C), 0);
    if (p == Policy::lru) {
      EXPECT_LT(table.cache().find(A), 0);
      EXPECT_GE(table.cache().find(B), 0);
    } else {
      EXPECT_GE(table.cache().find(A), 0);
      EXPECT_LT(table.cache().find(B), 0);
    }
  }
}

// LFU refuses a row colder than every candidate victim; it trains uncached.
TEST(EmbCache, LfuKeepsHotRowsAgainstAColdOne) {
  CachedTable table(0, 100, 2, options(Format::int8, 0.02, 2, Policy::lfu), test_init(2), false);
  int step = 0;
  for (int32_t r : {1, 2, 1, 2}) table.prepare(one(r), step++);
  const auto s = table.prepare(one(3), step++);
  EXPECT_EQ(s.uncached, 1);
  EXPECT_LT(table.cache().find(3), 0);
  EXPECT_GE(table.cache().find(1), 0);
  EXPECT_GE(table.cache().find(2), 0);
}

// Rows of the step in flight are locked: a batch with more distinct rows
// than ways leaves the rest uncached instead of evicting its own rows.
TEST(EmbCache, RowsOfTheCurrentBatchAreNotEvicted) {
  CachedTable table(0, 100, 2, options(Format::int8, 0.02, 2), test_init(2), false);
  const auto s = table.prepare(bags({{5, 6, 7, 8}}), 0);
  EXPECT_EQ(s.admitted, 2);
  EXPECT_EQ(s.uncached, 2);
  EXPECT_EQ(s.evicted, 0);
}

// An update of a cached row happens in FP32; evicting it writes the FP32
// value back in the table's format (here fp16, nearest rounding).
TEST(EmbCache, EvictionWritesTheUpdatedRowBack) {
  const int dim = 3;
  CachedTable table(0, 100, dim, options(Format::fp16, 0.01, 1), test_init(dim), false);
  ASSERT_EQ(table.cache().slots(), 1);
  table.prepare(one(4), 0);
  std::vector<float> before(dim), after(dim);
  table.read_row(4, before.data());
  const std::vector<float> dout = {1.0f, -2.0f, 0.5f};
  table.backward(one(4), dout.data(), dim);
  dlrm::OptimizerConfig opt;
  opt.embedding_lr = 0.01f;
  table.update(opt, 1.0f, 0);
  table.read_row(4, after.data());  // from the cache: exact FP32 SGD
  for (int j = 0; j < dim; ++j) EXPECT_EQ(after[j], before[j] - 0.01f * dout[j]);
  const auto s = table.prepare(one(9), 1);  // evicts row 4
  EXPECT_EQ(s.evicted, 1);
  ASSERT_LT(table.cache().find(4), 0);
  std::vector<float> stored(dim);
  table.read_row(4, stored.data());
  for (int j = 0; j < dim; ++j) EXPECT_EQ(stored[j], half_to_float(float_to_half(after[j])));
}

// flush() writes every cached row back in the table's format and empties the cache.
TEST(EmbCache, FlushWritesEveryCachedRowBack) {
  const int dim = 4;
  CachedTable table(0, 40, dim, options(Format::int8, 0.25, 2), test_init(dim), false);
  const auto lookups = bags({{1, 2, 3}, {4, 5}});
  table.prepare(lookups, 0);
  std::vector<float> dout(2 * dim, 0.5f);
  table.backward(lookups, dout.data(), dim);
  dlrm::OptimizerConfig opt;
  table.update(opt, 1.0f, 0);
  std::vector<std::vector<float>> cached;
  std::vector<float> row(dim);
  for (int32_t r : {1, 2, 3, 4, 5}) {
    ASSERT_GE(table.cache().find(r), 0);
    table.read_row(r, row.data());
    cached.push_back(row);
  }
  table.flush(1);
  for (int i = 0; i < 5; ++i) {
    EXPECT_LT(table.cache().find(i + 1), 0);
    std::vector<uint8_t> q(row_bytes(Format::int8, dim));
    std::vector<float> want(dim);
    quantize_row(Format::int8, cached[static_cast<size_t>(i)].data(), dim, q.data(), {});
    dequantize_row(Format::int8, q.data(), dim, want.data());
    table.read_row(i + 1, row.data());
    EXPECT_EQ(row, want);
  }
}

// An uncached row is decoded, updated in FP32 and requantised.
TEST(EmbCache, UncachedUpdateRequantises) {
  const int dim = 6;
  for (Format f : {Format::int8, Format::int4, Format::bf16}) {
    CachedTable table(0, 20, dim, options(f, 0, 1), test_init(dim), false);
    std::vector<float> before(dim), after(dim);
    table.read_row(2, before.data());
    const std::vector<float> dout = {1, 2, 3, -1, -2, -3};
    table.backward(one(2), dout.data(), dim);
    dlrm::OptimizerConfig opt;
    opt.embedding_lr = 0.05f;
    table.update(opt, 1.0f, 0);
    std::vector<float> want(dim);
    for (int j = 0; j < dim; ++j) want[j] = before[j] - 0.05f * dout[j];
    std::vector<uint8_t> row(row_bytes(f, dim));
    quantize_row(f, want.data(), dim, row.data(), {});
    dequantize_row(f, row.data(), dim, want.data());
    table.read_row(2, after.data());
    EXPECT_EQ(after, want) << to_string(f);
  }
}

TEST(EmbCache, MemoryAccounting) {
  CachedTable lru(0, 1000, 16, options(Format::int8, 0.05, 10), test_init(16), false);
  MemoryUse m = lru.memory();
  EXPECT_EQ(m.storage, 1000 * 24);
  EXPECT_EQ(m.qparams, 1000 * 8);
  EXPECT_EQ(m.cache_data, 50 * 16 * 4);
  EXPECT_EQ(m.cache_tags, 50 * 16);  // int64 tag + uint64 clock per slot
  EXPECT_EQ(m.lfu_counts, 0);
  EXPECT_EQ(m.optimizer, 0);
  EXPECT_EQ(m.total(), 24000 + 3200 + 800);
  CachedTable lfu(0, 1000, 16, options(Format::int4, 0.01, 4, Policy::lfu), test_init(16), true);
  m = lfu.memory();
  EXPECT_EQ(m.storage, 1000 * 12);
  EXPECT_EQ(m.qparams, 1000 * 4);
  EXPECT_EQ(m.cache_data, 8 * 16 * 4);  // 10 wanted, 4 ways: 2 sets of 4
  EXPECT_EQ(m.lfu_counts, 1000 * 4);
  EXPECT_EQ(m.optimizer, 1000 * 4);
  CachedTable none(0, 1000, 16, options(Format::bf16, 0, 32), test_init(16), false);
  EXPECT_EQ(none.memory().total(), 1000 * 32);
}

TEST(EmbCache, RefusesBadConfig) {
  EXPECT_THROW(CacheConfig({1.5, 4, Policy::lru}).validate(), std::exception);
  EXPECT_THROW(CacheConfig({0.5, 0, Policy::lru}).validate(), std::exception);
  EXPECT_THROW(parse_policy("fifo"), std::exception);
}

}  // namespace
}  // namespace paralab::emb
