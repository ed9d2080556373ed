// attention_forward.cpp: the CPU attention forward, FP32 and BF16 inputs, flash-attention style.
// A work item holds a block of query rows and streams the key blocks they can see, keeping a
// running max and sum per row (online softmax): the T x S score matrix never exists, and key
// blocks that no row of the item sees are never touched, so work follows the mask's FLOPs.
//
// Blocking:
//   row        one (query token, query head) pair
//   work item  ~kItemRows rows: a block of tokens times a set of query heads that share one
//              key/value head (GQA), so each key block is read once for all of them
//   key block  kKeyBlock = 64 keys, packed (K transposed; for BF16 also V) so that a tile
//              reads 64 keys as four 16-lane vectors
//   tile       up to kTileRows = 6 rows against one key block: S = Q K^T in 24 registers, the
//              online softmax on those registers, then O = alpha O + P V
// Kernels: AVX-512 (FMA) for FP32 and AVX512-BF16 (vdpbf16ps on pair-interleaved operands, P
// rounded to BF16, FP32 accumulation) for BF16, chosen at run time; a portable tile kernel
// serves other CPUs and head dimensions that are not a multiple of 16 (BF16 inputs are then
// widened to FP32 first). Threads: OpenMP over work items, costliest first.

#include <omp.h>
#include "kernels/cpu/x86_intrinsics.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

#include "kernels/attention.hpp"
#include "kernels/cpu/dispatch.hpp"

// AVX-512 code is compiled only into functions carrying this attribute and runs only after a
// run-time check, so the library still runs on any x86-64.
#define PARALAB_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))
#define PARALAB_AVX512_INLINE PARALAB_AVX512 inline __attribute__((always_inline))

namespace paralab::kernels::cpu {

namespace {

constexpr int kKeyBlock = 64;
constexpr int kTileRows = 6;
// Rows per work item: whole 6-row tiles for every power-of-two GQA group up to 32; measured
// faster than 48 (less reuse of each key block) and 192 (Q and O of an item spill out of L2).
constexpr int kItemRows = 96;
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2 = 0.693147180559945309f;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

size_t ceil_div(size_t a, size_t b) {
  return (a + b - 1) / b;
}

// --- which keys each query sees -------------------------------------------------------------

// Keys [lo, hi) of a query (empty when lo >= hi). Every mask kind leaves one interval, as in
// attention_forward_flops: causal bounds it above, the query's document on both sides.
struct KeyRange {
  int lo = 0, hi = 0;
};

std::vector<KeyRange> key_ranges(const AttentionArgs& args) {
  const AttentionMask& mask = args.mask;
  const auto& starts = mask.doc_starts;
  const int64_t S = args.shape.S;
  std::vector<KeyRange> ranges(args.shape.T);
  for (int i = 0; i < args.shape.T; ++i) {
    const int64_t position = mask.q_offset + i;
    int64_t lo = 0, hi = S;
    if (mask.causal) hi = std::min(hi, position - mask.k_offset + 1);
    if (!starts.empty()) {
      const auto doc = std::upper_bound(starts.begin(), starts.end(), position);
      if (doc != starts.begin()) lo = std::max(lo, doc[-1] - mask.k_offset);
      if (doc != starts.end()) hi = std::min(hi, *doc - mask.k_offset);
    }
    lo = std::clamp<int64_t>(lo, 0, S);
    hi = std::clamp<int64_t>(hi, lo, S);
    ranges[i] = {static_cast<int>(lo), static_cast<int>(hi)};
  }
  return ranges;
}

// --- the work split -------------------------------------------------------------------------

struct Plan {
  int heads = 1;         // query heads per item, all reading one key/value head
  int tokens = 1;        // query tokens per item
  int head_blocks = 1;   // items per key/value head and token block: group size / heads
  int token_blocks = 0;  // ceil(T / tokens)
  int key_blocks = 0;    // ceil(S / kKeyBlock)
  size_t items(int H_kv) const { return size_t(H_kv) * head_blocks * token_blocks; }
};

// ~kItemRows rows per item with the whole GQA group in one item, made smaller while there are
// fewer than four items per thread (short queries, decoding) so every thread gets work.
Plan make_plan(const AttentionShape& s, int threads) {
  const int group = s.H / s.H_kv;
  Plan plan;
  plan.heads = group;
  plan.tokens = std::max(1, kItemRows / group);
  plan.key_blocks = static_cast<int>(ceil_div(s.S, kKeyBlock));
  const auto update = [&] {
    plan.head_blocks = group / plan.heads;
    plan.token_blocks = static_cast<int>(ceil_div(s.T, plan.tokens));
  };
  update();
  while (plan.items(s.H_kv) < size_t(4) * threads) {
    if (plan.tokens > 16) {
      plan.tokens /= 2;
    } else if (plan.heads > 1) {
      int heads = plan.heads - 1;
      while (group % heads != 0) --heads;
      plan.heads = heads;
    } else {
      break;
    }
    update();
  }
  return plan;
}

struct Item {
  int kv = 0;      // key/value head
  int head0 = 0;   // first query head
  int token0 = 0;  // first query token
  int tokens = 0;
};

Item item_at(const Plan& plan, const AttentionShape& s, size_t index) {
  const int token_block = static_cast<int>(index % plan.token_blocks);
  index /= plan.token_blocks;
  const int head_block = static_cast<int>(index % plan.head_blocks);
  const int kv = static_cast<int>(index / plan.head_blocks);
  Item item;
  item.kv = kv;
  item.head0 = kv * (s.H / s.H_kv) + head_block * plan.heads;
  item.token0 = token_block * plan.tokens;
  item.tokens = std::min(plan.tokens, s.T - item.token0);
  return item;
}

// Items ordered by their visible key count, largest first, so that under dynamic scheduling
// the long items (late causal blocks) start early and the short ones fill in at the end.
std::vector<size_t> item_order(const Plan& plan, const AttentionShape& s,
                               const std::vector<KeyRange>& ranges) {
  std::vector<double> cost(plan.items(s.H_kv));
  for (size_t index = 0; index < cost.size(); ++index) {
    const Item item = item_at(plan, s, index);
    for (int t = item.token0; t < item.token0 + item.tokens; ++t)
      cost[index] += ranges[t].hi - ranges[t].lo + kKeyBlock;  // + a block: per-row overhead
  }
  std::vector<size_t> order(cost.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return cost[a] > cost[b]; });
  return order;
}

// --- packed operands ------------------------------------------------------------------------

// K, block by block and transposed, so that a tile reads the 64 keys of one dimension d as
// contiguous vectors: FP32 kt[kv][block][d][key]; BF16 interleaves pairs of dimensions
// (kt[kv][block][d/2][key][2]), the operand layout of vdpbf16ps. Keys past S are zero.
// Packed once per call when several work items share each key block; otherwise (decoding:
// one item per key/value head) each item packs a block as it reaches it, into a buffer that
// stays in cache, instead of writing and re-reading a packed copy of all of K.
template <class T>
size_t packed_key_index(int d, int key) {
  if constexpr (std::is_same_v<T, bf16>)
    return size_t(d / 2) * 2 * kKeyBlock + key * 2 + d % 2;
  else
    return size_t(d) * kKeyBlock + key;
}

// Key block `block` of key/value head kv, packed into out [kKeyBlock * D].
template <class T>
void pack_key_block(const AttentionShape& s, const T* k, int kv, int block, T* out) {
  const int keys = std::min(kKeyBlock, s.S - block * kKeyBlock);
  if (keys < kKeyBlock) std::fill_n(out, size_t(kKeyBlock) * s.D, T{});
  for (int key = 0; key < keys; ++key) {
    const T* row = k + (size_t(block * kKeyBlock + key) * s.H_kv + kv) * s.D;
    for (int d = 0; d < s.D; ++d) out[packed_key_index<T>(d, key)] = row[d];
  }
}

// BF16 V with pairs of keys interleaved (vp[kv][block][key/2][d][2]), so that P V runs on
// vdpbf16ps with a broadcast pair of probabilities; keys past S are zero. (FP32 V needs no
// packing: P V reads its rows in place.)
void pack_value_block(const AttentionShape& s, const bf16* v, int kv, int block, bf16* out) {
  const int keys = std::min(kKeyBlock, s.S - block * kKeyBlock);
  if (keys < kKeyBlock) std::fill_n(out, size_t(kKeyBlock) * s.D, bf16{});
  for (int key = 0; key < keys; ++key) {
    const bf16* row = v + (size_t(block * kKeyBlock + key) * s.H_kv + kv) * s.D;
    for (int d = 0; d < s.D; ++d) out[(size_t(key / 2) * s.D + d) * 2 + key % 2] = row[d];
  }
}

// Every block of every key/value head, [H_kv][key_blocks][kKeyBlock * D], packed in parallel.
template <class T, class PackBlock>
std::vector<T> pack_all(const AttentionShape& s, int key_blocks, const T* x, PackBlock pack) {
  const size_t block_size = size_t(kKeyBlock) * s.D;
  std::vector<T> packed(size_t(s.H_kv) * key_blocks * block_size);
#pragma omp parallel for collapse(2) schedule(static)
  for (int kv = 0; kv < s.H_kv; ++kv)
    for (int block = 0; block < key_blocks; ++block)
      pack(s, x, kv, block, packed.data() + (size_t(kv) * key_blocks + block) * block_size);
  return packed;
}

// --- one tile ---------------------------------------------------------------------------------

// Up to kTileRows rows against one key block. Scores are raw dot products; the softmax works in
// base 2 on c * score, c = scale * log2(e), with m the running max of c * score and l the
// running sum of 2^(c * score - m) of each row.
template <class T>
struct TileJob {
  int rows = 0;
  int D = 0;
  // Per row: the visible keys [lo, hi) within the block; keys past S are never visible.
  const int* lo = nullptr;
  const int* hi = nullptr;
  const T* q = nullptr;   // [rows][D]
  const T* kt = nullptr;  // the packed key block
  const T* v = nullptr;   // FP32: row 0 of the block in V; BF16: the packed value block
  size_t v_stride = 0;    // FP32: elements between keys in V
  float c = 0;
  float* m = nullptr;  // [rows]
  float* l = nullptr;  // [rows]
  float* o = nullptr;  // [rows][D], unnormalised
};
template <class T>
using TileKernel = void (*)(const TileJob<T>&);

// The keys that any row of the tile sees: P V skips the rest (their P is 0).
template <class T>
KeyRange tile_keys(const TileJob<T>& job) {
  KeyRange keys{kKeyBlock, 0};
  for (int r = 0; r < job.rows; ++r) {
    if (job.lo[r] >= job.hi[r]) continue;
    keys.lo = std::min(keys.lo, job.lo[r]);
    keys.hi = std::max(keys.hi, job.hi[r]);
  }
  return keys;
}

// Online softmax of one row: s[lo, hi) turns from scores into p = 2^(c s - m_new); returns
// alpha = 2^(m_old - m_new), the factor for what the row accumulated before this block.
float softmax_row_portable(float* s, int lo, int hi, float c, float& m, float& l) {
  if (lo >= hi) return 1.0f;
  float peak = s[lo];
  for (int j = lo; j < hi; ++j) peak = std::max(peak, s[j]);
  const float m_new = std::max(m, peak * c);
  const float alpha = std::exp2(m - m_new);
  float sum = 0;
  for (int j = lo; j < hi; ++j) {
    s[j] = std::exp2(s[j] * c - m_new);
    sum += s[j];
  }
  m = m_new;
  l = l * alpha + sum;
  return alpha;
}

// Any D, plain loops: the key and head-dimension loops are contiguous and vectorise.
void tile_portable(const TileJob<float>& job) {
  const int D = job.D;
  for (int r = 0; r < job.rows; ++r) {
    float s[kKeyBlock] = {};
    const float* q = job.q + size_t(r) * D;
    for (int d = 0; d < D; ++d)
      for (int j = 0; j < kKeyBlock; ++j) s[j] += q[d] * job.kt[size_t(d) * kKeyBlock + j];
    const int lo = job.lo[r], hi = job.hi[r];
    const float alpha = softmax_row_portable(s, lo, hi, job.c, job.m[r], job.l[r]);
    float* o = job.o + size_t(r) * D;
    if (alpha != 1.0f)
      for (int d = 0; d < D; ++d) o[d] *= alpha;
    for (int j = lo; j < hi; ++j) {
      const float* v = job.v + j * job.v_stride;
      for (int d = 0; d < D; ++d) o[d] += s[j] * v[d];
    }
  }
}

// --- AVX-512 tiles ----------------------------------------------------------------------------

// 2^x for x <= 0 to ~1e-7 relative: 2^x = 2^n 2^f with n = round(x), |f| <= 1/2, and 2^f by a
// degree-6 fit (max relative error 1e-7 in float). Clamping at -200 makes scalef return an
// exact 0 far below the range where probabilities matter.
PARALAB_AVX512_INLINE __m512 exp2_avx512(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-200.0f));
  const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(x, n);
  __m512 p = _mm512_set1_ps(1.533757750e-4f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.339985989e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.618519805e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550329015e-2f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.402264625e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931471825e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

// The lowest n bits of 64 (all for n >= 64).
uint64_t low_bits(int n) {
  return n >= 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1;
}

// Keys [lo, hi) of a 64-key block as four lane masks.
PARALAB_AVX512_INLINE void visible_lanes(int lo, int hi, __mmask16 (&visible)[4]) {
  const uint64_t bits = lo < hi ? low_bits(hi) & ~low_bits(lo) : 0;
  for (int v = 0; v < 4; ++v) visible[v] = static_cast<__mmask16>(bits >> (16 * v));
}

// The online softmax of R rows held in registers (64 keys each), as softmax_row_portable:
// visible lanes become p = 2^(c s - m_new), the others 0; alpha (lane r for row r) rescales
// what each row accumulated before. All exponentials are vector ones, so no call spills the
// score registers.
template <int R, class T>
PARALAB_AVX512_INLINE void softmax_rows(const TileJob<T>& job, __m512 (&s)[R][4],
                                        float (&alpha)[16]) {
  __mmask16 visible[R][4];
  alignas(64) float shift[16] = {};  // m_old - m_new per row; 0 (alpha = 1) for unseen rows
  float m_new[R];
  for (int r = 0; r < R; ++r) {
    visible_lanes(job.lo[r], job.hi[r], visible[r]);
    __m512 peak = _mm512_set1_ps(kNegInf);
    for (int v = 0; v < 4; ++v) peak = _mm512_mask_max_ps(peak, visible[r][v], peak, s[r][v]);
    m_new[r] = job.m[r];
    if (job.lo[r] < job.hi[r]) {
      m_new[r] = std::max(m_new[r], _mm512_reduce_max_ps(peak) * job.c);
      shift[r] = job.m[r] - m_new[r];
    }
  }
  _mm512_storeu_ps(alpha, exp2_avx512(_mm512_load_ps(shift)));
  const __m512 c = _mm512_set1_ps(job.c);
  for (int r = 0; r < R; ++r) {
    const __m512 m = _mm512_set1_ps(m_new[r]);
    __m512 sum = _mm512_setzero_ps();
    for (int v = 0; v < 4; ++v) {
      s[r][v] = _mm512_maskz_mov_ps(visible[r][v], exp2_avx512(_mm512_fmsub_ps(s[r][v], c, m)));
      sum = _mm512_add_ps(sum, s[r][v]);
    }
    job.m[r] = m_new[r];
    job.l[r] = job.l[r] * alpha[r] + _mm512_reduce_add_ps(sum);
  }
}

// S = Q K^T for R rows and 64 keys: per dimension, four key vectors times R broadcasts.
template <int R>
PARALAB_AVX512_INLINE void scores_f32(const TileJob<float>& job, __m512 (&s)[R][4]) {
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < 4; ++v) s[r][v] = _mm512_setzero_ps();
  for (int d = 0; d < job.D; ++d) {
    const float* k = job.kt + size_t(d) * kKeyBlock;
    const __m512 k0 = _mm512_loadu_ps(k), k1 = _mm512_loadu_ps(k + 16);
    const __m512 k2 = _mm512_loadu_ps(k + 32), k3 = _mm512_loadu_ps(k + 48);
    for (int r = 0; r < R; ++r) {
      const __m512 q = _mm512_set1_ps(job.q[size_t(r) * job.D + d]);
      s[r][0] = _mm512_fmadd_ps(q, k0, s[r][0]);
      s[r][1] = _mm512_fmadd_ps(q, k1, s[r][1]);
      s[r][2] = _mm512_fmadd_ps(q, k2, s[r][2]);
      s[r][3] = _mm512_fmadd_ps(q, k3, s[r][3]);
    }
  }
}

// S = Q K^T on vdpbf16ps: per pair of dimensions, four vectors of 16 keys x 2 times R
// broadcast pairs of the query.
template <int R>
PARALAB_AVX512_INLINE void scores_bf16(const TileJob<bf16>& job, __m512 (&s)[R][4]) {
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < 4; ++v) s[r][v] = _mm512_setzero_ps();
  for (int d = 0; d < job.D; d += 2) {
    const bf16* k = job.kt + size_t(d) * kKeyBlock;
    const __m512bh k0 = (__m512bh)_mm512_loadu_si512(k), k1 = (__m512bh)_mm512_loadu_si512(k + 32);
    const __m512bh k2 = (__m512bh)_mm512_loadu_si512(k + 64);
    const __m512bh k3 = (__m512bh)_mm512_loadu_si512(k + 96);
    for (int r = 0; r < R; ++r) {
      int32_t pair;
      std::memcpy(&pair, job.q + size_t(r) * job.D + d, sizeof pair);
      const __m512bh q = (__m512bh)_mm512_set1_epi32(pair);
      s[r][0] = _mm512_dpbf16_ps(s[r][0], q, k0);
      s[r][1] = _mm512_dpbf16_ps(s[r][1], q, k1);
      s[r][2] = _mm512_dpbf16_ps(s[r][2], q, k2);
      s[r][3] = _mm512_dpbf16_ps(s[r][3], q, k3);
    }
  }
}

// O[:, col, col + 16 NV) = alpha O + P V for R rows over the keys [lo, hi) of the block.
template <int R, int NV>
PARALAB_AVX512_INLINE void accumulate(const TileJob<float>& job,
                                      const float (&p)[kTileRows][kKeyBlock],
                                      const float (&alpha)[16], KeyRange keys, int col) {
  __m512 acc[R][NV];
  for (int r = 0; r < R; ++r) {
    const __m512 a = _mm512_set1_ps(alpha[r]);
    for (int v = 0; v < NV; ++v)
      acc[r][v] = _mm512_mul_ps(a, _mm512_loadu_ps(job.o + size_t(r) * job.D + col + 16 * v));
  }
  for (int j = keys.lo; j < keys.hi; ++j) {
    const float* vrow = job.v + j * job.v_stride + col;
    __m512 x[NV];
    for (int v = 0; v < NV; ++v) x[v] = _mm512_loadu_ps(vrow + 16 * v);
    for (int r = 0; r < R; ++r) {
      const __m512 pr = _mm512_set1_ps(p[r][j]);
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(pr, x[v], acc[r][v]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v)
      _mm512_storeu_ps(job.o + size_t(r) * job.D + col + 16 * v, acc[r][v]);
}

// The same on vdpbf16ps: pairs of keys, P as BF16 pairs, V pair-interleaved. An odd first key
// starts the pair one key early; that key's P is 0.
template <int R, int NV>
PARALAB_AVX512_INLINE void accumulate(const TileJob<bf16>& job,
                                      const uint16_t (&p)[kTileRows][kKeyBlock],
                                      const float (&alpha)[16], KeyRange keys, int col) {
  __m512 acc[R][NV];
  for (int r = 0; r < R; ++r) {
    const __m512 a = _mm512_set1_ps(alpha[r]);
    for (int v = 0; v < NV; ++v)
      acc[r][v] = _mm512_mul_ps(a, _mm512_loadu_ps(job.o + size_t(r) * job.D + col + 16 * v));
  }
  for (int j = keys.lo & ~1; j < keys.hi; j += 2) {
    const bf16* vpair = job.v + (size_t(j / 2) * job.D + col) * 2;
    __m512bh x[NV];
    for (int v = 0; v < NV; ++v) x[v] = (__m512bh)_mm512_loadu_si512(vpair + 32 * v);
    for (int r = 0; r < R; ++r) {
      int32_t pair;
      std::memcpy(&pair, &p[r][j], sizeof pair);
      const __m512bh pr = (__m512bh)_mm512_set1_epi32(pair);
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], pr, x[v]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v)
      _mm512_storeu_ps(job.o + size_t(r) * job.D + col + 16 * v, acc[r][v]);
}

// O = alpha O + P V over the head dimension: chunks of 64 columns (a 6 x 4 register tile),
// then 32 and 16 (D is a multiple of 16 on this path).
template <int R, class T, class P>
PARALAB_AVX512_INLINE void accumulate_columns(const TileJob<T>& job, const P& p,
                                              const float (&alpha)[16], KeyRange keys) {
  int col = 0;
  for (; col + 64 <= job.D; col += 64) accumulate<R, 4>(job, p, alpha, keys, col);
  if (col + 32 <= job.D) {
    accumulate<R, 2>(job, p, alpha, keys, col);
    col += 32;
  }
  if (col + 16 <= job.D) accumulate<R, 1>(job, p, alpha, keys, col);
}

PARALAB_AVX512_INLINE void store_probabilities(const __m512 (&s)[4], float (&p)[kKeyBlock]) {
  for (int v = 0; v < 4; ++v) _mm512_storeu_ps(&p[16 * v], s[v]);
}

// P V runs on BF16 probabilities (round to nearest even); the row sums l keep the FP32 ones.
PARALAB_AVX512_INLINE void store_probabilities(const __m512 (&s)[4], uint16_t (&p)[kKeyBlock]) {
  _mm512_storeu_si512(&p[0], (__m512i)_mm512_cvtne2ps_pbh(s[1], s[0]));
  _mm512_storeu_si512(&p[32], (__m512i)_mm512_cvtne2ps_pbh(s[3], s[2]));
}

// P as stored for P V: FP32, or the bits of BF16 (raw, so the array is not zero-filled).
template <class T>
using Probability = std::conditional_t<std::is_same_v<T, bf16>, uint16_t, float>;

template <int R, class T>
PARALAB_AVX512 void tile_avx512(const TileJob<T>& job) {
  __m512 s[R][4];
  if constexpr (std::is_same_v<T, bf16>)
    scores_bf16<R>(job, s);
  else
    scores_f32<R>(job, s);
  float alpha[16];
  softmax_rows<R>(job, s, alpha);
  alignas(64) Probability<T> p[kTileRows][kKeyBlock];
  for (int r = 0; r < R; ++r) store_probabilities(s[r], p[r]);
  accumulate_columns<R>(job, p, alpha, tile_keys(job));
}

// Tile kernels by row count: entry r - 1 takes r rows.
template <class T>
using TileKernels = std::array<TileKernel<T>, kTileRows>;

template <class T>
TileKernels<T> avx512_tiles() {
  return {tile_avx512<1, T>, tile_avx512<2, T>, tile_avx512<3, T>,
          tile_avx512<4, T>, tile_avx512<5, T>, tile_avx512<6, T>};
}

TileKernels<float> portable_tiles() {
  TileKernels<float> tiles;
  tiles.fill(tile_portable);
  return tiles;
}

// --- the driver -------------------------------------------------------------------------------

// One call's operands and plan.
template <class T>
struct Problem {
  AttentionShape shape;
  Plan plan;
  float c = 0;                   // softmax scale * log2(e)
  std::vector<KeyRange> ranges;  // per query token
  TileKernels<T> tiles = {};
  const T* q = nullptr;
  const T* k = nullptr;
  const T* v = nullptr;
  bool packed_once = false;  // kt (and vp for BF16) hold every block, [H_kv][key_blocks][...]
  std::vector<T> kt, vp;
  float* o = nullptr;
  float* lse = nullptr;
};

// A thread's working set for one item: its rows in (token, head) order.
template <class T>
struct ItemState {
  std::vector<T> q;         // [rows][D]
  std::vector<float> o;     // [rows][D], unnormalised
  std::vector<float> m, l;  // [rows]: running max (base 2) and sum
  std::vector<int> lo, hi;  // [rows]: visible keys within the current key block
  std::vector<T> kt, vp;    // the current key block packed, when not packed once per call
};

template <class T>
void start_item(const Problem<T>& pb, const Item& item, ItemState<T>& st) {
  const auto& s = pb.shape;
  const size_t D = s.D, rows = size_t(item.tokens) * pb.plan.heads;
  st.q.resize(rows * D);
  st.o.assign(rows * D, 0.0f);
  st.m.assign(rows, kNegInf);
  st.l.assign(rows, 0.0f);
  st.lo.resize(rows);
  st.hi.resize(rows);
  if (!pb.packed_once) {
    st.kt.resize(size_t(kKeyBlock) * D);
    if constexpr (std::is_same_v<T, bf16>) st.vp.resize(size_t(kKeyBlock) * D);
  }
  for (int t = 0; t < item.tokens; ++t)
    for (int g = 0; g < pb.plan.heads; ++g)
      std::copy_n(pb.q + (size_t(item.token0 + t) * s.H + item.head0 + g) * D, D,
                  st.q.data() + (size_t(t) * pb.plan.heads + g) * D);
}

// The packed key block `block` of key/value head kv.
template <class T>
const T* key_block(const Problem<T>& pb, int kv, int block, ItemState<T>& st) {
  const size_t size = size_t(kKeyBlock) * pb.shape.D;
  if (pb.packed_once) return pb.kt.data() + (size_t(kv) * pb.plan.key_blocks + block) * size;
  pack_key_block(pb.shape, pb.k, kv, block, st.kt.data());
  return st.kt.data();
}

// The value block: FP32 rows in place in V (TileJob::v_stride apart), BF16 packed.
template <class T>
const T* value_block(const Problem<T>& pb, int kv, int block, ItemState<T>& st) {
  if constexpr (std::is_same_v<T, float>) {
    return pb.v + (size_t(block) * kKeyBlock * pb.shape.H_kv + kv) * pb.shape.D;
  } else {
    const size_t size = size_t(kKeyBlock) * pb.shape.D;
    if (pb.packed_once) return pb.vp.data() + (size_t(kv) * pb.plan.key_blocks + block) * size;
    pack_value_block(pb.shape, pb.v, kv, block, st.vp.data());
    return st.vp.data();
  }
}

// The item's rows against key block `block`: only the tokens that see one of its keys, in
// tiles of kTileRows rows.
template <class T>
void run_key_block(const Problem<T>& pb, const Item& item, int block, ItemState<T>& st) {
  const int j0 = block * kKeyBlock, keys = std::min(kKeyBlock, pb.shape.S - j0);
  const int heads = pb.plan.heads;
  int first = item.tokens, last = 0;  // tokens that see a key of the block
  for (int t = 0; t < item.tokens; ++t) {
    const KeyRange r = pb.ranges[item.token0 + t];
    const int lo = std::clamp(r.lo - j0, 0, keys), hi = std::clamp(r.hi - j0, lo, keys);
    for (int g = 0; g < heads; ++g) st.lo[t * heads + g] = lo, st.hi[t * heads + g] = hi;
    if (lo == hi) continue;
    first = std::min(first, t);
    last = t + 1;
  }
  TileJob<T> job;
  job.D = pb.shape.D;
  job.c = pb.c;
  job.kt = key_block(pb, item.kv, block, st);
  job.v = value_block(pb, item.kv, block, st);
  job.v_stride = size_t(pb.shape.H_kv) * pb.shape.D;
  const int row_end = last * heads;
  for (int row = first * heads; row < row_end; row += kTileRows) {
    job.rows = std::min(kTileRows, row_end - row);
    job.lo = st.lo.data() + row;
    job.hi = st.hi.data() + row;
    job.q = st.q.data() + size_t(row) * job.D;
    job.m = st.m.data() + row;
    job.l = st.l.data() + row;
    job.o = st.o.data() + size_t(row) * job.D;
    pb.tiles[job.rows - 1](job);
  }
}

// O = accumulated / l and LSE = ln(2^m l); rows that saw no key get O = 0, LSE = -inf.
template <class T>
void finish_item(const Problem<T>& pb, const Item& item, const ItemState<T>& st) {
  const auto& s = pb.shape;
  const size_t D = s.D;
  for (int t = 0; t < item.tokens; ++t) {
    for (int g = 0; g < pb.plan.heads; ++g) {
      const size_t row = size_t(t) * pb.plan.heads + g;
      const size_t out = size_t(item.token0 + t) * s.H + item.head0 + g;
      const float l = st.l[row];
      const float inv = l > 0 ? 1.0f / l : 0.0f;
      for (size_t d = 0; d < D; ++d) pb.o[out * D + d] = st.o[row * D + d] * inv;
      pb.lse[out] = l > 0 ? st.m[row] * kLn2 + std::log(l) : kNegInf;
    }
  }
}

template <class T>
void run_item(const Problem<T>& pb, const Item& item, ItemState<T>& st) {
  start_item(pb, item, st);
  int first = pb.shape.S, last = 0;  // keys any token of the item sees
  for (int t = item.token0; t < item.token0 + item.tokens; ++t) {
    if (pb.ranges[t].lo >= pb.ranges[t].hi) continue;
    first = std::min(first, pb.ranges[t].lo);
    last = std::max(last, pb.ranges[t].hi);
  }
  for (int block = first / kKeyBlock; block * kKeyBlock < last; ++block)
    run_key_block(pb, item, block, st);
  finish_item(pb, item, st);
}

template <class T>
void run(const Problem<T>& pb) {
  const std::vector<size_t> order = item_order(pb.plan, pb.shape, pb.ranges);
#pragma omp parallel
  {
    ItemState<T> st;
#pragma omp for schedule(dynamic, 1)
    for (size_t n = 0; n < order.size(); ++n)
      run_item(pb, item_at(pb.plan, pb.shape, order[n]), st);
  }
}

template <class T>
void forward(const AttentionArgs& args, const T* q, const T* k, const T* v,
             const TileKernels<T>& tiles, float* o, float* lse) {
  const AttentionShape& s = args.shape;
  Problem<T> pb;
  pb.shape = s;
  pb.plan = make_plan(s, omp_get_max_threads());
  pb.c = softmax_scale(args) * kLog2e;
  pb.ranges = key_ranges(args);
  pb.tiles = tiles;
  pb.q = q;
  pb.k = k;
  pb.v = v;
  pb.packed_once = pb.plan.token_blocks * pb.plan.head_blocks > 2;
  if (pb.packed_once) {
    pb.kt = pack_all(s, pb.plan.key_blocks, k, pack_key_block<T>);
    if constexpr (std::is_same_v<T, bf16>)
      pb.vp = pack_all(s, pb.plan.key_blocks, v, pack_value_block);
  }
  pb.o = o;
  pb.lse = lse;
  run(pb);
}

using detail::has_avx512;
using detail::has_avx512_bf16;

std::vector<float> widen(const bf16* x, size_t n) {
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = bf16_to_float(x[i]);
  return out;
}

}  // namespace

void attention_forward(const AttentionArgs& args, const float* q, const float* k, const float* v,
                       float* o, float* lse) {
  validate(args);
  if (args.shape.T == 0) return;
  const bool fast = has_avx512() && args.shape.D % 16 == 0;
  forward<float>(args, q, k, v, fast ? avx512_tiles<float>() : portable_tiles(), o, lse);
}

void attention_forward(const AttentionArgs& args, const bf16* q, const bf16* k, const bf16* v,
                       float* o, float* lse) {
  validate(args);
  const AttentionShape& s = args.shape;
  if (s.T == 0) return;
  if (has_avx512_bf16() && s.D % 16 == 0) {
    forward<bf16>(args, q, k, v, avx512_tiles<bf16>(), o, lse);
    return;
  }
  // No BF16 kernel for this CPU or D: FP32 on the same (exactly widened) values.
  const size_t q_size = size_t(s.T) * s.H * s.D, kv_size = size_t(s.S) * s.H_kv * s.D;
  const std::vector<float> qf = widen(q, q_size), kf = widen(k, kv_size), vf = widen(v, kv_size);
  attention_forward(args, qf.data(), kf.data(), vf.data(), o, lse);
}

}  // namespace paralab::kernels::cpu
