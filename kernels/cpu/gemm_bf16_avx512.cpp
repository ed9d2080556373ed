// The BF16 GEMM on AVX512-BF16: C = alpha * op(A) op(B) + beta * C with BF16
// A and B, FP32 accumulation and an FP32 C, structured like BLIS:
//
//   for each NC-wide column block of C                      (jc)
//     for each KC-deep slice of K                           (pc)
//       pack B[pc, jc] into NR-wide panels          all threads, one barrier
//       for each unit (MC-high row block x share of the B panels), OpenMP
//         pack A[ic, pc] into MR-high panels        per thread, kept in L2
//         for each NR-wide B panel: for each MR-high A panel: micro-kernel
//
// vdpbf16ps multiplies pairs: lane j of the accumulator gets
// a[2j] * b[2j] + a[2j + 1] * b[2j + 1]. So both operands are packed with the
// K dimension in pairs: the 32-bit word (lo, hi) holds op(X) at k and k + 1.
// A panel is, for each pair p, MR words (one per row); a B panel is, for each
// pair p, NR words (one per column). The micro-kernel broadcasts one A word
// and multiplies it by NR / 16 B vectors, into MR x NR / 16 accumulators.
// Transposes are absorbed by the packing; edges are zero-padded in the packed
// panels and masked when C is written. The products of two BF16 values are
// exact in FP32, so the result differs from an FP32 GEMM of the same inputs
// only in the order of the FP32 additions (and vdpbf16ps treats subnormal
// inputs and results as zero).
#if defined(__x86_64__)

#include <omp.h>
#include "kernels/cpu/x86_intrinsics.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "kernels/gemm.hpp"

namespace paralab::kernels::cpu::detail {

namespace {

#define PARALAB_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

// Register blocking: MR x 16 * NV accumulators, here 8 x 48 = 24 zmm, plus NV
// B vectors and one broadcast A word: 28 of the 32 zmm registers. Per pair of
// k this is 24 vdpbf16ps against 3 vector loads and 8 broadcasts.
constexpr int kMR = 8;
constexpr int kNV = 3;
constexpr int kNR = 16 * kNV;
// The packing moves 8 lanes at a time.
static_assert(kMR % 8 == 0 && kNR % 8 == 0);
// Cache blocking: a B micro-panel (KC x NR BF16 = 24 KiB) stays in L1 while
// the A block (MC x KC BF16 = 128 KiB) streams from L2 and the B block
// (KC x NC BF16, <= 2.4 MiB) from L3.
constexpr int kKCMax = 256;
constexpr int kMCMax = 256;
constexpr int kNCMax = 4800;
// Work per thread below which another thread costs more than it gives.
constexpr double kFlopsPerThread = 2e7;

// An extent split into `count` blocks of `size` (a multiple of `unit`) each,
// the last one possibly shorter: equal blocks instead of a full-size run and
// a small remainder.
struct Blocks {
  int count, size;
  int begin(int b) const { return b * size; }
  int length(int b, int extent) const { return std::min(size, extent - b * size); }
};

Blocks split(int extent, int max_size, int unit) {
  const int count = (extent + max_size - 1) / max_size;
  const int even = (extent + count - 1) / count;
  return {count, (even + unit - 1) / unit * unit};
}

int ceil_div(int x, int y) {
  return (x + y - 1) / y;
}

// The packing buffers of a call, 64-byte aligned: kept by the calling thread
// and grown across calls so that a GEMM does not fault in fresh pages each
// time (a few MiB: about 1% of a 2048^3 GEMM otherwise). Allocated before
// the parallel region, so that running out of memory throws to the caller.
uint32_t* scratch(size_t words) {
  struct Held {
    uint32_t* data = nullptr;
    size_t words = 0;
    ~Held() { std::free(data); }
  };
  thread_local Held held;
  if (held.words < words) {
    std::free(held.data);
    held.data = nullptr;
    held.words = 0;
    const size_t bytes = (words * sizeof(uint32_t) + 63) / 64 * 64;
    held.data = static_cast<uint32_t*>(std::aligned_alloc(64, bytes));
    if (held.data == nullptr) throw std::bad_alloc();
    held.words = words;
  }
  return held.data;
}

// --- packing ---------------------------------------------------------------

// One operand seen as lanes (rows of op(A), or columns of op(B)) by k.
// k_contiguous: a lane's k values are adjacent in memory (A not transposed,
// B transposed), else a k's lane values are (A transposed, B not transposed).
struct PairSource {
  const uint16_t* data;
  size_t ld;
  bool k_contiguous;
  uint16_t at(int lane, int k) const {
    return k_contiguous ? data[lane * ld + k] : data[static_cast<size_t>(k) * ld + lane];
  }
  const uint16_t* address(int lane, int k) const {
    return k_contiguous ? data + lane * ld + k : data + static_cast<size_t>(k) * ld + lane;
  }
};

// Words (lo, hi) = (x[k], x[k + 1]) for pairs [p_begin, p_end) of lanes
// [0, lanes) of a panel `width` lanes wide; zero outside the operand.
void pack_pairs_checked(const PairSource& src, int lane0, int lanes, int width, int k0, int kc,
                        int p_begin, int p_end, uint32_t* dst) {
  for (int p = p_begin; p < p_end; ++p) {
    const int k = k0 + 2 * p;
    const bool has_hi = 2 * p + 1 < kc;
    for (int l = 0; l < width; ++l) {
      uint32_t word = 0;
      if (l < lanes) {
        word = src.at(lane0 + l, k);
        if (has_hi) word |= static_cast<uint32_t>(src.at(lane0 + l, k + 1)) << 16;
      }
      dst[static_cast<size_t>(p) * width + l] = word;
    }
  }
}

// 8 lanes x 8 pairs where each lane's pairs are adjacent (8 words a row):
// an 8 x 8 transpose of 32-bit words, into 8 rows `stride` words apart.
PARALAB_AVX512 void transpose_8x8(const uint16_t* src, size_t ld, uint32_t* dst, size_t stride) {
  __m256i r[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_si256((const __m256i*)(src + i * ld));
  __m256i t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_epi32(r[i], r[i + 1]);      // pairs 0 1 | 4 5 of 2 lanes
    t[i + 1] = _mm256_unpackhi_epi32(r[i], r[i + 1]);  // pairs 2 3 | 6 7
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]);          // pair 0 | 4 of 4 lanes
    u[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]);      // pair 1 | 5
    u[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]);  // pair 2 | 6
    u[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);  // pair 3 | 7
  }
  for (int p = 0; p < 4; ++p) {
    _mm256_storeu_si256((__m256i*)(dst + p * stride),
                        _mm256_permute2x128_si256(u[p], u[p + 4], 0x20));
    _mm256_storeu_si256((__m256i*)(dst + (p + 4) * stride),
                        _mm256_permute2x128_si256(u[p], u[p + 4], 0x31));
  }
}

// 8 lanes of one pair where lanes are adjacent: interleave rows k and k + 1.
PARALAB_AVX512 void interleave_8(const uint16_t* lo, const uint16_t* hi, uint32_t* dst) {
  const __m256i a = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)lo));
  const __m256i b = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)hi));
  _mm256_storeu_si256((__m256i*)dst, _mm256_or_si256(a, _mm256_slli_epi32(b, 16)));
}

// One panel of `width` lanes (a multiple of 8) over k0 .. k0 + kc; lanes
// beyond `lanes` and the odd last k are zero.
PARALAB_AVX512 void pack_panel(const PairSource& src, int lane0, int lanes, int width, int k0,
                               int kc, uint32_t* dst) {
  const int pairs = ceil_div(kc, 2);
  if (lanes < width) return pack_pairs_checked(src, lane0, lanes, width, k0, kc, 0, pairs, dst);
  const int full = kc / 2;  // pairs with both k in range
  int p = 0;
  if (src.k_contiguous) {
    for (; p + 8 <= full; p += 8)
      for (int l = 0; l < width; l += 8)
        transpose_8x8(src.address(lane0 + l, k0 + 2 * p), src.ld, dst + p * width + l, width);
  } else {
    for (; p < full; ++p)
      for (int l = 0; l < width; l += 8)
        interleave_8(src.address(lane0 + l, k0 + 2 * p), src.address(lane0 + l, k0 + 2 * p + 1),
                     dst + p * width + l);
  }
  pack_pairs_checked(src, lane0, lanes, width, k0, kc, p, pairs, dst);
}

// All panels of a block: rows i0 .. i0 + mc of op(A), or columns of op(B).
void pack_block(const PairSource& src, int lane0, int extent, int width, int k0, int kc,
                uint32_t* dst) {
  const size_t panel_words = static_cast<size_t>(ceil_div(kc, 2)) * width;
  for (int l = 0; l < extent; l += width)
    pack_panel(src, lane0 + l, std::min(width, extent - l), width, k0, kc,
               dst + l / width * panel_words);
}

// --- micro-kernel ----------------------------------------------------------

// C[m x n] = alpha * acc + beta * C (beta = 0: C is not read). Masked
// loads and stores only at the right edge: they are slow on some CPUs (a
// masked store costs several cycles on AMD Zen 4 and 5).
template <bool kMasked>
PARALAB_AVX512 inline void store_tile(const __m512 (&acc)[kMR][kNV], float* c, size_t ldc, int m,
                                      int n, float alpha, float beta) {
  __mmask16 mask[kNV];
  for (int v = 0; v < kNV; ++v) {
    const int left = std::clamp(n - 16 * v, 0, 16);
    mask[v] = static_cast<__mmask16>((1u << left) - 1);
  }
  const __m512 alpha_v = _mm512_set1_ps(alpha), beta_v = _mm512_set1_ps(beta);
#pragma GCC unroll 8
  for (int r = 0; r < kMR; ++r) {
    if (r >= m) break;
#pragma GCC unroll 4
    for (int v = 0; v < kNV; ++v) {
      float* out = c + r * ldc + 16 * v;
      __m512 result = _mm512_mul_ps(alpha_v, acc[r][v]);
      if (beta != 0) {
        const __m512 old = kMasked ? _mm512_maskz_loadu_ps(mask[v], out) : _mm512_loadu_ps(out);
        result = _mm512_fmadd_ps(beta_v, old, result);
      }
      if (kMasked) {
        _mm512_mask_storeu_ps(out, mask[v], result);
      } else {
        _mm512_storeu_ps(out, result);
      }
    }
  }
}

// C[m x n] = alpha * A_panel B_panel + beta * C (beta = 0: C is not read),
// for m <= MR rows and n <= NR columns.
PARALAB_AVX512 void micro_kernel(int pairs, const uint32_t* a, const uint32_t* b, float* c,
                                 size_t ldc, int m, int n, float alpha, float beta) {
  // C is read and written only at the end: fetch its lines (NR floats may
  // straddle NV + 1 of them) while the loop runs.
  for (int r = 0; r < m; ++r) {
    for (int v = 0; v < kNV; ++v) _mm_prefetch((const char*)(c + r * ldc + 16 * v), _MM_HINT_T0);
    _mm_prefetch((const char*)(c + r * ldc + n - 1), _MM_HINT_T0);
  }
  __m512 acc[kMR][kNV];
#pragma GCC unroll 8
  for (int r = 0; r < kMR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < kNV; ++v) acc[r][v] = _mm512_setzero_ps();
  for (int p = 0; p < pairs; ++p) {
    __m512bh bv[kNV];
#pragma GCC unroll 4
    for (int v = 0; v < kNV; ++v) bv[v] = (__m512bh)_mm512_load_si512(b + p * kNR + 16 * v);
#pragma GCC unroll 8
    for (int r = 0; r < kMR; ++r) {
      const __m512bh av = (__m512bh)_mm512_set1_epi32(static_cast<int>(a[p * kMR + r]));
#pragma GCC unroll 4
      for (int v = 0; v < kNV; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], av, bv[v]);
    }
  }
  if (n == kNR) {
    store_tile<false>(acc, c, ldc, m, n, alpha, beta);
  } else {
    store_tile<true>(acc, c, ldc, m, n, alpha, beta);
  }
}

// --- the loops -------------------------------------------------------------

struct Plan {
  GemmShape s;
  Blocks m, n, k;
  int threads;
  int shares;  // each row block meets the panels of a B block in this many units
};

// Packed B for two K slices (double buffer), then a packed A block per thread.
struct Workspace {
  uint32_t* packed_b;
  size_t packed_b_words;  // one slice
  uint32_t* packed_a;
  size_t packed_a_words;  // one thread's
};

// Into how many shares to split each row block's B panels: the fewest that
// give every thread the same number of units to within 5%. Each thread takes
// a contiguous run of units (row-block major), so it repacks A only when its
// run crosses into another row block.
int choose_shares(int row_blocks, int panels, int threads) {
  if (threads == 1) return 1;
  for (int shares = 1; shares < panels; ++shares) {
    const int units = row_blocks * shares;
    if (units >= threads && ceil_div(units, threads) * threads <= 1.05 * units) return shares;
  }
  return panels;
}

Plan make_plan(const GemmShape& s) {
  Plan plan{s, split(s.M, kMCMax, kMR), split(s.N, kNCMax, kNR), split(s.K, kKCMax, 2), 1, 1};
  const int most = std::max(1, omp_get_max_threads());
  plan.threads = std::clamp(static_cast<int>(gemm_flops(s) / kFlopsPerThread), 1, most);
  plan.shares = choose_shares(plan.m.count, ceil_div(plan.n.size, kNR), plan.threads);
  return plan;
}

// The micro-kernels of one row block against panels [panel_begin, panel_end)
// of the packed B block; C points at the block's top left corner.
void macro_kernel(const Plan& plan, int mc, int nc, int kc, const uint32_t* packed_a,
                  const uint32_t* packed_b, int panel_begin, int panel_end, float* c, float beta) {
  const int pairs = ceil_div(kc, 2);
  const size_t ldc = plan.s.ldc;
  for (int jp = panel_begin; jp < panel_end; ++jp) {
    const uint32_t* b_panel = packed_b + static_cast<size_t>(jp) * pairs * kNR;
    const int n = std::min(kNR, nc - jp * kNR);
    for (int i = 0; i < mc; i += kMR) {
      const uint32_t* a_panel = packed_a + static_cast<size_t>(i / kMR) * pairs * kMR;
      micro_kernel(pairs, a_panel, b_panel, c + i * ldc + jp * kNR, ldc, std::min(kMR, mc - i), n,
                   plan.s.alpha, beta);
    }
  }
}

// What one thread does inside the parallel region; every thread runs the
// same jc / pc loops so the worksharing loops line up. One barrier per K
// slice: packed B is double-buffered (a thread packing slice pc + 1 only
// overwrites the buffer of slice pc - 1, which every thread finished before
// the barrier ending the packing of slice pc), and the units of C are
// assigned statically, the same to each thread in every slice, so a thread
// accumulates into its C tiles in program order without waiting for others.
void run_thread(const Plan& plan, const PairSource& a, const PairSource& b, float* c,
                const Workspace& work) {
  const GemmShape& s = plan.s;
  uint32_t* packed_a = work.packed_a + omp_get_thread_num() * work.packed_a_words;
  int slice = 0;
  for (int jc = 0; jc < plan.n.count; ++jc) {
    const int n0 = plan.n.begin(jc), nc = plan.n.length(jc, s.N);
    const int panels = ceil_div(nc, kNR);
    for (int pc = 0; pc < plan.k.count; ++pc, ++slice) {
      const int k0 = plan.k.begin(pc), kc = plan.k.length(pc, s.K);
      const size_t panel_words = static_cast<size_t>(ceil_div(kc, 2)) * kNR;
      uint32_t* packed_b = work.packed_b + (slice % 2) * work.packed_b_words;
#pragma omp for schedule(static)
      for (int jp = 0; jp < panels; ++jp)
        pack_panel(b, n0 + jp * kNR, std::min(kNR, nc - jp * kNR), kNR, k0, kc,
                   packed_b + jp * panel_words);
      // The first K slice applies beta; the later ones accumulate.
      const float beta = pc == 0 ? s.beta : 1.0f;
      int packed_ic = -1;
      const int units = plan.m.count * plan.shares;
#pragma omp for schedule(static) nowait
      for (int unit = 0; unit < units; ++unit) {
        const int ic = unit / plan.shares, share = unit % plan.shares;
        const int m0 = plan.m.begin(ic), mc = plan.m.length(ic, s.M);
        if (ic != packed_ic) pack_block(a, m0, mc, kMR, k0, kc, packed_a);
        packed_ic = ic;
        const int first = share * panels / plan.shares;
        const int last = (share + 1) * panels / plan.shares;
        macro_kernel(plan, mc, nc, kc, packed_a, packed_b, first, last,
                     c + static_cast<size_t>(m0) * s.ldc + n0, beta);
      }
    }
  }
}

#undef PARALAB_AVX512

}  // namespace

void gemm_bf16_avx512(const GemmShape& s, const bf16* a, const bf16* b, float* c) {
  const Plan plan = make_plan(s);
  const PairSource a_src{reinterpret_cast<const uint16_t*>(a), static_cast<size_t>(s.lda),
                         s.trans_a == Trans::no};
  const PairSource b_src{reinterpret_cast<const uint16_t*>(b), static_cast<size_t>(s.ldb),
                         s.trans_b == Trans::yes};
  Workspace work;
  work.packed_b_words = static_cast<size_t>(ceil_div(plan.k.size, 2)) * plan.n.size;
  work.packed_a_words = static_cast<size_t>(ceil_div(plan.k.size, 2)) * plan.m.size;
  work.packed_b = scratch(2 * work.packed_b_words + plan.threads * work.packed_a_words);
  work.packed_a = work.packed_b + 2 * work.packed_b_words;
#pragma omp parallel num_threads(plan.threads)
  run_thread(plan, a_src, b_src, c, work);
}

}  // namespace paralab::kernels::cpu::detail

#endif  // __x86_64__
