// table.cpp: a low-precision table with its FP32 row cache (table.hpp).
#include "emb/table.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "emb/row_kernels.hpp"

namespace paralab::emb {

namespace {
// Stochastic-rounding key purposes: the same row written twice in one step
// (an eviction after an update cannot happen, but keep them apart anyway).
constexpr uint64_t kUpdateWrite = 1, kEvictWrite = 2, kFlushWrite = 3;
}  // namespace

MemoryUse& MemoryUse::operator+=(const MemoryUse& o) {
  storage += o.storage;
  qparams += o.qparams;
  cache_data += o.cache_data;
  cache_tags += o.cache_tags;
  lfu_counts += o.lfu_counts;
  optimizer += o.optimizer;
  return *this;
}

CacheStats& CacheStats::operator+=(const CacheStats& o) {
  lookups += o.lookups;
  hits += o.hits;
  distinct += o.distinct;
  admitted += o.admitted;
  evicted += o.evicted;
  uncached += o.uncached;
  return *this;
}

CachedTable::CachedTable(int table, int64_t rows, int dim, const TableOptions& options,
                         const RowInit& init, bool adagrad)
    : table_(table),
      rows_(rows),
      dim_(dim),
      options_(options),
      row_bytes_(row_bytes(options.format, dim)),
      cache_(rows, dim, options.cache),
      adagrad_(adagrad) {
  if (rows < 1 || dim < 1) throw std::invalid_argument("CachedTable: empty table");
  store_.resize(static_cast<size_t>(rows) * row_bytes_);
  std::vector<float> row(static_cast<size_t>(dim));
  for (int64_t r = 0; r < rows; ++r) {
    init(r, row.data());
    quantize_row(options.format, row.data(), dim, store_.data() + r * row_bytes_, {});
  }
  if (adagrad_) state_.assign(static_cast<size_t>(rows), 0.0f);
  grad_.width = dim;
  scratch_.resize(static_cast<size_t>(dim));
}

RoundingKey CachedTable::key(int64_t row, int64_t step, uint64_t purpose) const {
  uint64_t k = hash_mix(options_.seed, static_cast<uint64_t>(table_));
  k = hash_mix(k, static_cast<uint64_t>(row));
  k = hash_mix(k, static_cast<uint64_t>(step));
  return {options_.rounding, hash_mix(k, purpose)};
}

void CachedTable::admit(int64_t row, int64_t slot, int64_t step, CacheStats& stats) {
  const int64_t old = cache_.tag(slot);
  if (old >= 0) {  // write the victim's FP32 value back in the table's format
    quantize_row(options_.format, cache_.data(slot), dim_, store_.data() + old * row_bytes_,
                 key(old, step, kEvictWrite));
    ++stats.evicted;
  }
  dequantize_row(options_.format, stored_row(row), dim_, cache_.data(slot));
  cache_.install(slot, row);
  ++stats.admitted;
}

CacheStats CachedTable::prepare(const dlrm::Lookups& lookups, int64_t step) {
  CacheStats stats;
  stats.lookups = static_cast<int64_t>(lookups.indices.size());
  cache_.begin_step();
  sorted_.assign(lookups.indices.begin(), lookups.indices.end());
  std::sort(sorted_.begin(), sorted_.end());
  for (size_t i = 0; i < sorted_.size();) {
    const int64_t row = sorted_[i];
    size_t n = 1;
    while (i + n < sorted_.size() && sorted_[i + n] == row) ++n;
    i += n;
    ++stats.distinct;
    cache_.count(row);
    if (const int64_t slot = cache_.find(row); slot >= 0) {
      stats.hits += static_cast<int64_t>(n);
      cache_.touch(slot);
    } else if (const int64_t free = cache_.choose_slot(row); free >= 0) {
      admit(row, free, step, stats);
    } else {
      ++stats.uncached;
    }
  }
  return stats;
}

void CachedTable::forward(const dlrm::Lookups& lookups, float* out, size_t ld) const {
  for (int b = 0; b < lookups.bags(); ++b) {
    float* o = out + static_cast<size_t>(b) * ld;
    std::fill(o, o + dim_, 0.0f);
    for (int32_t k = lookups.offsets[static_cast<size_t>(b)];
         k < lookups.offsets[static_cast<size_t>(b) + 1]; ++k) {
      const int64_t r = lookups.indices[static_cast<size_t>(k)];
      if (const int64_t slot = cache_.find(r); slot >= 0) {
        const float* w = cache_.data(slot);
        for (int j = 0; j < dim_; ++j) o[j] += w[j];
      } else if (options_.vectorised) {
        accumulate_row(options_.format, stored_row(r), dim_, o);
      } else {
        reference::accumulate_row(options_.format, stored_row(r), dim_, o);
      }
    }
  }
}

void CachedTable::backward(const dlrm::Lookups& lookups, const float* dout, size_t ld) {
  slot_of_.clear();
  grad_.rows.clear();
  grad_.values.clear();
  for (int b = 0; b < lookups.bags(); ++b) {
    const float* g = dout + static_cast<size_t>(b) * ld;
    for (int32_t k = lookups.offsets[static_cast<size_t>(b)];
         k < lookups.offsets[static_cast<size_t>(b) + 1]; ++k) {
      const int32_t r = lookups.indices[static_cast<size_t>(k)];
      auto [it, fresh] = slot_of_.try_emplace(r, static_cast<int32_t>(grad_.rows.size()));
      const int32_t s = it->second;
      if (fresh) {
        grad_.rows.push_back(r);
        grad_.values.resize(grad_.values.size() + static_cast<size_t>(dim_), 0.0f);
      }
      float* v = grad_.values.data() + static_cast<size_t>(s) * dim_;
      for (int j = 0; j < dim_; ++j) v[j] += g[j];
    }
  }
}

void CachedTable::set_gradient(std::vector<int32_t> rows, std::vector<float> values) {
  if (values.size() != rows.size() * static_cast<size_t>(dim_))
    throw std::invalid_argument("CachedTable::set_gradient: values do not match the rows");
  slot_of_.clear();
  grad_.rows = std::move(rows);
  grad_.values = std::move(values);
}

// The FP32 update of one row, the operations of lib/dlrm's EmbeddingShard
// (sgd; row_square_sums then adagrad_row) in the same order.
void CachedTable::update_row(float* w, size_t i, const dlrm::OptimizerConfig& opt, float scale) {
  const float* g = grad_.values.data() + i * static_cast<size_t>(dim_);
  if (opt.embedding == dlrm::EmbeddingOptimizer::sgd) {
    const float step = opt.embedding_lr * scale;
    for (int j = 0; j < dim_; ++j) w[j] -= step * g[j];
    return;
  }
  float square_sum = 0;
  for (int j = 0; j < dim_; ++j) {
    const float v = scale * g[j];
    square_sum += v * v;
  }
  float& state = state_[static_cast<size_t>(grad_.rows[i])];
  state += square_sum / static_cast<float>(dim_);
  const float denom = std::sqrt(state) + opt.adagrad_eps;
  for (int j = 0; j < dim_; ++j) w[j] -= opt.embedding_lr * (scale * g[j]) / denom;
}

void CachedTable::update(const dlrm::OptimizerConfig& opt, float scale, int64_t step) {
  if (opt.embedding == dlrm::EmbeddingOptimizer::rowwise_adagrad && !adagrad_)
    throw std::logic_error("CachedTable: built without Adagrad state");
  for (size_t i = 0; i < grad_.rows.size(); ++i) {
    const int64_t row = grad_.rows[i];
    if (const int64_t slot = cache_.find(row); slot >= 0) {
      update_row(cache_.data(slot), i, opt, scale);
      continue;
    }
    uint8_t* stored = store_.data() + row * row_bytes_;
    dequantize_row(options_.format, stored, dim_, scratch_.data());
    update_row(scratch_.data(), i, opt, scale);
    quantize_row(options_.format, scratch_.data(), dim_, stored, key(row, step, kUpdateWrite));
  }
}

void CachedTable::read_row(int64_t row, float* out) const {
  if (const int64_t slot = cache_.find(row); slot >= 0)
    std::copy(cache_.data(slot), cache_.data(slot) + dim_, out);
  else
    dequantize_row(options_.format, stored_row(row), dim_, out);
}

void CachedTable::flush(int64_t step) {
  for (int64_t s = 0; s < cache_.slots(); ++s) {
    const int64_t row = cache_.tag(s);
    if (row < 0) continue;
    quantize_row(options_.format, cache_.data(s), dim_, store_.data() + row * row_bytes_,
                 key(row, step, kFlushWrite));
  }
  cache_.clear();
}

MemoryUse CachedTable::memory() const {
  MemoryUse m;
  m.storage = static_cast<int64_t>(store_.size());
  m.qparams = rows_ * static_cast<int64_t>(row_qparam_bytes(options_.format));
  m.cache_data = cache_.data_bytes();
  m.cache_tags = cache_.tag_bytes();
  m.lfu_counts = cache_.count_bytes();
  m.optimizer = static_cast<int64_t>(state_.size() * sizeof(float));
  return m;
}

}  // namespace paralab::emb
