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
//              reads 64 keys as contiguous vectors
//   tile       a few rows against one key block (attention_forward_tiles.hpp): up to 6 for
//              the AVX-512 tiles, 24 for the Highway ones
// Tiles: the Highway kernels of the tier in force (attention_forward_simd.cpp), or on the
// avx512 tiers the hand-written ones (attention_forward_avx512.cpp): FP32, and BF16 on
// vdpbf16ps. Without a BF16 tile, BF16 inputs are widened to FP32 (exactly) as they are packed
// and run the FP32 tiles. Threads: OpenMP over work items, costliest first.

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

#include "kernels/attention.hpp"
#include "kernels/bf16.hpp"
#include "kernels/cpu/attention_forward_tiles.hpp"
#include "kernels/cpu/isa.hpp"

namespace paralab::kernels::cpu {

namespace {

using forward::kKeyBlock;
using forward::packed_key_index;
using forward::TileJob;
using forward::Tiles;

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
// The elements of one packed key or value block.
size_t block_elements(forward::Layout layout, int D) {
  return size_t(kKeyBlock) * (layout == forward::Layout::panels ? forward::panel_columns(D) : D);
}

// An input element as a tile operand: the same type, or BF16 widened (exactly) to FP32 for
// tiers without BF16 tiles.
template <class T, class In>
T operand(In x) {
  if constexpr (std::is_same_v<T, In>)
    return x;
  else
    return bf16_to_float(x);
}

// Key block `block` of key/value head kv, packed into out.
template <class In, class T>
void pack_key_block(forward::Layout layout, const AttentionShape& s, const In* k, int kv, int block,
                    T* out) {
  const int keys = std::min(kKeyBlock, s.S - block * kKeyBlock);
  if (keys < kKeyBlock) std::fill_n(out, block_elements(layout, s.D), T{});
  for (int key = 0; key < keys; ++key) {
    const In* row = k + (size_t(block * kKeyBlock + key) * s.H_kv + kv) * s.D;
    for (int d = 0; d < s.D; ++d)
      out[packed_key_index<T>(layout, s.D, d, key)] = operand<T>(row[d]);
  }
}

// Value block `block` of key/value head kv, packed into out: BF16 with pairs of keys
// interleaved (vp[key/2][d][2]), so that P V runs on vdpbf16ps with a broadcast pair of
// probabilities; FP32 in panels (Layout::panels).
template <class In, class T>
void pack_value_block(forward::Layout layout, const AttentionShape& s, const In* v, int kv,
                      int block, T* out) {
  const int keys = std::min(kKeyBlock, s.S - block * kKeyBlock);
  const size_t size = block_elements(layout, s.D);
  if (keys < kKeyBlock || size > size_t(kKeyBlock) * s.D) std::fill_n(out, size, T{});
  for (int key = 0; key < keys; ++key) {
    const In* row = v + (size_t(block * kKeyBlock + key) * s.H_kv + kv) * s.D;
    for (int d = 0; d < s.D; ++d) {
      if constexpr (std::is_same_v<T, bf16>)
        out[(size_t(key / 2) * s.D + d) * 2 + key % 2] = row[d];
      else
        out[forward::packed_value_index(d, key)] = operand<T>(row[d]);
    }
  }
}

// Every block of every key/value head, [H_kv][key_blocks][block], packed in parallel.
template <class T, class In, class PackBlock>
std::vector<T> pack_all(forward::Layout layout, const AttentionShape& s, int key_blocks,
                        const In* x, PackBlock pack) {
  const size_t block_size = block_elements(layout, s.D);
  std::vector<T> packed(size_t(s.H_kv) * key_blocks * block_size);
#pragma omp parallel for collapse(2) schedule(static)
  for (int kv = 0; kv < s.H_kv; ++kv)
    for (int block = 0; block < key_blocks; ++block)
      pack(layout, s, x, kv, block, packed.data() + (size_t(kv) * key_blocks + block) * block_size);
  return packed;
}

// --- the driver -------------------------------------------------------------------------------

// One call's operands and plan: inputs of type In, tile operands of type T (the same, or BF16
// inputs widened to FP32 as they are packed and copied, never as whole arrays).
template <class In, class T>
struct Problem {
  AttentionShape shape;
  Plan plan;
  float c = 0;                   // softmax scale * log2(e)
  std::vector<KeyRange> ranges;  // per query token
  Tiles<T> tiles;
  const In* q = nullptr;
  const In* k = nullptr;
  const In* v = nullptr;
  // FP32 V: packed in panels for the Highway tiles (in place, rows H_kv * D floats apart fall
  // into a few L1 sets, and a tile's pass over 64 keys of one column chunk missed L1 for half
  // of them), read in place by the AVX-512 tiles (as measured).
  bool pack_values = true;
  bool packed_once = false;  // kt (and vp when packed) hold every block, [H_kv][key_blocks][...]
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

template <class In, class T>
void start_item(const Problem<In, T>& pb, const Item& item, ItemState<T>& st) {
  const auto& s = pb.shape;
  const size_t D = s.D, rows = size_t(item.tokens) * pb.plan.heads;
  st.q.resize(rows * D);
  st.o.assign(rows * D, 0.0f);
  st.m.assign(rows, kNegInf);
  st.l.assign(rows, 0.0f);
  st.lo.resize(rows);
  st.hi.resize(rows);
  if (!pb.packed_once) {
    st.kt.resize(block_elements(pb.tiles.layout, s.D));
    if (pb.pack_values) st.vp.resize(block_elements(pb.tiles.layout, s.D));
  }
  for (int t = 0; t < item.tokens; ++t)
    for (int g = 0; g < pb.plan.heads; ++g)
      std::transform(pb.q + (size_t(item.token0 + t) * s.H + item.head0 + g) * D,
                     pb.q + (size_t(item.token0 + t) * s.H + item.head0 + g + 1) * D,
                     st.q.data() + (size_t(t) * pb.plan.heads + g) * D, operand<T, In>);
}

// The packed key block `block` of key/value head kv.
template <class In, class T>
const T* key_block(const Problem<In, T>& pb, int kv, int block, ItemState<T>& st) {
  const size_t size = block_elements(pb.tiles.layout, pb.shape.D);
  if (pb.packed_once) return pb.kt.data() + (size_t(kv) * pb.plan.key_blocks + block) * size;
  pack_key_block(pb.tiles.layout, pb.shape, pb.k, kv, block, st.kt.data());
  return st.kt.data();
}

// The value block: packed, or FP32 rows in place in V (TileJob::v_stride apart).
template <class In, class T>
const T* value_block(const Problem<In, T>& pb, int kv, int block, ItemState<T>& st) {
  if constexpr (std::is_same_v<In, T>)
    if (!pb.pack_values)
      return pb.v + (size_t(block) * kKeyBlock * pb.shape.H_kv + kv) * pb.shape.D;
  const size_t size = block_elements(pb.tiles.layout, pb.shape.D);
  if (pb.packed_once) return pb.vp.data() + (size_t(kv) * pb.plan.key_blocks + block) * size;
  pack_value_block(pb.tiles.layout, pb.shape, pb.v, kv, block, st.vp.data());
  return st.vp.data();
}

// The item's rows against key block `block`: only the tokens that see one of its keys, in
// tiles of up to tiles.max_rows rows.
template <class In, class T>
void run_key_block(const Problem<In, T>& pb, const Item& item, int block, ItemState<T>& st) {
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
  job.v_stride = size_t(pb.shape.H_kv) * pb.shape.D;  // V in place (FP32, Layout::avx512)
  const int row_end = last * heads;
  for (int row = first * heads; row < row_end; row += pb.tiles.max_rows) {
    job.rows = std::min(pb.tiles.max_rows, row_end - row);
    job.lo = st.lo.data() + row;
    job.hi = st.hi.data() + row;
    job.q = st.q.data() + size_t(row) * job.D;
    job.m = st.m.data() + row;
    job.l = st.l.data() + row;
    job.o = st.o.data() + size_t(row) * job.D;
    pb.tiles.run(job);
  }
}

// O = accumulated / l and LSE = ln(2^m l); rows that saw no key get O = 0, LSE = -inf.
template <class In, class T>
void finish_item(const Problem<In, T>& pb, const Item& item, const ItemState<T>& st) {
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

template <class In, class T>
void run_item(const Problem<In, T>& pb, const Item& item, ItemState<T>& st) {
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

template <class In, class T>
void run(const Problem<In, T>& pb) {
  const std::vector<size_t> order = item_order(pb.plan, pb.shape, pb.ranges);
#pragma omp parallel
  {
    ItemState<T> st;
#pragma omp for schedule(dynamic, 1)
    for (size_t n = 0; n < order.size(); ++n)
      run_item(pb, item_at(pb.plan, pb.shape, order[n]), st);
  }
}

template <class In, class T>
void run_forward(const AttentionArgs& args, const In* q, const In* k, const In* v,
                 const Tiles<T>& tiles, float* o, float* lse) {
  const AttentionShape& s = args.shape;
  Problem<In, T> pb;
  pb.shape = s;
  pb.plan = make_plan(s, omp_get_max_threads());
  pb.c = softmax_scale(args) * kLog2e;
  pb.ranges = key_ranges(args);
  pb.tiles = tiles;
  pb.q = q;
  pb.k = k;
  pb.v = v;
  pb.pack_values = std::is_same_v<T, bf16> || tiles.layout == forward::Layout::panels;
  pb.packed_once = pb.plan.token_blocks * pb.plan.head_blocks > 2;
  if (pb.packed_once) {
    pb.kt = pack_all<T>(tiles.layout, s, pb.plan.key_blocks, k, pack_key_block<In, T>);
    if (pb.pack_values)
      pb.vp = pack_all<T>(tiles.layout, s, pb.plan.key_blocks, v, pack_value_block<In, T>);
  }
  pb.o = o;
  pb.lse = lse;
  run(pb);
}

#if defined(__x86_64__)
std::vector<float> widen(const bf16* x, size_t n) {
  std::vector<float> out(n);
  convert(x, out.data(), n);
  return out;
}
#endif

}  // namespace

void attention_forward(const AttentionArgs& args, const float* q, const float* k, const float* v,
                       float* o, float* lse) {
  validate(args);
  if (args.shape.T == 0) return;
#if defined(__x86_64__)
  if (isa_enabled(Isa::avx512) && args.shape.D % 16 == 0)
    return run_forward<float, float>(args, q, k, v, forward::avx512_forward_tiles_f32(), o, lse);
#endif
  run_forward<float, float>(args, q, k, v, forward::simd_forward_tiles(), o, lse);
}

void attention_forward(const AttentionArgs& args, const bf16* q, const bf16* k, const bf16* v,
                       float* o, float* lse) {
  validate(args);
  const AttentionShape& s = args.shape;
  if (s.T == 0) return;
#if defined(__x86_64__)
  if (isa_enabled(Isa::avx512_bf16) && s.D % 16 == 0)
    return run_forward<bf16, bf16>(args, q, k, v, forward::avx512_forward_tiles_bf16(), o, lse);
  if (isa_enabled(Isa::avx512) && s.D % 16 == 0) {
    // AVX-512 without BF16: the FP32 AVX-512 tiles (as measured), which read V in place, on
    // exactly widened copies.
    const size_t q_size = size_t(s.T) * s.H * s.D, kv_size = size_t(s.S) * s.H_kv * s.D;
    const std::vector<float> qf = widen(q, q_size), kf = widen(k, kv_size), vf = widen(v, kv_size);
    return run_forward<float, float>(args, qf.data(), kf.data(), vf.data(),
                                     forward::avx512_forward_tiles_f32(), o, lse);
  }
#endif
  // The FP32 Highway tiles, widening (exactly) as K and V are packed and Q rows copied.
  run_forward<bf16, float>(args, q, k, v, forward::simd_forward_tiles(), o, lse);
}

}  // namespace paralab::kernels::cpu
