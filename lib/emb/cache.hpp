// cache.hpp: the set-associative FP32 row cache of one table (issue 16),
// modelled on FBGEMM's training cache (split_table_batched_embeddings with
// a "UVM caching" placement: lxu_cache_state, LRU or LFU).
//
// Geometry: wanted = round(fraction * rows) slots; ways = min(assoc,
// wanted); sets = floor(wanted / ways); slots = sets * ways (so at most the
// fraction asked for). Row r lives only in set hash(r) mod sets (a
// splitmix64 hash, like FBGEMM's murmur3 finaliser), in any of its ways.
//
// Policies (the victim among the set's ways that the current step has not
// used: those rows are "locked", as FBGEMM locks the rows of the batch in
// flight):
//   LRU  the way used longest ago (a global access clock per slot).
//   LFU  the way whose row has the smallest access count, counted per table
//        row over the whole run (FBGEMM's lfu_state, one counter per row,
//        counted once per batch a row appears in); a row is admitted only
//        if its count is at least the victim's, so a hot row is never
//        pushed out by a colder one.
// An empty way is always taken first. When every way of the set is locked
// (or LFU refuses), the row stays uncached for the step: it is read and
// updated in its low-precision storage.
//
// The cache holds tags and policy state; the FP32 data of the slots sit in
// one [slots, dim] buffer here too. Filling and writing back (the format
// conversions) is the table's job (table.hpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace paralab::emb {

enum class Policy { lru, lfu };
std::string to_string(Policy p);
Policy parse_policy(const std::string& text);  // UsageError

struct CacheConfig {
  double fraction = 0;  // of the table's rows, in [0, 1]
  int assoc = 32;       // ways per set (FBGEMM's default is 32)
  Policy policy = Policy::lru;
  void validate() const;  // UsageError
};

// The geometry and bytes a RowCache of `table_rows` rows allocates (the
// constructor uses these; simulate.hpp's memory model too).
struct CacheGeometry {
  int ways = 0;
  int64_t sets = 0;
  int64_t slots() const { return sets * ways; }
};
CacheGeometry cache_geometry(int64_t table_rows, const CacheConfig& config);
// FP32 data, tags + LRU clock, LFU per-row counts.
int64_t cache_data_bytes(int64_t slots, int dim);
int64_t cache_tag_bytes(int64_t slots);
int64_t cache_count_bytes(int64_t table_rows, int64_t slots, Policy policy);

class RowCache {
 public:
  RowCache() = default;
  RowCache(int64_t table_rows, int dim, const CacheConfig& config);

  int64_t slots() const { return sets_ * ways_; }
  int64_t sets() const { return sets_; }
  int ways() const { return ways_; }
  int dim() const { return dim_; }
  Policy policy() const { return policy_; }

  int64_t set_of(int64_t row) const;
  // The slot holding `row`, or -1.
  int64_t find(int64_t row) const;
  // The row a slot holds, -1 when empty.
  int64_t tag(int64_t slot) const { return tags_[static_cast<size_t>(slot)]; }
  float* data(int64_t slot) { return data_.data() + slot * dim_; }
  const float* data(int64_t slot) const { return data_.data() + slot * dim_; }

  // A new step: rows used from now on are locked until the next call.
  void begin_step() { step_start_ = clock_; }
  // LFU bookkeeping: one more batch used this row (no-op for LRU).
  void count(int64_t row);
  // Marks a slot used now (LRU order, and locked for this step).
  void touch(int64_t slot) { last_used_[static_cast<size_t>(slot)] = ++clock_; }
  // The slot `row` would take: empty, else the policy's victim, else -1
  // (every way locked, or LFU refuses). The caller writes the victim back.
  int64_t choose_slot(int64_t row) const;
  // Records that `slot` now holds `row` (data filled by the caller), used now.
  void install(int64_t slot, int64_t row);

  // Empties every slot (after the caller wrote them back); LFU counts stay.
  void clear();

  // Bytes allocated: FP32 data; tags and the LRU clock; LFU's per-row counts.
  int64_t data_bytes() const;
  int64_t tag_bytes() const;
  int64_t count_bytes() const;

 private:
  bool locked(int64_t slot) const { return last_used_[static_cast<size_t>(slot)] > step_start_; }
  uint32_t frequency(int64_t row) const;

  int dim_ = 0;
  int ways_ = 0;
  int64_t sets_ = 0;
  Policy policy_ = Policy::lru;
  std::vector<int64_t> tags_;        // [slots], -1 empty
  std::vector<uint64_t> last_used_;  // [slots], clock value of the last access
  std::vector<uint32_t> counts_;     // [table rows], LFU only
  std::vector<float> data_;          // [slots, dim]
  uint64_t clock_ = 0, step_start_ = 0;
};

}  // namespace paralab::emb
