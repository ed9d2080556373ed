// emb_cache's simulate mode (emb/simulate.hpp): the memory model against
// hand-computed bytes and against what CachedTable allocates, and the step
// program played to a hand-computed time on a constructed profile.
#include <gtest/gtest.h>

#include <vector>

#include "dlrm/simulate.hpp"
#include "emb/simulate.hpp"
#include "emb/table.hpp"

namespace paralab::emb {
namespace {

const Format kAll[] = {Format::fp32, Format::fp16, Format::bf16, Format::int8, Format::int4};

SimTables tables(Format f, double fraction, Policy p, bool adagrad) {
  SimTables t;
  t.format = f;
  t.cache = {fraction, 32, p};
  t.adagrad = adagrad;
  return t;
}

// 1000 rows, d 8, 5% cache with 32 ways: wanted 50 slots -> 32 ways x 1 set
// = 32 slots. Row bytes: fp32 32, fp16/bf16 16, int8 8 + 8, int4 4 + 4.
TEST(EmbSimulateMemory, HandComputedBytes) {
  const int64_t stored[] = {32'000, 16'000, 16'000, 16'000, 8'000};
  const int64_t qparams[] = {0, 0, 0, 8'000, 4'000};
  for (int i = 0; i < 5; ++i) {
    const MemoryUse lru = table_memory(1000, 8, tables(kAll[i], 0.05, Policy::lru, true));
    EXPECT_EQ(lru.storage, stored[i]) << to_string(kAll[i]);
    EXPECT_EQ(lru.qparams, qparams[i]);
    EXPECT_EQ(lru.cache_data, 32 * 8 * 4);
    EXPECT_EQ(lru.cache_tags, 32 * 16);
    EXPECT_EQ(lru.lfu_counts, 0);
    EXPECT_EQ(lru.optimizer, 4'000);
    EXPECT_EQ(lru.total(), stored[i] + 1024 + 512 + 4'000);
    const MemoryUse lfu = table_memory(1000, 8, tables(kAll[i], 0.05, Policy::lfu, false));
    EXPECT_EQ(lfu.lfu_counts, 4'000);
    EXPECT_EQ(lfu.optimizer, 0);
    EXPECT_EQ(lfu.total(), stored[i] + 1024 + 512 + 4'000);
  }
  // No slot: no tags, no LFU counts.
  const MemoryUse none = table_memory(1000, 8, tables(Format::int8, 0, Policy::lfu, false));
  EXPECT_EQ(none.total(), 16'000);
}

// The model equals the bytes the real tables allocate.
TEST(EmbSimulateMemory, EqualsAllocatedBytes) {
  for (Format f : kAll)
    for (Policy p : {Policy::lru, Policy::lfu})
      for (double fraction : {0.0, 0.01, 0.05, 0.3, 1.0})
        for (bool adagrad : {false, true}) {
          TableOptions o;
          o.format = f;
          o.cache = {fraction, 4, p};
          const int dim = 7;  // odd: int4 rounds up
          const CachedTable real(
              0, 333, dim, o, [](int64_t, float* x) { x[0] = 0; }, adagrad);
          SimTables t;
          t.format = f;
          t.cache = o.cache;
          t.adagrad = adagrad;
          const MemoryUse model = table_memory(333, dim, t);
          const MemoryUse got = real.memory();
          EXPECT_EQ(model.storage, got.storage);
          EXPECT_EQ(model.qparams, got.qparams);
          EXPECT_EQ(model.cache_data, got.cache_data);
          EXPECT_EQ(model.cache_tags, got.cache_tags);
          EXPECT_EQ(model.lfu_counts, got.lfu_counts);
          EXPECT_EQ(model.optimizer, got.optimizer);
        }
}

TEST(EmbSimulateMemory, GpuPlacementAndFit) {
  dlrm::DlrmConfig c;
  c.dense_features = 1;
  c.bottom_layers = {8};
  c.top_layers = {1};
  c.embedding_dim = 8;
  c.table_rows = {1000, 1000, 1000};
  c.pooling = {1, 1, 1};
  const dlrm::ShardingPlan plan = dlrm::plan_sharding(c, 2, memory_planner());
  const SimTables t = tables(Format::int8, 0.05, Policy::lru, false);
  // One GPU holds two tables (2 x 17536 bytes), the other one (17536).
  const auto big = gpu_memory(c, plan, t, 1e9);
  ASSERT_EQ(big.size(), 2u);
  EXPECT_EQ(big[0].use.total() + big[1].use.total(), 3 * (16'000 + 1024 + 512));
  for (const auto& g : big) EXPECT_EQ(g.placement, GpuPlacement::hbm);
  // HBM of 20000 bytes: the two-table GPU keeps rows in host memory and
  // needs 2 x 1536 bytes of cache in HBM; the other holds all.
  const auto small = gpu_memory(c, plan, t, 20'000);
  int cached = 0;
  for (const auto& g : small) {
    EXPECT_TRUE(g.fits);
    if (g.placement == GpuPlacement::cached) {
      ++cached;
      EXPECT_EQ(g.hbm_needed, 2 * 1536);
      EXPECT_EQ(g.host_needed, 2 * 16'000);
    } else {
      EXPECT_EQ(g.hbm_needed, 17'536);
    }
  }
  EXPECT_EQ(cached, 1);
  EXPECT_FALSE(gpu_memory(c, plan, t, 1000)[0].fits);
}

// One GPU, one table of 1000 rows, d 8, pooling 2, batch 10, int8 (16-byte
// rows), hit rate 0.25: 20 lookups, 5 hits, 15 misses. HBM 1 GB/s, host
// 1 MB/s, no kernel overhead, GEMMs at 1e30 FLOP/s. MLPs: bottom 1-8 (16
// floats), top 9-1 (10 floats): update 3 x 4 x 26 = 312 bytes.
TEST(EmbSimulateStep, PlaysToHandComputedTime) {
  dlrm::DlrmConfig c;
  c.dense_features = 1;
  c.bottom_layers = {8};
  c.top_layers = {1};
  c.embedding_dim = 8;
  c.table_rows = {1000};
  c.pooling = {2};
  c.validate();
  ASSERT_EQ(dlrm::allreduce_floats(c, dlrm::plan_sharding(c, 1, memory_planner())), 26);
  sim::HardwareProfile hw;
  hw.name = "test";
  hw.fp32_peak_flops = hw.bf16_peak_flops = 1e30;
  hw.gemm_efficiency = hw.attention_efficiency = 1;
  hw.memory_bytes_per_s = 1e9;
  hw.kernel_overhead_s = 0;
  hw.sm_count = 1;  // a GPU: launches do not block the host
  const dlrm::ShardingPlan plan = dlrm::plan_sharding(c, 1, memory_planner());
  StepSimInputs in;
  in.config = &c;
  in.plan = &plan;
  in.split = dlrm::split_batch(10, 1);
  in.tables = tables(Format::int8, 0.05, Policy::lru, false);
  in.hit_rate = {0.25};
  in.host_bytes_per_s = 1e6;
  // Rows in host memory: lookup HBM 5 x 32 + 10 x 32 = 480 B, host 15 x 16
  // = 240 B; backward HBM 10 x 32 + 2 x 5 x 32 = 640 B, host 240 B.
  in.memory = gpu_memory(c, plan, in.tables, 0);
  ASSERT_EQ(in.memory[0].placement, GpuPlacement::cached);
  SimulatedEmbStep s = simulate_step(in, hw);
  EXPECT_NEAR(s.role(EmbStepRole::lookup_hbm), 480e-9, 1e-15);
  EXPECT_NEAR(s.role(EmbStepRole::lookup_host), 240e-6, 1e-15);
  EXPECT_NEAR(s.role(EmbStepRole::backward_hbm), 640e-9, 1e-15);
  EXPECT_NEAR(s.role(EmbStepRole::backward_host), 240e-6, 1e-15);
  EXPECT_NEAR(s.step_s, 480e-9 + 240e-6 + 640e-9 + 240e-6 + 312e-9, 1e-12);
  // All in HBM: misses read (16 B) and read + write (32 B) their int8 rows there.
  in.memory = gpu_memory(c, plan, in.tables, 1e9);
  s = simulate_step(in, hw);
  EXPECT_NEAR(s.role(EmbStepRole::lookup_host), 0, 1e-15);
  EXPECT_NEAR(s.step_s, (480 + 240 + 640 + 480 + 312) * 1e-9, 1e-12);
  // Row-wise Adagrad adds 8 bytes a lookup to the backward in HBM.
  in.tables.adagrad = true;
  s = simulate_step(in, hw);
  EXPECT_NEAR(s.role(EmbStepRole::backward_hbm), (640 + 480 + 160) * 1e-9, 1e-15);
  // A hit rate outside [0, 1] or one per table missing is refused.
  in.hit_rate = {1.5};
  EXPECT_THROW(step_program(in), std::invalid_argument);
  in.hit_rate = {};
  EXPECT_THROW(step_program(in), std::invalid_argument);
}

TEST(EmbSimulateStep, ZionexPresetHasTwelveTrillionParameters) {
  const dlrm::DlrmConfig c = zionex_12t();
  const double params = double(c.total_rows()) * c.embedding_dim;
  EXPECT_NEAR(params, 12e12, 1e7);
  EXPECT_EQ(c.tables(), 256);
}

}  // namespace
}  // namespace paralab::emb
