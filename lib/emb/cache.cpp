// cache.cpp: the set-associative row cache's bookkeeping (cache.hpp).
#include "emb/cache.hpp"

#include <algorithm>
#include <cmath>

#include "core/errors.hpp"
#include "emb/format.hpp"

namespace paralab::emb {

std::string to_string(Policy p) {
  return p == Policy::lru ? "lru" : "lfu";
}

Policy parse_policy(const std::string& text) {
  if (text == "lru") return Policy::lru;
  if (text == "lfu") return Policy::lfu;
  throw UsageError("unknown cache policy '" + text + "' (known: lru, lfu)");
}

void CacheConfig::validate() const {
  if (!(fraction >= 0 && fraction <= 1))
    throw UsageError(
        "--cache-fraction " +
        std::to_string(fraction).erase(std::to_string(fraction).find_last_not_of('0') + 1) +
        " is outside [0, 1]");
  if (assoc < 1) throw UsageError("--assoc must be at least 1 (got " + std::to_string(assoc) + ")");
}

CacheGeometry cache_geometry(int64_t table_rows, const CacheConfig& config) {
  config.validate();
  CacheGeometry g;
  const auto wanted = static_cast<int64_t>(std::llround(config.fraction * table_rows));
  if (wanted > 0) {
    g.ways = static_cast<int>(std::min<int64_t>(config.assoc, wanted));
    g.sets = wanted / g.ways;
  }
  return g;
}

int64_t cache_data_bytes(int64_t slots, int dim) {
  return slots * dim * static_cast<int64_t>(sizeof(float));
}
int64_t cache_tag_bytes(int64_t slots) {
  return slots * static_cast<int64_t>(sizeof(int64_t) + sizeof(uint64_t));
}
int64_t cache_count_bytes(int64_t table_rows, int64_t slots, Policy policy) {
  return policy == Policy::lfu && slots > 0 ? table_rows * static_cast<int64_t>(sizeof(uint32_t))
                                            : 0;
}

RowCache::RowCache(int64_t table_rows, int dim, const CacheConfig& config)
    : dim_(dim), policy_(config.policy) {
  const CacheGeometry g = cache_geometry(table_rows, config);
  ways_ = g.ways;
  sets_ = g.sets;
  tags_.assign(static_cast<size_t>(slots()), -1);
  last_used_.assign(static_cast<size_t>(slots()), 0);
  data_.assign(static_cast<size_t>(slots()) * static_cast<size_t>(dim), 0.0f);
  if (policy_ == Policy::lfu && slots() > 0) counts_.assign(static_cast<size_t>(table_rows), 0);
}

int64_t RowCache::set_of(int64_t row) const {
  return static_cast<int64_t>(hash_mix(static_cast<uint64_t>(row), 0x5e7) %
                              static_cast<uint64_t>(sets_));
}

int64_t RowCache::find(int64_t row) const {
  if (sets_ == 0) return -1;
  const int64_t first = set_of(row) * ways_;
  for (int64_t s = first; s < first + ways_; ++s)
    if (tags_[static_cast<size_t>(s)] == row) return s;
  return -1;
}

void RowCache::count(int64_t row) {
  if (!counts_.empty()) ++counts_[static_cast<size_t>(row)];
}

uint32_t RowCache::frequency(int64_t row) const {
  return counts_.empty() ? 0 : counts_[static_cast<size_t>(row)];
}

int64_t RowCache::choose_slot(int64_t row) const {
  if (sets_ == 0) return -1;
  const int64_t first = set_of(row) * ways_;
  int64_t victim = -1;
  for (int64_t s = first; s < first + ways_; ++s) {
    const int64_t t = tags_[static_cast<size_t>(s)];
    if (t < 0) return s;
    if (locked(s)) continue;
    if (victim < 0) {
      victim = s;
      continue;
    }
    const auto v = static_cast<size_t>(victim), c = static_cast<size_t>(s);
    const bool older = last_used_[c] < last_used_[v];
    if (policy_ == Policy::lru) {
      if (older) victim = s;
    } else {
      const uint32_t fc = frequency(t), fv = frequency(tags_[v]);
      if (fc < fv || (fc == fv && older)) victim = s;  // ties: least recently used
    }
  }
  if (victim >= 0 && policy_ == Policy::lfu && frequency(row) < frequency(tag(victim))) return -1;
  return victim;
}

void RowCache::install(int64_t slot, int64_t row) {
  tags_[static_cast<size_t>(slot)] = row;
  touch(slot);
}

void RowCache::clear() {
  std::fill(tags_.begin(), tags_.end(), -1);
  std::fill(last_used_.begin(), last_used_.end(), 0);
  clock_ = step_start_ = 0;
}

int64_t RowCache::data_bytes() const {
  return static_cast<int64_t>(data_.size() * sizeof(float));
}
int64_t RowCache::tag_bytes() const {
  return static_cast<int64_t>(tags_.size() * sizeof(int64_t) +
                              last_used_.size() * sizeof(uint64_t));
}
int64_t RowCache::count_bytes() const {
  return static_cast<int64_t>(counts_.size() * sizeof(uint32_t));
}

}  // namespace paralab::emb
