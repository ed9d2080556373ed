// The fast CPU attention backward (flash-attention-2 style): dQ, dK, dV from
// Q, K, V, O, LSE and dO without ever holding a [T, S] matrix.
//
// Work split. A task owns one key/value head g and a fixed set of key passes;
// a pass is up to kMaxBlocksPerPass consecutive blocks of kKeyBlock keys. For
// each pass the task packs K and V of its blocks (transposed for the score
// products), then walks every query tile that sees the pass, for every query
// head of the group; per (query tile, head) it copies Q and dO into aligned
// contiguous rows and, for each key block of the pass, computes
//   P  = exp(scale Q K^T - LSE)          (recomputed; masked entries are 0)
//   dS = scale * P * (dO V^T - Delta)    (Delta = rowsum(dO * O), precomputed)
//   dV_blk += P^T dO,  dK_blk += dS^T Q,  dQ_tile += dS K.
// dK and dV of a block live in the task's scratch until the pass is done and
// are then written once: no two tasks share a key block, so no races.
// dQ_tile is added to dQ once per pass. dQ is shared by all key passes of a
// head: a task owns a whole kv head whenever there are at least as many kv
// heads as threads, and then adds into dQ directly (query head h belongs to
// exactly one kv head). Otherwise each kv head's passes are dealt out to
// `chunks` tasks; chunk 0 adds into dQ and chunk r > 0 into its own dQ
// buffer, summed at the end in a fixed order. The split never depends on which
// thread runs which task, so results are reproducible bit for bit for a given
// thread count (they can differ in the last bits between counts).
//
// Masks. For every mask kind the keys a query sees form one interval, and the
// interval's ends never decrease along the queries, so (query tile, key
// block) pairs with no visible key are skipped outright; partial pairs get a
// per-row 64-bit mask. Rows whose LSE is -inf contribute nothing.
//
// Vectorisation. The block products are register-blocked micro-kernels behind
// one table (attention_backward_ops.hpp): written once over Highway for every
// instruction-set tier, and hand-written AVX-512 ones on the avx512 tiers.
// Not OpenBLAS: the blocks are small, concurrent calls from OpenMP threads
// would oversubscribe the cores, and on AVX-512 machines where Debian's
// OpenBLAS runs its AVX2 kernels a 512-bit micro-kernel has twice its peak.
//
// Where the time goes (Zen 5, D = 128, causal, one thread): the five products
// take ~98% (the micro-kernels alone run at 87-94% of the 237 GFLOP/s FMA peak
// of a core; the whole kernel at ~84%), the rest is Delta, packing and dQ
// traffic. On two cores each core loses ~10% to the shared clock and L3.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <vector>

#include "kernels/attention.hpp"
#include "kernels/cpu/isa.hpp"

#include "kernels/cpu/attention_backward_ops.hpp"

namespace paralab::kernels::cpu {

namespace {

using backward::kKeyBlock;
using backward::kQueryTile;
using backward::ScoreTile;
using backward::TileOps;
using backward::Update;

// Key blocks per pass over the query tiles, at most: each tile's Q, dO and dQ
// (3 x 32 KiB at D = 128) are then fetched once for this many blocks instead
// of once per block, while the blocks' K, V, dK and dV (5 x 32 KiB each) stay
// in L2. (D = 128, causal, 4k, one Zen 5 core: 1, 2, 4 blocks per pass give
// 161, 188, 196 GFLOP/s.)
constexpr int kMaxBlocksPerPass = 4;
constexpr float kLog2e = 1.4426950408889634f;
// Extra dQ buffers (see the header comment) may use at most this much memory;
// beyond it load balance gives way to memory.
constexpr double kMaxExtraDqBytes = 1024.0 * 1024 * 1024;

const TileOps& select_ops() {
#if defined(__x86_64__)
  if (isa_enabled(Isa::avx512)) return backward::avx512_backward_ops();
#endif
  return backward::simd_backward_ops();
}

// ---------------------------------------------------------------------------
// Masks as key intervals.

// Keys [first, last] (indices into K, 0 to S - 1) that a query sees; empty
// when last < first.
struct KeySpan {
  int64_t first = 0, last = -1;
  bool empty() const { return last < first; }
};

// The same interval that attention_forward_flops counts, per query.
KeySpan visible_keys(const AttentionArgs& args, int64_t i) {
  const auto& m = args.mask;
  KeySpan span{0, args.shape.S - 1};
  const int64_t q = m.q_offset + i;
  if (m.causal) span.last = std::min(span.last, q - m.k_offset);
  if (!m.doc_starts.empty()) {
    const auto& starts = m.doc_starts;
    const auto doc = std::upper_bound(starts.begin(), starts.end(), q) - starts.begin();
    if (doc > 0) span.first = std::max(span.first, starts[doc - 1] - m.k_offset);
    if (doc < static_cast<ptrdiff_t>(starts.size()))
      span.last = std::min(span.last, starts[doc] - 1 - m.k_offset);
  }
  return span;
}

// Visible keys of block [k0, k0 + kKeyBlock) as bits.
uint64_t block_mask(KeySpan span, int64_t k0) {
  const int64_t lo = std::max<int64_t>(span.first - k0, 0);
  const int64_t hi = std::min<int64_t>(span.last - k0, kKeyBlock - 1);
  if (hi < lo) return 0;
  const uint64_t upto_hi = hi == 63 ? ~uint64_t{0} : (uint64_t{1} << (hi + 1)) - 1;
  return upto_hi & ~((uint64_t{1} << lo) - 1);
}

// ---------------------------------------------------------------------------
// The problem and its per-task scratch.

struct Problem {
  AttentionShape shape;
  float scale = 0;
  const float *q = nullptr, *k = nullptr, *v = nullptr, *d_o = nullptr, *lse = nullptr;
  std::vector<float> delta;    // [T, H]: rowsum(dO * O)
  std::vector<KeySpan> rows;   // [T]: visible keys per query
  std::vector<KeySpan> tiles;  // per query tile: the union of its rows' spans
  int key_blocks = 0, blocks_per_pass = 1, key_passes = 0;
  int chunks = 1;  // tasks per kv head
  int group() const { return shape.H / shape.H_kv; }
  size_t q_ld() const { return static_cast<size_t>(shape.H) * shape.D; }
  size_t kv_ld() const { return static_cast<size_t>(shape.H_kv) * shape.D; }
};

// 64-byte aligned floats (the micro-kernels use aligned loads on the tiles).
struct AlignedFloats {
  struct Free {
    void operator()(float* p) const { ::operator delete[](p, std::align_val_t{64}); }
  };
  std::unique_ptr<float[], Free> data;
  explicit AlignedFloats(size_t n)
      : data(static_cast<float*>(::operator new[](n * sizeof(float), std::align_val_t{64}))) {}
  float* get() const { return data.get(); }
};

// Rows of D floats in the task's buffers start every `ld` floats, a multiple
// of 16: aligned vectors, whatever D is.
int padded(int D) {
  return (D + 15) / 16 * 16;
}

// One key block of a pass: its K and V packed, its dK and dV accumulated.
struct KeyBlock {
  AlignedFloats kt, vt;     // [D][kKeyBlock]: K and V transposed
  AlignedFloats k, dk, dv;  // [kKeyBlock][ld]: K rows, and the gradients
  int k0 = 0, keys = 0;
  bool seen = false;               // by some row of the current query tile
  uint64_t base_mask[kQueryTile];  // per row of the current query tile
  explicit KeyBlock(int D)
      : kt(size_t(D) * kKeyBlock),
        vt(size_t(D) * kKeyBlock),
        k(size_t(padded(D)) * kKeyBlock),
        dk(size_t(padded(D)) * kKeyBlock),
        dv(size_t(padded(D)) * kKeyBlock) {}
};

// What a task reuses from one key pass and query tile to the next.
struct Scratch {
  int ld = 0;
  std::vector<KeyBlock> blocks;  // one per key block of a pass
  AlignedFloats q, d_o, dq;      // [kQueryTile][ld]: the current tile of one head
  AlignedFloats p, ds;           // [kQueryTile][kKeyBlock]
  float bias[kQueryTile], delta[kQueryTile];
  bool dead[kQueryTile];  // LSE = -inf: the row contributes nothing
  uint64_t mask[kQueryTile];
  std::vector<int> tiles;  // the query tiles that see the current pass
  Scratch(int D, int blocks_per_pass)
      : ld(padded(D)),
        q(size_t(ld) * kQueryTile),
        d_o(size_t(ld) * kQueryTile),
        dq(size_t(ld) * kQueryTile),
        p(kQueryTile * kKeyBlock),
        ds(kQueryTile * kKeyBlock) {
    blocks.reserve(blocks_per_pass);
    for (int b = 0; b < blocks_per_pass; ++b) blocks.emplace_back(D);
  }
};

// bt[d][n] = rows[n][d] for n < count, 0 beyond (padding keys are masked).
void pack_transposed(const float* rows, size_t ld, int count, int D, float* bt) {
  for (int d = 0; d < D; ++d) {
    float* out = bt + static_cast<size_t>(d) * kKeyBlock;
    for (int n = 0; n < count; ++n) out[n] = rows[n * ld + d];
    std::fill(out + count, out + kKeyBlock, 0.0f);
  }
}

// `count` rows of D floats from stride `from_ld` to stride `to_ld`.
void copy_rows(const float* from, size_t from_ld, int count, int D, float* to, size_t to_ld) {
  for (int r = 0; r < count; ++r)
    std::memcpy(to + r * to_ld, from + r * from_ld, D * sizeof(float));
}

// Rows [t0, t0 + rows) of query head h; h < 0 means none.
struct HeadTile {
  int h = -1, t0 = 0, rows = 0;
  size_t first_row(const AttentionShape& s) const { return static_cast<size_t>(t0) * s.H + h; }
};

// Asks for a tile's rows of x (Q, dO or dQ) to be brought into L2 ahead of
// use. The rows lie H * D floats apart, a stride the hardware prefetchers do
// not follow, and without this the next tile's misses stall the kernels.
void prefetch_tile(const Problem& pb, const float* x, HeadTile t) {
  if (t.h < 0) return;
  const float* first = x + t.first_row(pb.shape) * pb.shape.D;
  for (int r = 0; r < t.rows; ++r)
    for (int d = 0; d < pb.shape.D; d += 16) __builtin_prefetch(first + r * pb.q_ld() + d, 0, 2);
}

// Q and dO of tile t, copied into aligned contiguous rows: in place the rows
// are H * D floats apart, which maps them onto a few L1 sets, and the
// update kernels read them once per key block. dQ accumulates here too.
void load_head_tile(const Problem& pb, HeadTile t, Scratch& s) {
  const auto& sh = pb.shape;
  const size_t row0 = t.first_row(sh);
  for (int r = 0; r < t.rows; ++r) {
    const size_t row = row0 + static_cast<size_t>(r) * sh.H;
    s.dead[r] = pb.lse[row] == -std::numeric_limits<float>::infinity();
    s.bias[r] = s.dead[r] ? 0.0f : pb.lse[row] * kLog2e;
    s.delta[r] = pb.delta[row];
  }
  copy_rows(pb.q + row0 * sh.D, pb.q_ld(), t.rows, sh.D, s.q.get(), s.ld);
  copy_rows(pb.d_o + row0 * sh.D, pb.q_ld(), t.rows, sh.D, s.d_o.get(), s.ld);
  std::fill(s.dq.get(), s.dq.get() + size_t(t.rows) * s.ld, 0.0f);
}

// dQ of tile t += what the pass added up.
void store_head_tile(const Problem& pb, HeadTile t, const Scratch& s, float* dq) {
  float* out = dq + t.first_row(pb.shape) * pb.shape.D;
  for (int r = 0; r < t.rows; ++r) {
    const float* add = s.dq.get() + r * s.ld;
    float* row = out + r * pb.q_ld();
    for (int d = 0; d < pb.shape.D; ++d) row[d] += add[d];
  }
}

// The loaded tile against key block kb; the data of tile `next` is
// prefetched on the way (h < 0: nothing to prefetch).
void process_head_tile(const Problem& pb, const TileOps& ops, int rows, HeadTile next, KeyBlock& kb,
                       float* dq, Scratch& s) {
  bool any = false;
  for (int r = 0; r < rows; ++r) {
    s.mask[r] = s.dead[r] ? 0 : kb.base_mask[r];
    any |= s.mask[r] != 0;
  }
  if (!any) return;
  const int D = pb.shape.D;
  const size_t ld = s.ld;
  prefetch_tile(pb, pb.q, next);
  ops.probabilities(
      {rows, D, s.q.get(), ld, kb.kt.get(), s.bias, s.mask, nullptr, pb.scale * kLog2e, s.p.get()});
  prefetch_tile(pb, pb.d_o, next);
  ops.dscores(
      {rows, D, s.d_o.get(), ld, kb.vt.get(), s.delta, nullptr, s.p.get(), pb.scale, s.ds.get()});
  prefetch_tile(pb, dq, next);
  // dV += P^T dO and dK += dS^T Q: rows of the block, summed over the tile.
  ops.update({kb.keys, rows, D, s.p.get(), 1, kKeyBlock, s.d_o.get(), ld, kb.dv.get(), ld});
  ops.update({kb.keys, rows, D, s.ds.get(), 1, kKeyBlock, s.q.get(), ld, kb.dk.get(), ld});
  // dQ += dS K: rows of the tile, summed over the block's keys.
  ops.update({rows, kb.keys, D, s.ds.get(), kKeyBlock, 1, kb.k.get(), ld, s.dq.get(), ld});
}

// Packs key block `block` of kv head g and clears its gradients.
void load_key_block(const Problem& pb, int g, int block, size_t ld, KeyBlock& kb) {
  const auto& sh = pb.shape;
  kb.k0 = block * kKeyBlock;
  kb.keys = std::min(kKeyBlock, sh.S - kb.k0);
  const size_t first = (static_cast<size_t>(kb.k0) * sh.H_kv + g) * sh.D;
  pack_transposed(pb.k + first, pb.kv_ld(), kb.keys, sh.D, kb.kt.get());
  pack_transposed(pb.v + first, pb.kv_ld(), kb.keys, sh.D, kb.vt.get());
  copy_rows(pb.k + first, pb.kv_ld(), kb.keys, sh.D, kb.k.get(), ld);
  std::fill(kb.dk.get(), kb.dk.get() + kb.keys * ld, 0.0f);
  std::fill(kb.dv.get(), kb.dv.get() + kb.keys * ld, 0.0f);
}

void store_key_block(const Problem& pb, int g, size_t ld, const KeyBlock& kb, float* dk,
                     float* dv) {
  const auto& sh = pb.shape;
  const size_t first = (static_cast<size_t>(kb.k0) * sh.H_kv + g) * sh.D;
  copy_rows(kb.dk.get(), ld, kb.keys, sh.D, dk + first, pb.kv_ld());
  copy_rows(kb.dv.get(), ld, kb.keys, sh.D, dv + first, pb.kv_ld());
}

// Key pass `pass` (blocks_per_pass consecutive key blocks) of kv head g: every
// query tile that sees it, every head of the group, each key block in turn
// while the tile's Q, dO and dQ are in cache; then dK and dV are written.
void process_key_pass(const Problem& pb, const TileOps& ops, int g, int pass, float* dq, float* dk,
                      float* dv, Scratch& s) {
  const auto& sh = pb.shape;
  const int first_block = pass * pb.blocks_per_pass;
  const int blocks = std::min(pb.blocks_per_pass, pb.key_blocks - first_block);
  for (int b = 0; b < blocks; ++b) load_key_block(pb, g, first_block + b, s.ld, s.blocks[b]);
  const int k_first = first_block * kKeyBlock;
  const int k_last = s.blocks[blocks - 1].k0 + s.blocks[blocks - 1].keys - 1;
  s.tiles.clear();
  for (size_t tile = 0; tile < pb.tiles.size(); ++tile) {
    const KeySpan span = pb.tiles[tile];
    if (!span.empty() && span.first <= k_last && span.last >= k_first)
      s.tiles.push_back(static_cast<int>(tile));
  }
  const int h_begin = g * pb.group(), h_end = h_begin + pb.group();
  auto head_tile = [&](size_t i, int h) {
    if (i >= s.tiles.size()) return HeadTile{};
    const int t0 = s.tiles[i] * kQueryTile;
    return HeadTile{h, t0, std::min(kQueryTile, sh.T - t0)};
  };
  for (size_t i = 0; i < s.tiles.size(); ++i) {
    const HeadTile tile = head_tile(i, h_begin);
    for (int b = 0; b < blocks; ++b) {
      KeyBlock& kb = s.blocks[b];
      kb.seen = false;
      for (int r = 0; r < tile.rows; ++r) {
        kb.base_mask[r] = block_mask(pb.rows[tile.t0 + r], kb.k0);
        kb.seen |= kb.base_mask[r] != 0;
      }
    }
    for (int h = h_begin; h < h_end; ++h) {
      const HeadTile t = head_tile(i, h);
      HeadTile next = h + 1 < h_end ? head_tile(i, h + 1) : head_tile(i + 1, h_begin);
      load_head_tile(pb, t, s);
      for (int b = 0; b < blocks; ++b) {
        if (!s.blocks[b].seen) continue;
        process_head_tile(pb, ops, t.rows, next, s.blocks[b], dq, s);
        next = HeadTile{};  // prefetched once
      }
      store_head_tile(pb, t, s, dq);
    }
  }
  for (int b = 0; b < blocks; ++b) store_key_block(pb, g, s.ld, s.blocks[b], dk, dv);
}

// Which of `chunks` tasks of a kv head owns a key pass: dealt out back and
// forth (0 1 2 2 1 0 0 1 ...) so that, under a causal mask where early passes
// see many more queries, every chunk gets a similar share.
int chunk_of(int pass, int chunks) {
  const int round = pass / chunks, position = pass % chunks;
  return round % 2 == 0 ? position : chunks - 1 - position;
}

// Enough tasks per kv head to keep every thread busy (and an even share per
// thread where a few more make it even), within the extra-dQ memory budget.
int choose_chunks(const AttentionShape& sh, int key_blocks, int threads) {
  const int h_kv = sh.H_kv;
  int chunks = (threads + h_kv - 1) / h_kv;
  while ((chunks * h_kv) % threads != 0 && chunks * h_kv < 4 * threads) ++chunks;
  const double dq_bytes = 4.0 * sh.T * sh.H * sh.D;
  const int affordable = 1 + static_cast<int>(kMaxExtraDqBytes / std::max(dq_bytes, 1.0));
  return std::max(1, std::min({chunks, key_blocks, affordable}));
}

Problem make_problem(const AttentionArgs& args, const TileOps& ops, const float* q, const float* k,
                     const float* v, const float* o, const float* lse, const float* d_o) {
  Problem pb;
  pb.shape = args.shape;
  pb.scale = softmax_scale(args);
  pb.q = q, pb.k = k, pb.v = v, pb.d_o = d_o, pb.lse = lse;
  const auto& sh = pb.shape;
  pb.key_blocks = (sh.S + kKeyBlock - 1) / kKeyBlock;
  pb.chunks = choose_chunks(sh, pb.key_blocks, omp_get_max_threads());
  // At least two passes per task, so that the back-and-forth deal evens out
  // the work of causal masks.
  pb.blocks_per_pass = std::clamp(pb.key_blocks / (2 * pb.chunks), 1, kMaxBlocksPerPass);
  pb.key_passes = (pb.key_blocks + pb.blocks_per_pass - 1) / pb.blocks_per_pass;
  pb.rows.resize(sh.T);
  for (int i = 0; i < sh.T; ++i) pb.rows[i] = visible_keys(args, i);
  pb.tiles.assign((sh.T + kQueryTile - 1) / kQueryTile, KeySpan{});
  for (int i = 0; i < sh.T; ++i) {
    const KeySpan row = pb.rows[i];
    KeySpan& tile = pb.tiles[i / kQueryTile];
    if (row.empty()) continue;
    tile = tile.empty() ? row
                        : KeySpan{std::min(tile.first, row.first), std::max(tile.last, row.last)};
  }
  // Delta_i = rowsum(dO_i * O_i) over [T * H] rows of D.
  pb.delta.resize(static_cast<size_t>(sh.T) * sh.H);
  const int64_t rows = static_cast<int64_t>(sh.T) * sh.H;
  const int per_call = 256;
#pragma omp parallel for schedule(static)
  for (int64_t r0 = 0; r0 < rows; r0 += per_call)
    ops.row_dots(static_cast<int>(std::min<int64_t>(per_call, rows - r0)), sh.D, d_o + r0 * sh.D,
                 o + r0 * sh.D, sh.D, pb.delta.data() + r0);
  return pb;
}

void zero(float* x, size_t n) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) x[i] = 0.0f;
}

}  // namespace

void attention_backward(const AttentionArgs& args, const float* q, const float* k, const float* v,
                        const float* o, const float* lse, const float* d_o, float* dq, float* dk,
                        float* dv) {
  validate(args);
  const auto& sh = args.shape;
  const size_t dq_size = static_cast<size_t>(sh.T) * sh.H * sh.D;
  const size_t dkv_size = static_cast<size_t>(sh.S) * sh.H_kv * sh.D;
  zero(dq, dq_size);
  if (sh.T == 0 || sh.S == 0) {  // nothing visible: every gradient is zero
    zero(dk, dkv_size);
    zero(dv, dkv_size);
    return;
  }
  const TileOps& ops = select_ops();
  const Problem pb = make_problem(args, ops, q, k, v, o, lse, d_o);
  std::vector<float> extra_dq(dq_size * (pb.chunks - 1));  // zeros

  const int tasks = sh.H_kv * pb.chunks;
#pragma omp parallel
  {
    Scratch scratch(sh.D, pb.blocks_per_pass);
#pragma omp for schedule(dynamic, 1)
    for (int task = 0; task < tasks; ++task) {
      const int g = task / pb.chunks, chunk = task % pb.chunks;
      float* dq_target = chunk == 0 ? dq : extra_dq.data() + (chunk - 1) * dq_size;
      for (int pass = 0; pass < pb.key_passes; ++pass)
        if (chunk_of(pass, pb.chunks) == chunk)
          process_key_pass(pb, ops, g, pass, dq_target, dk, dv, scratch);
    }
  }
  if (pb.chunks > 1) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < dq_size; ++i)
      for (int c = 1; c < pb.chunks; ++c) dq[i] += extra_dq[(c - 1) * dq_size + i];
  }
}

}  // namespace paralab::kernels::cpu
