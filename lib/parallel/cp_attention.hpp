// cp_attention.hpp: exact context-parallel (CP) attention for training, forward
// and backward, over the ranks of an MPI communicator (issue 7: wlb_4d; the
// all-gather CP of Llama 3 that WLB-LLM builds on). One micro-batch is a packed
// sequence of whole documents; its tokens are split over the CP ranks by a
// packing::CpShards (any split: per-sequence, per-document, adaptive, or one
// built by hand), and attention is causal within documents, in GLOBAL
// positions.
//
//   forward   one allgatherv of K and V together (FP32, variable counts),
//             placed in global position order; then, for each contiguous run
//             [b, e) of local positions (adjacent ranges merged), the kernel
//             runs its queries (q_offset = b) against the keys [start of the
//             document holding b, e) only (k_offset = that start): keys before
//             that document or after e are masked anyway, so they are skipped.
//             Outputs O and the LSE of the local queries.
//   backward  re-gathers K and V (one allgatherv, as in the forward; the
//             forward keeps nothing, so one object serves every layer and
//             micro-batch of a pipeline schedule without holding cp x the
//             local K/V per layer in flight), runs the kernel's backward per
//             run: dQ of the local queries, and partial dK, dV over the runs'
//             key windows, summed into a full-sequence buffer; then one
//             reduce_scatter_v (FP32 sum, per-rank counts, rows permuted to
//             rank order) gives each owner the dK, dV of its tokens.
//
// Exact in FP32: every query sees exactly the keys it sees on one rank; the
// gradients differ from the single-rank ones only by the order of the FP32
// additions of the reduce-scatter (tests/parallel/test_cp_attention.cpp).
//
// Layouts, row-major, local rows in the order of the rank's ranges:
//   q, o, d_o, dq   [n_local, H, D]       (H query heads)
//   k, v, dk, dv    [n_local, H_kv, D]    (H_kv key/value heads, GQA)
//   lse             [n_local, H]          FP32, natural log
// RoPE is the caller's: q and k arrive already rotated, dq and dk leave
// unrotated (apply the inverse rotation after backward).
//
// Every call is collective over the communicator: every rank calls it with the
// same layout, in the same order. Buffers are reused: after the first call at
// a given size no call allocates (the kernels' own scratch aside).
//
// BF16: forward also takes BF16 q, k, v (gathered as BF16 bits: exact, half
// the bytes). Backward is FP32 only. The kernels are kernels::cpu (no CUDA
// path yet).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "comm/comm.hpp"
#include "core/bf16.hpp"
#include "packing/packing.hpp"

namespace paralab::parallel {

// Which positions each CP rank holds for one micro-batch, with the offsets the
// collectives need. Every rank builds the same one from the same inputs; build
// it once per micro-batch and pass it to every layer's calls.
class CpLayout {
 public:
  CpLayout() = default;
  // doc_starts: first positions of the documents, ascending, within
  // [0, length) (empty = one document). shards: shards[c] = the ascending,
  // disjoint ranges CP rank c holds; together they cover [0, length) exactly
  // once (a rank may hold none). Throws UsageError (naming the problem)
  // otherwise, identically on every rank.
  CpLayout(std::span<const int64_t> doc_starts, int64_t length, packing::CpShards shards);

  int ranks() const { return static_cast<int>(shards_.size()); }
  int64_t length() const { return length_; }
  std::span<const int64_t> doc_starts() const { return doc_starts_; }
  const packing::CpShards& shards() const { return shards_; }
  std::span<const packing::TokenRange> ranges(int rank) const;
  // The same positions with adjacent ranges merged: the contiguous runs the
  // kernels and copies work on (fewer, longer calls).
  std::span<const packing::TokenRange> runs(int rank) const;
  // Tokens rank `rank` holds (n_local) and the row its tokens start at when
  // the ranks' tokens are laid out in rank order.
  int64_t tokens(int rank) const;
  int64_t first_row(int rank) const;
  // Global positions of rank `rank`'s tokens, in local row order.
  std::vector<int64_t> positions(int rank) const;
  // The first position of the document holding `position` (0 when none).
  int64_t doc_start_of(int64_t position) const;

 private:
  int64_t length_ = 0;
  std::vector<int64_t> doc_starts_;
  packing::CpShards shards_;        // as given, less empty ranges
  packing::CpShards runs_;          // shards_ with adjacent ranges merged
  std::vector<int64_t> rank_rows_;  // [ranks + 1]: prefix sums of tokens(rank)
};

// Seconds one call (or several, summed) spent in each phase.
struct CpAttentionTiming {
  double gather_s = 0;          // all-gather of K/V and placing it in position order
  double compute_s = 0;         // attention kernels, with summing the partial dK/dV
  double reduce_scatter_s = 0;  // backward: rank-order permute and reduce-scatter of dK/dV
  double total_s() const { return gather_s + compute_s + reduce_scatter_s; }
  CpAttentionTiming& operator+=(const CpAttentionTiming& other);
};

class CpAttention {
 public:
  // comm: the CP group (not duplicated; its size must equal the layouts'
  // ranks). heads % kv_heads == 0; scale 0 = 1/sqrt(head_dim). Throws
  // UsageError for impossible head counts.
  CpAttention(comm::Communicator& comm, int heads, int kv_heads, int head_dim, float scale = 0);

  int rank() const { return rank_; }
  int size() const { return size_; }
  int heads() const { return heads_; }
  int kv_heads() const { return kv_heads_; }
  int head_dim() const { return head_dim_; }

  // o [n_local, H, D] and lse [n_local, H] of this rank's queries. Pointers
  // may be null when this rank holds no token.
  void forward(const CpLayout& layout, const float* q, const float* k, const float* v, float* o,
               float* lse);
  // BF16 inputs (the BF16 policies): the gather moves the BF16 values as they
  // are (exact, half the bytes) and the kernel's BF16 path computes; O and LSE
  // stay FP32.
  void forward(const CpLayout& layout, const bf16* q, const bf16* k, const bf16* v, float* o,
               float* lse);
  // dq [n_local, H, D], dk and dv [n_local, H_kv, D] (overwritten) from the
  // forward's inputs (FP32; under BF16 policies the BF16-rounded values
  // widened), its o and lse, and d_o. FP32 throughout.
  void backward(const CpLayout& layout, const float* q, const float* k, const float* v,
                const float* o, const float* lse, const float* d_o, float* dq, float* dk,
                float* dv);

  // The phases of the last call, and their sum over calls since reset_timing().
  const CpAttentionTiming& last_timing() const { return last_; }
  const CpAttentionTiming& total_timing() const { return total_; }
  void reset_timing() { total_ = {}; }

 private:
  template <class E>
  void gather_kv(const CpLayout& layout, const E* k, const E* v, std::vector<E>& by_rank,
                 std::vector<E>& keys, std::vector<E>& values);
  template <class E>
  void forward_impl(const CpLayout& layout, const E* q, const E* k, const E* v, float* o,
                    float* lse, std::vector<E>& by_rank, std::vector<E>& keys,
                    std::vector<E>& values);
  void check_layout(const CpLayout& layout);
  void compute_backward(const CpLayout& layout, const float* q, const float* o, const float* lse,
                        const float* d_o, float* dq);
  void reduce_scatter_grads(const CpLayout& layout, float* dk, float* dv);
  void finish_call(const CpAttentionTiming& timing);

  comm::Communicator& comm_;
  int rank_ = 0, size_ = 1;
  int heads_, kv_heads_, head_dim_;
  float scale_;
  // Reused buffers (grow, never shrink). by_rank: every rank's K then V rows,
  // in rank order (the all-gather's receive buffer, this rank's block filled in
  // place); in backward it then carries the dK|dV partials to reduce-scatter.
  std::vector<float> by_rank_, keys_, values_;  // keys_, values_: [length, H_kv, D]
  std::vector<bf16> by_rank16_, keys16_, values16_;
  std::vector<float> dk_full_, dv_full_;      // partial dK, dV over the whole sequence
  std::vector<float> dk_window_, dv_window_;  // one range's key-window gradients
  std::vector<float> grad_share_;             // this rank's reduced dK|dV
  std::vector<size_t> counts_, displs_;       // per-rank element counts and offsets
  CpAttentionTiming last_, total_;
};

}  // namespace paralab::parallel
