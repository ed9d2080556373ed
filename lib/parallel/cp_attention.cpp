#include "parallel/cp_attention.hpp"

#include <algorithm>
#include <climits>
#include <cstring>
#include <string>
#include <type_traits>

#include "core/errors.hpp"
#include "core/timer.hpp"
#include "kernels/attention.hpp"

namespace paralab::parallel {

namespace {

using packing::TokenRange;

std::string range_text(const TokenRange& r) {
  return "[" + std::to_string(r.begin) + ", " + std::to_string(r.end) + ")";
}

size_t rows(int64_t count, size_t width) {
  return static_cast<size_t>(count) * width;
}

// Copies `count` rows of `width` elements; null pointers are fine when count is 0.
template <class E>
void copy_rows(const E* from, E* to, int64_t count, size_t width) {
  if (count > 0) std::memcpy(to, from, rows(count, width) * sizeof(E));
}

template <class E>
DType dtype_of() {
  return std::is_same_v<E, bf16> ? DType::bf16 : DType::f32;
}

}  // namespace

// --- CpLayout -------------------------------------------------------------------

CpLayout::CpLayout(std::span<const int64_t> doc_starts, int64_t length, packing::CpShards shards)
    : length_(length), doc_starts_(doc_starts.begin(), doc_starts.end()) {
  if (length < 0) throw UsageError("CP layout: negative sequence length " + std::to_string(length));
  if (shards.empty()) throw UsageError("CP layout: no CP ranks (empty shards)");
  for (size_t i = 0; i < doc_starts_.size(); ++i) {
    const int64_t s = doc_starts_[i];
    if (s < 0 || s > length || (i > 0 && s < doc_starts_[i - 1]))
      throw UsageError("CP layout: doc_starts must ascend within [0, " + std::to_string(length) +
                       "]; entry " + std::to_string(i) + " is " + std::to_string(s));
  }
  // Empty ranges carry nothing: drop them, so every kept range has a token.
  for (auto& ranges : shards) {
    std::erase_if(ranges, [](const TokenRange& r) { return r.begin == r.end; });
  }
  std::vector<TokenRange> all;
  for (size_t c = 0; c < shards.size(); ++c) {
    for (size_t i = 0; i < shards[c].size(); ++i) {
      const TokenRange& r = shards[c][i];
      if (r.begin < 0 || r.end > length || r.begin > r.end)
        throw UsageError("CP layout: rank " + std::to_string(c) + " holds " + range_text(r) +
                         ", outside the sequence [0, " + std::to_string(length) + ")");
      if (i > 0 && r.begin < shards[c][i - 1].end)
        throw UsageError("CP layout: rank " + std::to_string(c) + "'s ranges are not ascending: " +
                         range_text(shards[c][i - 1]) + " then " + range_text(r));
      all.push_back(r);
    }
  }
  std::sort(all.begin(), all.end(),
            [](const TokenRange& a, const TokenRange& b) { return a.begin < b.begin; });
  int64_t covered = 0;
  for (const TokenRange& r : all) {
    if (r.begin != covered)
      throw UsageError("CP layout: the shards " +
                       std::string(r.begin < covered ? "overlap at " : "miss tokens before ") +
                       range_text(r) + " of a sequence of " + std::to_string(length));
    covered = r.end;
  }
  if (covered != length)
    throw UsageError("CP layout: the shards cover " + std::to_string(covered) + " of " +
                     std::to_string(length) + " tokens");
  shards_ = std::move(shards);
  runs_.resize(shards_.size());
  for (size_t c = 0; c < shards_.size(); ++c) {
    for (const TokenRange& r : shards_[c]) {
      if (!runs_[c].empty() && runs_[c].back().end == r.begin) {
        runs_[c].back().end = r.end;
      } else {
        runs_[c].push_back(r);
      }
    }
  }
  rank_rows_.assign(shards_.size() + 1, 0);
  for (size_t c = 0; c < shards_.size(); ++c) {
    int64_t tokens = 0;
    for (const TokenRange& r : shards_[c]) tokens += r.end - r.begin;
    rank_rows_[c + 1] = rank_rows_[c] + tokens;
  }
}

std::span<const TokenRange> CpLayout::ranges(int rank) const {
  return shards_.at(rank);
}

std::span<const TokenRange> CpLayout::runs(int rank) const {
  return runs_.at(rank);
}

int64_t CpLayout::tokens(int rank) const {
  return rank_rows_.at(rank + 1) - rank_rows_.at(rank);
}

int64_t CpLayout::first_row(int rank) const {
  return rank_rows_.at(rank);
}

std::vector<int64_t> CpLayout::positions(int rank) const {
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(tokens(rank)));
  for (const TokenRange& r : runs(rank)) {
    for (int64_t p = r.begin; p < r.end; ++p) out.push_back(p);
  }
  return out;
}

int64_t CpLayout::doc_start_of(int64_t position) const {
  const auto next = std::upper_bound(doc_starts_.begin(), doc_starts_.end(), position);
  return next == doc_starts_.begin() ? 0 : *(next - 1);
}

// --- CpAttention ------------------------------------------------------------------

CpAttentionTiming& CpAttentionTiming::operator+=(const CpAttentionTiming& other) {
  gather_s += other.gather_s;
  compute_s += other.compute_s;
  reduce_scatter_s += other.reduce_scatter_s;
  return *this;
}

CpAttention::CpAttention(comm::Communicator& comm, int heads, int kv_heads, int head_dim,
                         float scale)
    : comm_(comm),
      rank_(comm.rank()),
      size_(comm.size()),
      heads_(heads),
      kv_heads_(kv_heads),
      head_dim_(head_dim),
      scale_(scale) {
  if (heads <= 0 || kv_heads <= 0 || head_dim <= 0 || heads % kv_heads != 0)
    throw UsageError("CP attention: need positive heads, kv_heads and head_dim with heads (" +
                     std::to_string(heads) + ") a multiple of kv_heads (" +
                     std::to_string(kv_heads) + ")");
}

// Checks the layout against the communicator and sets the per-rank counts and
// offsets (elements) of the K|V blocks: rank r sends 2 * tokens(r) rows.
void CpAttention::check_layout(const CpLayout& layout) {
  if (layout.ranks() != size_)
    throw UsageError("CP attention: the layout has " + std::to_string(layout.ranks()) +
                     " CP ranks but the communicator " + std::to_string(size_));
  const size_t kv_row = rows(kv_heads_, head_dim_);
  const size_t total = 2 * rows(layout.length(), kv_row);
  // The kernels take the sequence length as int, and MPI its counts.
  if (total > static_cast<size_t>(INT_MAX))
    throw UsageError("CP attention: a sequence of " + std::to_string(layout.length()) +
                     " tokens has too many K/V elements for MPI's int counts");
  counts_.resize(static_cast<size_t>(size_));
  displs_.resize(static_cast<size_t>(size_));
  for (int r = 0; r < size_; ++r) {
    counts_[r] = 2 * rows(layout.tokens(r), kv_row);
    displs_[r] = 2 * rows(layout.first_row(r), kv_row);
  }
}

// All-gathers every rank's K and V (one collective: each rank's block is its
// K rows then its V rows) and places the rows in position order.
template <class E>
void CpAttention::gather_kv(const CpLayout& layout, const E* k, const E* v, std::vector<E>& by_rank,
                            std::vector<E>& keys, std::vector<E>& values) {
  const size_t kv_row = rows(kv_heads_, head_dim_);
  const int64_t n = layout.tokens(rank_);
  by_rank.resize(2 * rows(layout.length(), kv_row));
  E* mine = by_rank.data() + displs_[rank_];
  copy_rows(k, mine, n, kv_row);
  copy_rows(v, mine + rows(n, kv_row), n, kv_row);
  comm_.allgatherv(mine, counts_[rank_], by_rank.data(), counts_, displs_, dtype_of<E>());

  keys.resize(rows(layout.length(), kv_row));
  values.resize(rows(layout.length(), kv_row));
  for (int r = 0; r < size_; ++r) {
    const E* block_k = by_rank.data() + displs_[r];
    const E* block_v = block_k + rows(layout.tokens(r), kv_row);
    int64_t local = 0;
    for (const TokenRange& range : layout.runs(r)) {
      const int64_t count = range.end - range.begin;
      copy_rows(block_k + rows(local, kv_row), keys.data() + rows(range.begin, kv_row), count,
                kv_row);
      copy_rows(block_v + rows(local, kv_row), values.data() + rows(range.begin, kv_row), count,
                kv_row);
      local += count;
    }
  }
}

namespace {

// The kernel call for one local range [b, e): its queries at their global
// positions against the keys [start of b's document, e), the only ones any of
// them can see under the causal document mask.
struct RangeCall {
  kernels::AttentionArgs args;
  int64_t key_first = 0;  // global position of the window's first key
};

RangeCall range_call(const CpLayout& layout, const TokenRange& range, int heads, int kv_heads,
                     int head_dim, float scale) {
  RangeCall call;
  call.key_first = layout.doc_start_of(range.begin);
  call.args.shape = {static_cast<int>(range.end - range.begin),
                     static_cast<int>(range.end - call.key_first), heads, kv_heads, head_dim};
  call.args.mask.causal = true;
  call.args.mask.q_offset = range.begin;
  call.args.mask.k_offset = call.key_first;
  call.args.mask.doc_starts = layout.doc_starts();
  call.args.scale = scale;
  return call;
}

}  // namespace

template <class E>
void CpAttention::forward_impl(const CpLayout& layout, const E* q, const E* k, const E* v, float* o,
                               float* lse, std::vector<E>& by_rank, std::vector<E>& keys,
                               std::vector<E>& values) {
  check_layout(layout);
  CpAttentionTiming timing;
  Stopwatch watch;
  gather_kv(layout, k, v, by_rank, keys, values);
  timing.gather_s = watch.seconds();

  watch.restart();
  const size_t q_row = rows(heads_, head_dim_), kv_row = rows(kv_heads_, head_dim_);
  int64_t local = 0;
  for (const TokenRange& range : layout.runs(rank_)) {
    const RangeCall call = range_call(layout, range, heads_, kv_heads_, head_dim_, scale_);
    kernels::cpu::attention_forward(call.args, q + rows(local, q_row),
                                    keys.data() + rows(call.key_first, kv_row),
                                    values.data() + rows(call.key_first, kv_row),
                                    o + rows(local, q_row), lse + rows(local, heads_));
    local += range.end - range.begin;
  }
  timing.compute_s = watch.seconds();
  finish_call(timing);
}

void CpAttention::forward(const CpLayout& layout, const float* q, const float* k, const float* v,
                          float* o, float* lse) {
  forward_impl(layout, q, k, v, o, lse, by_rank_, keys_, values_);
}

void CpAttention::forward(const CpLayout& layout, const bf16* q, const bf16* k, const bf16* v,
                          float* o, float* lse) {
  forward_impl(layout, q, k, v, o, lse, by_rank16_, keys16_, values16_);
}

// dQ of the local queries and this rank's partial dK, dV over the whole
// sequence (dk_full_, dv_full_) from the gathered keys_ and values_.
void CpAttention::compute_backward(const CpLayout& layout, const float* q, const float* o,
                                   const float* lse, const float* d_o, float* dq) {
  const size_t q_row = rows(heads_, head_dim_), kv_row = rows(kv_heads_, head_dim_);
  dk_full_.assign(rows(layout.length(), kv_row), 0.0f);
  dv_full_.assign(rows(layout.length(), kv_row), 0.0f);
  // The kernel overwrites its window's dK, dV: a window over rows no earlier
  // range touched is written in place; one that overlaps (a document's two
  // symmetric chunks share its start) goes through scratch and is added.
  int64_t touched_end = 0;
  int64_t local = 0;
  for (const TokenRange& range : layout.runs(rank_)) {
    const RangeCall call = range_call(layout, range, heads_, kv_heads_, head_dim_, scale_);
    const size_t window = rows(call.args.shape.S, kv_row);
    const size_t first = rows(call.key_first, kv_row);
    const bool in_place = call.key_first >= touched_end;
    if (!in_place) {
      dk_window_.resize(window);
      dv_window_.resize(window);
    }
    float* dk = in_place ? dk_full_.data() + first : dk_window_.data();
    float* dv = in_place ? dv_full_.data() + first : dv_window_.data();
    kernels::cpu::attention_backward(call.args, q + rows(local, q_row), keys_.data() + first,
                                     values_.data() + first, o + rows(local, q_row),
                                     lse + rows(local, heads_), d_o + rows(local, q_row),
                                     dq + rows(local, q_row), dk, dv);
    if (!in_place) {
      float* to_k = dk_full_.data() + first;
      float* to_v = dv_full_.data() + first;
      for (size_t i = 0; i < window; ++i) {
        to_k[i] += dk_window_[i];
        to_v[i] += dv_window_[i];
      }
    }
    touched_end = std::max(touched_end, range.end);
    local += range.end - range.begin;
  }
}

// Permutes the partial dK|dV to rank order (each rank's block: its dK rows then
// its dV rows, like the gather) into by_rank_, sums them over the ranks with
// one reduce-scatter, and hands out this rank's share.
void CpAttention::reduce_scatter_grads(const CpLayout& layout, float* dk, float* dv) {
  const size_t kv_row = rows(kv_heads_, head_dim_);
  by_rank_.resize(2 * rows(layout.length(), kv_row));
  for (int r = 0; r < size_; ++r) {
    float* block_k = by_rank_.data() + displs_[r];
    float* block_v = block_k + rows(layout.tokens(r), kv_row);
    int64_t local = 0;
    for (const TokenRange& range : layout.runs(r)) {
      const int64_t count = range.end - range.begin;
      copy_rows(dk_full_.data() + rows(range.begin, kv_row), block_k + rows(local, kv_row), count,
                kv_row);
      copy_rows(dv_full_.data() + rows(range.begin, kv_row), block_v + rows(local, kv_row), count,
                kv_row);
      local += count;
    }
  }
  const int64_t n = layout.tokens(rank_);
  grad_share_.resize(2 * rows(n, kv_row));
  comm_.reduce_scatter_v(by_rank_.data(), grad_share_.data(), counts_, DType::f32,
                         comm::ReduceOp::sum);
  copy_rows(grad_share_.data(), dk, n, kv_row);
  copy_rows(grad_share_.data() + rows(n, kv_row), dv, n, kv_row);
}

void CpAttention::backward(const CpLayout& layout, const float* q, const float* k, const float* v,
                           const float* o, const float* lse, const float* d_o, float* dq, float* dk,
                           float* dv) {
  check_layout(layout);
  CpAttentionTiming timing;
  Stopwatch watch;
  gather_kv(layout, k, v, by_rank_, keys_, values_);
  timing.gather_s = watch.seconds();

  watch.restart();
  compute_backward(layout, q, o, lse, d_o, dq);
  timing.compute_s = watch.seconds();

  watch.restart();
  reduce_scatter_grads(layout, dk, dv);
  timing.reduce_scatter_s = watch.seconds();
  finish_call(timing);
}

void CpAttention::finish_call(const CpAttentionTiming& timing) {
  last_ = timing;
  total_ += timing;
}

}  // namespace paralab::parallel
