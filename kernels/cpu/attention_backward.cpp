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
// Vectorisation. The block products are AVX-512 register-blocked micro-kernels
// (target attribute, chosen at run time through cpu/dispatch.hpp), with a
// portable scalar fallback of the same functions. Not OpenBLAS: the blocks are
// small, the installed OpenBLAS is the pthreads build (concurrent calls from
// OpenMP threads oversubscribe the cores), and on AVX-512 machines where it
// runs its AVX2 kernels a 512-bit micro-kernel has twice its peak.
// detail::force_portable() selects the fallback, so it is tested on AVX-512
// machines too.
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

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include "kernels/cpu/x86_intrinsics.hpp"
#define PARALAB_BWD_X86 1
#endif

namespace paralab::kernels::cpu {

namespace {

constexpr int kKeyBlock = 64;   // keys per block: four 16-float vectors, one mask word
constexpr int kQueryTile = 64;  // query rows per tile: P and dS tiles stay in L1
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

// ---------------------------------------------------------------------------
// Tile operations: what the micro-kernels compute, one struct per call.

// One query tile against one packed key block: out[r, n] for n < kKeyBlock.
//   probabilities: out = mask(r, n) ? exp2(mul * a_r . bt_n - bias[r]) : 0
//   dscores:       out = mul * p[r, n] * (a_r . bt_n - bias[r])
struct ScoreTile {
  int rows = 0, D = 0;
  const float* a = nullptr;  // rows of Q (probabilities) or dO (dscores), stride lda
  size_t lda = 0;
  const float* bt = nullptr;       // K or V of the block, transposed: [D][kKeyBlock]
  const float* bias = nullptr;     // per row: LSE * log2(e), or Delta
  const uint64_t* mask = nullptr;  // per row: visible keys of the block (probabilities)
  const float* p = nullptr;        // [rows][kKeyBlock] probabilities (dscores)
  float mul = 0;                   // scale * log2(e), or scale
  float* out = nullptr;            // [rows][kKeyBlock]
};

// c[i, 0:D) += sum_k a[i * a_row + k * a_col] * b[k * ldb + (0:D)], i < I, k < K.
struct Update {
  int I = 0, K = 0, D = 0;
  const float* a = nullptr;
  ptrdiff_t a_row = 0, a_col = 0;
  const float* b = nullptr;
  size_t ldb = 0;
  float* c = nullptr;
  size_t ldc = 0;
};

struct TileOps {
  void (*probabilities)(const ScoreTile&);
  void (*dscores)(const ScoreTile&);
  void (*update)(const Update&);
  // out[r] = a_r . b_r over D floats, rows with stride ld.
  void (*row_dots)(int rows, int D, const float* a, const float* b, size_t ld, float* out);
};

// --- portable fallback ------------------------------------------------------

// Plain loops ordered so that the compiler can vectorise the inner one.
void dot_tile_portable(const ScoreTile& t, int r, float* acc) {
  std::fill(acc, acc + kKeyBlock, 0.0f);
  for (int d = 0; d < t.D; ++d) {
    const float x = t.a[r * t.lda + d];
    const float* b = t.bt + static_cast<size_t>(d) * kKeyBlock;
    for (int n = 0; n < kKeyBlock; ++n) acc[n] += x * b[n];
  }
}

void probabilities_portable(const ScoreTile& t) {
  float acc[kKeyBlock];
  for (int r = 0; r < t.rows; ++r) {
    dot_tile_portable(t, r, acc);
    float* out = t.out + r * kKeyBlock;
    for (int n = 0; n < kKeyBlock; ++n)
      out[n] = (t.mask[r] >> n & 1) ? std::exp2(t.mul * acc[n] - t.bias[r]) : 0.0f;
  }
}

void dscores_portable(const ScoreTile& t) {
  float acc[kKeyBlock];
  for (int r = 0; r < t.rows; ++r) {
    dot_tile_portable(t, r, acc);
    const float* p = t.p + r * kKeyBlock;
    float* out = t.out + r * kKeyBlock;
    for (int n = 0; n < kKeyBlock; ++n) out[n] = t.mul * p[n] * (acc[n] - t.bias[r]);
  }
}

void update_portable(const Update& u) {
  for (int i = 0; i < u.I; ++i) {
    float* c = u.c + i * u.ldc;
    for (int k = 0; k < u.K; ++k) {
      const float x = u.a[i * u.a_row + k * u.a_col];
      const float* b = u.b + k * u.ldb;
      for (int d = 0; d < u.D; ++d) c[d] += x * b[d];
    }
  }
}

void row_dots_portable(int rows, int D, const float* a, const float* b, size_t ld, float* out) {
  for (int r = 0; r < rows; ++r) {
    double sum = 0;
    for (int d = 0; d < D; ++d) sum += static_cast<double>(a[r * ld + d]) * b[r * ld + d];
    out[r] = static_cast<float>(sum);
  }
}

constexpr TileOps kPortableOps = {probabilities_portable, dscores_portable, update_portable,
                                  row_dots_portable};

// --- AVX-512 ----------------------------------------------------------------
#ifdef PARALAB_BWD_X86
#define PARALAB_AVX512 __attribute__((target("avx512f")))

// GCC 12 warns that the source operand of the unmasked forms of vmaxps,
// vminps, vrndscaleps and vscalefps is used uninitialized (PR 105593) when they
// are inlined into a target("avx512f") function; the all-ones masked forms
// with an explicit source are the same instructions without the warning.
constexpr __mmask16 kAll = 0xffff;

// 2^y to about 1 ulp: y = n + f with |f| <= 1/2, 2^f by its degree-7 Taylor
// polynomial in f ln 2 (truncation < 5e-9 relative), 2^n by vscalefps.
// Clamping keeps the polynomial in range; 2^-127 is 0 for every purpose here.
PARALAB_AVX512 inline __m512 exp2_avx512(__m512 y) {
  y = _mm512_mask_max_ps(y, kAll, y, _mm512_set1_ps(-127.0f));
  y = _mm512_mask_min_ps(y, kAll, y, _mm512_set1_ps(128.0f));
  const __m512 n =
      _mm512_mask_roundscale_ps(y, kAll, y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(y, n);
  __m512 p = _mm512_set1_ps(1.525273380405984e-05f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.5403530393381606e-04f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3333558146428443e-03f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.618129107628477e-03f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550410866482158e-02f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.402265069591007e-01f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931471805599453e-01f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  return _mm512_mask_scalef_ps(p, kAll, p, n);
}

// acc[r][c] = a_r . bt[:, 16c : 16c + 16] for R rows starting at row r0:
// R x 4 accumulators, per d four loads of bt and R broadcasts.
template <int R>
PARALAB_AVX512 inline void dot_rows_avx512(const ScoreTile& t, int r0, __m512 (&acc)[R][4]) {
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < 4; ++c) acc[r][c] = _mm512_setzero_ps();
  const float* a = t.a + r0 * t.lda;
  for (int d = 0; d < t.D; ++d) {
    const float* b = t.bt + static_cast<size_t>(d) * kKeyBlock;
    const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
    const __m512 b2 = _mm512_load_ps(b + 32), b3 = _mm512_load_ps(b + 48);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 x = _mm512_set1_ps(a[r * t.lda + d]);
      acc[r][0] = _mm512_fmadd_ps(x, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(x, b1, acc[r][1]);
      acc[r][2] = _mm512_fmadd_ps(x, b2, acc[r][2]);
      acc[r][3] = _mm512_fmadd_ps(x, b3, acc[r][3]);
    }
  }
}

template <int R>
PARALAB_AVX512 void probabilities_rows_avx512(const ScoreTile& t, int r0) {
  __m512 acc[R][4];
  dot_rows_avx512<R>(t, r0, acc);
  const __m512 mul = _mm512_set1_ps(t.mul);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const __m512 bias = _mm512_set1_ps(t.bias[r0 + r]);
    const uint64_t mask = t.mask[r0 + r];
    float* out = t.out + (r0 + r) * kKeyBlock;
    for (int c = 0; c < 4; ++c) {
      const __m512 p = exp2_avx512(_mm512_fmsub_ps(acc[r][c], mul, bias));
      _mm512_store_ps(out + 16 * c, _mm512_maskz_mov_ps(static_cast<__mmask16>(mask >> 16 * c), p));
    }
  }
}

template <int R>
PARALAB_AVX512 void dscores_rows_avx512(const ScoreTile& t, int r0) {
  __m512 acc[R][4];
  dot_rows_avx512<R>(t, r0, acc);
  const __m512 mul = _mm512_set1_ps(t.mul);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const __m512 delta = _mm512_set1_ps(t.bias[r0 + r]);
    const float* p = t.p + (r0 + r) * kKeyBlock;
    float* out = t.out + (r0 + r) * kKeyBlock;
    for (int c = 0; c < 4; ++c) {
      const __m512 scaled_p = _mm512_mul_ps(mul, _mm512_load_ps(p + 16 * c));
      _mm512_store_ps(out + 16 * c, _mm512_mul_ps(scaled_p, _mm512_sub_ps(acc[r][c], delta)));
    }
  }
}

// Rows in blocks of 6 (24 accumulators), the remainder by a smaller block.
using RowsFn = void (*)(const ScoreTile&, int);
template <template <int> class Kernel>
void for_row_blocks(const ScoreTile& t) {
  static constexpr RowsFn by_rows[] = {Kernel<1>::run, Kernel<2>::run, Kernel<3>::run,
                                       Kernel<4>::run, Kernel<5>::run, Kernel<6>::run};
  for (int r0 = 0; r0 < t.rows; r0 += 6) by_rows[std::min(6, t.rows - r0) - 1](t, r0);
}
template <int R>
struct ProbabilitiesRows {
  static void run(const ScoreTile& t, int r0) { probabilities_rows_avx512<R>(t, r0); }
};
template <int R>
struct DscoresRows {
  static void run(const ScoreTile& t, int r0) { dscores_rows_avx512<R>(t, r0); }
};
void probabilities_avx512(const ScoreTile& t) {
  for_row_blocks<ProbabilitiesRows>(t);
}
void dscores_avx512(const ScoreTile& t) {
  for_row_blocks<DscoresRows>(t);
}

// c[i0 : i0+R, d0 : d0+16V) += a b: R x V accumulators held across all of K,
// the last vector masked by `tail` so that any D works.
template <int R, int V>
PARALAB_AVX512 void update_block_avx512(const Update& u, int i0, int d0, __mmask16 tail) {
  __m512 acc[R][V];
  float* c = u.c + i0 * u.ldc + d0;
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v)
      acc[r][v] = v + 1 < V ? _mm512_loadu_ps(c + r * u.ldc + 16 * v)
                            : _mm512_maskz_loadu_ps(tail, c + r * u.ldc + 16 * v);
  const float* a = u.a + i0 * u.a_row;
  for (int k = 0; k < u.K; ++k) {
    const float* b = u.b + k * u.ldb + d0;
    __m512 bv[V];
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v)
      bv[v] = v + 1 < V ? _mm512_loadu_ps(b + 16 * v) : _mm512_maskz_loadu_ps(tail, b + 16 * v);
    const float* ak = a + k * u.a_col;
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 x = _mm512_set1_ps(ak[r * u.a_row]);
      for (int v = 0; v < V; ++v) acc[r][v] = _mm512_fmadd_ps(x, bv[v], acc[r][v]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v) {
      if (v + 1 < V)
        _mm512_storeu_ps(c + r * u.ldc + 16 * v, acc[r][v]);
      else
        _mm512_mask_storeu_ps(c + r * u.ldc + 16 * v, tail, acc[r][v]);
    }
}

using UpdateFn = void (*)(const Update&, int, int, __mmask16);
template <int R>
constexpr UpdateFn update_fns[4] = {update_block_avx512<R, 1>, update_block_avx512<R, 2>,
                                    update_block_avx512<R, 3>, update_block_avx512<R, 4>};

// D in column chunks of 64 floats, rows in blocks of 6.
void update_avx512(const Update& u) {
  static constexpr const UpdateFn* by_rows[] = {update_fns<1>, update_fns<2>, update_fns<3>,
                                                update_fns<4>, update_fns<5>, update_fns<6>};
  for (int d0 = 0; d0 < u.D; d0 += 64) {
    const int width = std::min(64, u.D - d0);
    const int vectors = (width + 15) / 16;
    const int last = width - 16 * (vectors - 1);
    const auto tail = static_cast<__mmask16>((1u << last) - 1);
    for (int i0 = 0; i0 < u.I; i0 += 6)
      by_rows[std::min(6, u.I - i0) - 1][vectors - 1](u, i0, d0, tail);
  }
}

PARALAB_AVX512 void row_dots_avx512(int rows, int D, const float* a, const float* b, size_t ld,
                                    float* out) {
  for (int r = 0; r < rows; ++r) {
    __m512 sum = _mm512_setzero_ps();
    for (int d = 0; d < D; d += 16) {
      const auto m = static_cast<__mmask16>(D - d >= 16 ? 0xffff : (1u << (D - d)) - 1);
      sum = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + r * ld + d),
                            _mm512_maskz_loadu_ps(m, b + r * ld + d), sum);
    }
    alignas(64) float lanes[16];  // (not _mm512_reduce_add_ps: PR 105593 again)
    _mm512_store_ps(lanes, sum);
    double total = 0;
    for (float x : lanes) total += x;
    out[r] = static_cast<float>(total);
  }
}

constexpr TileOps kAvx512Ops = {probabilities_avx512, dscores_avx512, update_avx512,
                                row_dots_avx512};
#endif  // PARALAB_BWD_X86

const TileOps& select_ops() {
#ifdef PARALAB_BWD_X86
  if (isa_enabled(Isa::avx512)) return kAvx512Ops;
#endif
  return kPortableOps;
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
