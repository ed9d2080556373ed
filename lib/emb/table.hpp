// table.hpp: one embedding table stored in a low-precision format (format.hpp)
// with an FP32 row cache in front (cache.hpp): the embedding of Yang et al.,
// "Mixed-Precision Embedding Using a Cache" (arXiv 2010.11305).
//
// A training step on one table:
//   prepare(lookups, step)  admission: every distinct row of the batch is
//       looked up in the cache (hit), or admitted (its stored row decoded to
//       FP32 into a slot whose old row is first written back, quantised with
//       the run's rounding), or left uncached when its set has no free way.
//       With prefetch the caller runs this for batch i+1 right after step i.
//   forward(lookups, out)   sum pooling; a cached row is read in FP32, an
//       uncached one decoded on the fly from storage.
//   backward(lookups, dout) the summed gradient per touched row (first-touch
//       order, duplicates accumulate: lib/dlrm's EmbeddingShard order).
//   update(opt, scale, step) SGD or row-wise Adagrad per touched row: a
//       cached row is updated in place in FP32; an uncached row is decoded,
//       updated in FP32 and requantised (nearest or stochastic rounding).
// The arithmetic of the FP32 path is the same as lib/dlrm's EmbeddingShard
// operation for operation, so an fp32 table equals dlrm's bit for bit
// whatever the cache holds (the cache keeps exact FP32 copies).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <unordered_map>
#include <vector>

#include "dlrm/layers.hpp"
#include "dlrm/model.hpp"
#include "emb/cache.hpp"
#include "emb/format.hpp"

namespace paralab::emb {

struct TableOptions {
  Format format = Format::fp32;
  Rounding rounding = Rounding::nearest;
  CacheConfig cache;
  uint64_t seed = 1;       // stochastic rounding keys
  bool vectorised = true;  // row_kernels.hpp fast loops (else the reference)
};

// Bytes actually allocated for a table.
struct MemoryUse {
  int64_t storage = 0;     // all stored rows, scale and bias included
  int64_t qparams = 0;     // of which scale and bias
  int64_t cache_data = 0;  // FP32 slots
  int64_t cache_tags = 0;  // tags and LRU clock
  int64_t lfu_counts = 0;  // LFU per-row counters
  int64_t optimizer = 0;   // row-wise Adagrad state (FP32 per row)
  int64_t total() const { return storage + cache_data + cache_tags + lfu_counts + optimizer; }
  MemoryUse& operator+=(const MemoryUse& o);
};

// What one prepare() saw.
struct CacheStats {
  int64_t lookups = 0;   // indices of the batch
  int64_t hits = 0;      // indices whose row was cached before this prepare
  int64_t distinct = 0;  // distinct rows
  int64_t admitted = 0, evicted = 0, uncached = 0;  // rows
  double hit_rate() const { return lookups ? static_cast<double>(hits) / lookups : 0.0; }
  CacheStats& operator+=(const CacheStats& o);
};

// Fills an FP32 row of the table at initialisation: (row, out[dim]).
using RowInit = std::function<void(int64_t, float*)>;

class CachedTable {
 public:
  CachedTable(int table, int64_t rows, int dim, const TableOptions& options, const RowInit& init,
              bool adagrad);

  int table() const { return table_; }
  int64_t rows() const { return rows_; }
  int dim() const { return dim_; }
  Format format() const { return options_.format; }
  const RowCache& cache() const { return cache_; }
  const dlrm::SparseGrad& gradient() const { return grad_; }
  std::span<const float> adagrad_state() const { return state_; }

  CacheStats prepare(const dlrm::Lookups& lookups, int64_t step);
  void forward(const dlrm::Lookups& lookups, float* out, size_t ld) const;
  void backward(const dlrm::Lookups& lookups, const float* dout, size_t ld);
  void update(const dlrm::OptimizerConfig& opt, float scale, int64_t step);

  // Replaces the last backward's gradient (e.g. by the sum over ranks):
  // rows [k] (table rows) and values [k, dim].
  void set_gradient(std::vector<int32_t> rows, std::vector<float> values);

  // The row's current value (cache, else storage).
  void read_row(int64_t row, float* out) const;
  // The stored (low-precision) row's bytes.
  const uint8_t* stored_row(int64_t row) const { return store_.data() + row * row_bytes_; }
  // Writes every cached row back to storage and empties the cache.
  void flush(int64_t step);
  MemoryUse memory() const;

 private:
  RoundingKey key(int64_t row, int64_t step, uint64_t purpose) const;
  void admit(int64_t row, int64_t slot, int64_t step, CacheStats& stats);
  void update_row(float* w, size_t i, const dlrm::OptimizerConfig& opt, float scale);

  int table_ = 0;
  int64_t rows_ = 0;
  int dim_ = 0;
  TableOptions options_;
  size_t row_bytes_ = 0;
  std::vector<uint8_t> store_;  // [rows, row_bytes]
  RowCache cache_;
  bool adagrad_ = false;
  std::vector<float> state_;  // row-wise Adagrad accumulators [rows] (FP32, as FBGEMM)
  dlrm::SparseGrad grad_;     // rows and values; its slot array is not used (see slot_of_)
  // Row -> index into grad_.rows for the step: a map sized by the batch, not
  // an array sized by the table (4 bytes a row would be a third of an int4 row).
  std::unordered_map<int32_t, int32_t> slot_of_;
  std::vector<int32_t> sorted_;  // prepare scratch: the batch's indices, sorted
  std::vector<float> scratch_;
};

}  // namespace paralab::emb
