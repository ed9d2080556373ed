// simulate.hpp: emb_cache's simulate mode (issue 16; Yang et al., arXiv
// 2010.11305): the memory a cluster needs for a DLRM's embedding tables per
// row format and cache fraction, and the predicted training step on a GPU
// profile with the cached FP32 rows in HBM and the rest in host memory.
//
// Memory model (table_memory): the bytes CachedTable allocates (table.hpp's
// MemoryUse), from the same arithmetic: rows x row_bytes(format, d)
// (format.hpp), the cache's slots from cache_geometry (cache.hpp) at 4d bytes
// each plus 16 bytes of tag and LRU clock, LFU's 4-byte count per table row,
// row-wise Adagrad's one float per row. tests/emb asserts it equals what the
// real tables allocate.
//
// Per GPU (gpu_memory): the tables are sharded over N GPUs by lib/dlrm's
// planner (sharding.hpp; table-wise, shards placed by memory), every shard
// costed as a table of its rows and columns. A GPU whose whole share fits in
// its HBM (`hbm_bytes`) keeps everything there ("hbm"); otherwise the stored
// rows live in host memory and only the cache (data, tags, LFU counts) and
// the optimizer state sit in HBM ("cached"), which fits or not.
//
// The step (step_program): per GPU, dlrm's DistributedDlrm step in its
// phase order with the embedding part split by where rows live:
//   input lengths, input indices   alltoallv, dlrm's byte counts
//   lookup (HBM)     hits: 4d bytes a looked-up row; the pooled row written
//                    (4d a sample and table); an "hbm" GPU also reads its
//                    misses' stored rows (row_bytes) here
//   lookup (host)    "cached" GPU: misses read row_bytes each over the
//                    host link (fixed cost: bytes / host bytes per s)
//   forward exchange, dense forward, dense backward, backward exchange:
//                    as dlrm's step program (dlrm's exchange bytes,
//                    dense_flops on the profile's FP32 GEMM rate)
//   backward (HBM)   the pooled gradient read (4d a sample and table); hits
//                    read and write their FP32 row (8d); Adagrad reads and
//                    writes its per-row float (8 bytes a lookup); an "hbm"
//                    GPU's misses read and write their stored rows here
//   backward (host)  "cached" GPU: each miss's row written back in its
//                    format (row_bytes; its read travels the other direction
//                    of the full-duplex link and is not counted again)
//   gradient all-reduce, loss all-reduce, MLP update: as dlrm's.
// Lookups per GPU and table shard: batch x pooling x rows share (every
// lookup of the global batch into the shard), split by the table's hit
// rate. Cache admission traffic beyond this (prefetching a missed row into
// the cache, then reading it in FP32) is folded into the miss read.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dlrm/model.hpp"
#include "dlrm/sharding.hpp"
#include "emb/cache.hpp"
#include "emb/format.hpp"
#include "emb/table.hpp"
#include "schedule/program.hpp"
#include "sim/hardware.hpp"

namespace paralab::emb {

// What the tables are.
struct SimTables {
  Format format = Format::fp32;
  CacheConfig cache;
  bool adagrad = false;
};

// Bytes a CachedTable of `rows` rows of dimension `dim` allocates.
MemoryUse table_memory(int64_t rows, int dim, const SimTables& tables);

// The ZionEX-scale preset (synthetic; docs/emb_cache.md): 256 tables of
// 183,105,469 rows at d 256 (12.0e12 embedding parameters), 13 dense
// features, bottom 13-512-256-256, top 512-256-1, `pooling` per table.
dlrm::DlrmConfig zionex_12t(int pooling = 1);
// The planner used for the memory model: table-wise, shards placed by memory.
dlrm::PlannerOptions memory_planner();

enum class GpuPlacement { hbm, cached };
const char* placement_name(GpuPlacement p);  // "hbm", "cached"

struct GpuMemory {
  MemoryUse use;            // all of the GPU's shards
  int64_t hbm_needed = 0;   // use.total() if "hbm", else cache + counts + optimizer
  int64_t host_needed = 0;  // 0 if "hbm", else the stored rows
  GpuPlacement placement = GpuPlacement::hbm;
  bool fits = true;  // hbm_needed <= HBM
};
std::vector<GpuMemory> gpu_memory(const dlrm::DlrmConfig& config, const dlrm::ShardingPlan& plan,
                                  const SimTables& tables, double hbm_bytes);

struct StepSimInputs {
  const dlrm::DlrmConfig* config = nullptr;
  const dlrm::ShardingPlan* plan = nullptr;
  dlrm::BatchSplit split;
  SimTables tables;
  std::vector<double> hit_rate;   // per table, in [0, 1]
  std::vector<GpuMemory> memory;  // per GPU (gpu_memory): where its rows live
  double host_bytes_per_s = 0;    // host <-> GPU, per direction
};

// What each operation of the step is (schedule::OpRef::role).
enum class EmbStepRole : int {
  input,  // lengths and indices
  lookup_hbm,
  lookup_host,
  forward_exchange,
  dense,  // forward and backward
  backward_exchange,
  backward_hbm,
  backward_host,
  allreduce,  // gradients and loss
  update,
  count
};

schedule::Program step_program(const StepSimInputs& inputs);

// The played step: makespan and, per role, the slowest GPU's time in it.
struct SimulatedEmbStep {
  int gpus = 1;
  double step_s = 0;
  std::vector<double> role_s;  // [EmbStepRole::count]
  double role(EmbStepRole r) const { return role_s[static_cast<size_t>(r)]; }
};
SimulatedEmbStep simulate_step(const StepSimInputs& inputs, const sim::HardwareProfile& hardware);

}  // namespace paralab::emb
