// attention_forward.cu: the CUDA attention forward, flash-attention-2 style:
// one thread block per (tile of query rows, query head) walks the key tiles
// its rows can see, keeps the scores in registers and folds each tile into an
// online softmax (running row maximum m, row sum l, unnormalised O), so the
// T x S score matrix never exists in memory. Three kernels:
//   bf16_tile_kernel<D>  BF16 inputs, D = 64 or 128: tensor cores through
//                        mma.sync.m16n8k16 (inline PTX), FP32 accumulation
//   f32_tile_kernel<D>   FP32 inputs, D = 64 or 128: plain FP32 FMA (no
//                        TF32), so results match the reference within 1e-5
//   generic_kernel<T>    any D, any alignment: one warp per (row, head)
// Scores live in the log2 domain (x = q.k * scale * log2 e) so each
// exponential is one exp2f; LSE converts back to natural log at the end.
#include <cuda_bf16.h>

#include <cmath>
#include <cstring>

#include "kernels/attention.hpp"
#include "kernels/cuda/common.cuh"

namespace paralab::kernels::cuda {

namespace {

using detail::load_tile_f32;
using detail::MaskParams;
using detail::TileRanges;

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

struct ForwardParams {
  const void* q;
  const void* k;
  const void* v;
  float* o;
  float* lse;
  int T, S, H, H_kv, D;
  int group;         // H / H_kv query heads per key/value head
  float scale_log2;  // softmax scale * log2(e)
  MaskParams mask;
};

// Row offsets in elements: Q/O row (t, h) and K/V row (s, kv).
__device__ inline size_t q_row(const ForwardParams& p, int64_t t, int h) {
  return (static_cast<size_t>(t) * p.H + h) * p.D;
}
__device__ inline size_t kv_row(const ForwardParams& p, int64_t s, int kv) {
  return (static_cast<size_t>(s) * p.H_kv + kv) * p.D;
}

// Fills the per-row key intervals of query rows [t0, t0 + rows) into shared
// memory (rows past T get an empty interval) and summarises the valid ones.
template <int kRows, int kThreads>
__device__ TileRanges load_row_ranges(const ForwardParams& p, int t0, int* row_lo, int* row_hi) {
  for (int r = threadIdx.x; r < kRows; r += kThreads) {
    int lo = 0, hi = 0;
    if (t0 + r < p.T) detail::visible_keys(p.mask, t0 + r, p.S, lo, hi);
    row_lo[r] = lo;
    row_hi[r] = hi;
  }
  __syncthreads();
  return detail::tile_ranges(row_lo, row_hi, min(kRows, p.T - t0));
}

// ---------------------------------------------------------------------------
// BF16 on tensor cores.
//
// Why mma.sync and not WMMA: the FA-2 trick reuses the score accumulators of
// S = Q K^T directly as the A operand of O += P V. That needs the register
// layout of the fragments, which the PTX ISA documents for mma.m16n8k16 and
// WMMA leaves unspecified. ldmatrix loads the documented layouts straight
// from shared memory (.trans for V, whose rows are keys).
//
// Fragment layouts (lane = 4 * g + c, g = lane / 4, c = lane % 4):
//   A 16x16 (row): a0 (g, 2c..2c+1), a1 (g+8, 2c..), a2 (g, 2c+8..), a3 (g+8, 2c+8..)
//   B 16x8 (col):  b0 (k = 2c..2c+1, n = g), b1 (k = 2c+8.., n = g)
//   C 16x8 FP32:   c0, c1 (g, 2c..2c+1), c2, c3 (g+8, 2c..2c+1)
// ldmatrix.x4: lanes 8i..8i+7 give the row addresses of 8x8 matrix i, and
// register i of lane t receives row t/4, columns 2(t%4)..+1 of matrix i
// (with .trans: column t/4, rows 2(t%4)..+1).

__device__ inline uint32_t shared_address(const void* pointer) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(pointer));
}

// 16 bytes global -> shared, bypassing L1; zero-filled when !valid (then
// `source` is not read but must still be a valid address).
__device__ inline void cp_async_16(uint32_t target, const void* source, bool valid) {
  const int bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(target), "l"(source),
               "r"(bytes)
               : "memory");
}
__device__ inline void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
__device__ inline void cp_async_wait_all() {
  asm volatile("cp.async.wait_all;\n" ::: "memory");
}

__device__ inline void ldmatrix_x4(uint32_t (&r)[4], uint32_t address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address)
               : "memory");
}
__device__ inline void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address)
               : "memory");
}

// c += a * b for one 16x8x16 tile, FP32 accumulation.
__device__ inline void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two FP32 values as a BF16 pair, `low` in the low half (the lower column).
__device__ inline uint32_t pack_bf16(float low, float high) {
  const __nv_bfloat162 pair = __floats2bfloat162_rn(low, high);
  uint32_t bits;
  memcpy(&bits, &pair, sizeof(bits));
  return bits;
}

template <int D>
struct Bf16Tile {
  static_assert(D % 16 == 0, "the tensor-core kernel needs D to be a multiple of 16");
  static constexpr int kWarps = 8;
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kRows = kWarps * 16;  // query rows: 16 per warp (one mma row block)
  static constexpr int kKeys = 64;           // keys per tile
  // Row stride in elements: 16 bytes of padding shift consecutive rows by
  // one 16-byte bank group, so ldmatrix's 8 row reads hit 8 distinct groups.
  static constexpr int kStride = D + 8;
  // D = 64 needs about half the registers: two blocks per SM then.
  static constexpr int kMinBlocks = D <= 64 ? 2 : 1;
  static constexpr size_t kSharedBytes = size_t{kRows + 2 * kKeys} * kStride * sizeof(uint16_t);
};

// Queues `rows` x D BF16 elements (rows of `stride` elements from `source`)
// into shared memory [rows][D + 8]; rows >= valid_rows are zero-filled.
template <int kTileRows, int D, int kThreads>
__device__ inline void load_tile_async(uint16_t* target, const uint16_t* source, size_t stride,
                                       int valid_rows, const void* any_valid_address) {
  constexpr int kChunksPerRow = D / 8;  // 16-byte chunks
  constexpr int kChunks = kTileRows * kChunksPerRow;
  static_assert(kChunks % kThreads == 0, "tile chunks must divide evenly over the threads");
#pragma unroll
  for (int i = 0; i < kChunks / kThreads; ++i) {
    const int chunk = i * kThreads + static_cast<int>(threadIdx.x);
    const int row = chunk / kChunksPerRow;
    const int col = (chunk % kChunksPerRow) * 8;
    const bool valid = row < valid_rows;
    const void* from =
        valid ? static_cast<const void*>(source + row * stride + col) : any_valid_address;
    cp_async_16(shared_address(target + row * (D + 8) + col), from, valid);
  }
}

template <int D>
__global__ void __launch_bounds__(Bf16Tile<D>::kThreads, Bf16Tile<D>::kMinBlocks)
    bf16_tile_kernel(ForwardParams p) {
  using Tile = Bf16Tile<D>;
  constexpr int kRows = Tile::kRows, kKeys = Tile::kKeys, kStride = Tile::kStride;
  constexpr int kThreads = Tile::kThreads;
  constexpr int kKeyBlocks = kKeys / 8;  // 8-key column blocks of S
  constexpr int kDimBlocks = D / 8;      // 8-wide column blocks of O

  extern __shared__ __align__(16) unsigned char shared_raw[];
  uint16_t* q_s = reinterpret_cast<uint16_t*>(shared_raw);  // [kRows][kStride]
  uint16_t* k_s = q_s + kRows * kStride;                    // [kKeys][kStride]
  uint16_t* v_s = k_s + kKeys * kStride;                    // [kKeys][kStride]
  __shared__ int row_lo[kRows], row_hi[kRows];

  // Later query tiles see more keys under a causal mask: start them first.
  const int t0 = (gridDim.x - 1 - blockIdx.x) * kRows;
  const int h = blockIdx.y;
  const int kv = h / p.group;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, c = lane % 4;

  const TileRanges range = load_row_ranges<kRows, kThreads>(p, t0, row_lo, row_hi);

  // This lane's two rows (g and g + 8 of the warp's 16) and the warp's
  // union of key intervals, to skip key tiles none of its rows can see.
  const int r0 = warp * 16 + g, r1 = r0 + 8;
  int warp_lo = INT_MAX, warp_hi = INT_MIN;
  for (int r = warp * 16; r < warp * 16 + 16; ++r) {
    if (t0 + r < p.T && row_lo[r] < row_hi[r]) {
      warp_lo = min(warp_lo, row_lo[r]);
      warp_hi = max(warp_hi, row_hi[r]);
    }
  }

  float o_acc[kDimBlocks][4];
#pragma unroll
  for (int n = 0; n < kDimBlocks; ++n) o_acc[n][0] = o_acc[n][1] = o_acc[n][2] = o_acc[n][3] = 0;
  float m[2] = {-INFINITY, -INFINITY};  // running row maxima (log2 domain)
  float l[2] = {0, 0};                  // this lane's part of the running row sums

  const int first_tile = range.any() ? range.key_lo / kKeys : 0;
  const int end_tile = range.any() ? (range.key_hi + kKeys - 1) / kKeys : 0;
  if (first_tile < end_tile) {
    const uint16_t* q = static_cast<const uint16_t*>(p.q);
    const uint16_t* k = static_cast<const uint16_t*>(p.k);
    const uint16_t* v = static_cast<const uint16_t*>(p.v);
    const size_t q_stride = static_cast<size_t>(p.H) * D,
                 kv_stride = static_cast<size_t>(p.H_kv) * D;
    const uint16_t* k_head = k + static_cast<size_t>(kv) * D;  // key s at k_head + s * kv_stride
    const uint16_t* v_head = v + static_cast<size_t>(kv) * D;

    load_tile_async<kRows, D, kThreads>(q_s, q + (static_cast<size_t>(t0) * p.H + h) * D, q_stride,
                                        p.T - t0, q);
    load_tile_async<kKeys, D, kThreads>(
        k_s, k_head + static_cast<size_t>(first_tile) * kKeys * kv_stride, kv_stride,
        p.S - first_tile * kKeys, k);
    cp_async_commit();
    cp_async_wait_all();
    __syncthreads();

    // Q stays in registers for the whole key loop: A fragments per 16-wide d chunk.
    uint32_t q_frag[D / 16][4];
#pragma unroll
    for (int kc = 0; kc < D / 16; ++kc)
      ldmatrix_x4(q_frag[kc], shared_address(q_s + (warp * 16 + lane % 16) * kStride + kc * 16 +
                                             (lane / 16) * 8));

    // One K and one V buffer, loads interleaved as in FA-2: V_j arrives while
    // S = Q K_j^T is computed, K_{j+1} while O += P V_j is.
    for (int j = first_tile; j < end_tile; ++j) {
      const int c0 = j * kKeys;
      cp_async_wait_all();
      __syncthreads();  // K_j has landed; every warp is done reading V_{j-1}
      load_tile_async<kKeys, D, kThreads>(v_s, v_head + static_cast<size_t>(c0) * kv_stride,
                                          kv_stride, p.S - c0, v);
      cp_async_commit();

      const bool active = warp_lo < c0 + kKeys && warp_hi > c0;  // warp-uniform
      const bool masked = !range.unmasked(c0, c0 + kKeys);
      float s[kKeyBlocks][4];
      if (active) {
        // S = Q K^T: B fragments are K rows (keys) read without transpose.
#pragma unroll
        for (int n = 0; n < kKeyBlocks; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0;
#pragma unroll
        for (int kc = 0; kc < D / 16; ++kc) {
#pragma unroll
          for (int np = 0; np < kKeyBlocks / 2; ++np) {
            uint32_t b[4];
            const int key = np * 16 + (lane & 7) + ((lane >> 4) << 3);
            const int col = kc * 16 + (((lane >> 3) & 1) << 3);
            ldmatrix_x4(b, shared_address(k_s + key * kStride + col));
            mma_bf16(s[2 * np], q_frag[kc], b[0], b[1]);
            mma_bf16(s[2 * np + 1], q_frag[kc], b[2], b[3]);
          }
        }
        // Scale into the log2 domain; masked keys (and keys past S) get -inf.
#pragma unroll
        for (int n = 0; n < kKeyBlocks; ++n) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            float x = s[n][e] * p.scale_log2;
            if (masked) {  // intervals re-read from shared memory: saves registers
              const int key = c0 + n * 8 + 2 * c + (e & 1);
              const int row = e < 2 ? r0 : r1;
              if (key < row_lo[row] || key >= row_hi[row]) x = -INFINITY;
            }
            s[n][e] = x;
          }
        }
        // Online softmax; a row's 4 lanes (same g) share its maximum.
        float top[2] = {m[0], m[1]};
#pragma unroll
        for (int n = 0; n < kKeyBlocks; ++n) {
          top[0] = fmaxf(top[0], fmaxf(s[n][0], s[n][1]));
          top[1] = fmaxf(top[1], fmaxf(s[n][2], s[n][3]));
        }
        float base[2], alpha[2];
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          top[r] = fmaxf(top[r], __shfl_xor_sync(0xffffffffu, top[r], 1));
          top[r] = fmaxf(top[r], __shfl_xor_sync(0xffffffffu, top[r], 2));
          // A row that has seen no key yet keeps m = -inf; exponentiate against
          // 0 then, so exp2(-inf - -inf) never makes a NaN.
          base[r] = top[r] == -INFINITY ? 0.0f : top[r];
          alpha[r] = exp2f(m[r] - base[r]);
          m[r] = top[r];
          l[r] *= alpha[r];
        }
#pragma unroll
        for (int n = 0; n < kKeyBlocks; ++n) {
          s[n][0] = exp2f(s[n][0] - base[0]);
          s[n][1] = exp2f(s[n][1] - base[0]);
          s[n][2] = exp2f(s[n][2] - base[1]);
          s[n][3] = exp2f(s[n][3] - base[1]);
          l[0] += s[n][0] + s[n][1];
          l[1] += s[n][2] + s[n][3];
        }
#pragma unroll
        for (int n = 0; n < kDimBlocks; ++n) {
          o_acc[n][0] *= alpha[0];
          o_acc[n][1] *= alpha[0];
          o_acc[n][2] *= alpha[1];
          o_acc[n][3] *= alpha[1];
        }
      }

      cp_async_wait_all();
      __syncthreads();  // V_j has landed; every warp is done reading K_j
      if (j + 1 < end_tile) {
        load_tile_async<kKeys, D, kThreads>(k_s,
                                            k_head + static_cast<size_t>(c0 + kKeys) * kv_stride,
                                            kv_stride, p.S - c0 - kKeys, k);
        cp_async_commit();
      }

      if (active) {
        // O += P V: the score accumulators of two 8-key blocks form the A
        // fragment of a 16-key step (rounded to BF16); B fragments are V
        // rows read with .trans.
#pragma unroll
        for (int kc = 0; kc < kKeys / 16; ++kc) {
          const uint32_t a[4] = {pack_bf16(s[2 * kc][0], s[2 * kc][1]),
                                 pack_bf16(s[2 * kc][2], s[2 * kc][3]),
                                 pack_bf16(s[2 * kc + 1][0], s[2 * kc + 1][1]),
                                 pack_bf16(s[2 * kc + 1][2], s[2 * kc + 1][3])};
#pragma unroll
          for (int dp = 0; dp < D / 16; ++dp) {
            uint32_t b[4];
            const int key = kc * 16 + (lane & 7) + (((lane >> 3) & 1) << 3);
            const int col = dp * 16 + ((lane >> 4) << 3);
            ldmatrix_x4_trans(b, shared_address(v_s + key * kStride + col));
            mma_bf16(o_acc[2 * dp], a, b[0], b[1]);
            mma_bf16(o_acc[2 * dp + 1], a, b[2], b[3]);
          }
        }
      }
    }
  }

  // Epilogue: the row sums over the 4 lanes of a row, then O / l and LSE.
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t t = t0 + (r == 0 ? r0 : r1);
    if (t >= p.T) continue;
    const bool seen = l[r] > 0;  // a row that saw a key has l >= 1
    const float inverse = seen ? 1.0f / l[r] : 0.0f;
    float* out = p.o + q_row(p, t, h);
#pragma unroll
    for (int n = 0; n < kDimBlocks; ++n) {
      const float2 pair = make_float2(o_acc[n][2 * r] * inverse, o_acc[n][2 * r + 1] * inverse);
      *reinterpret_cast<float2*>(out + n * 8 + 2 * c) = pair;
    }
    if (c == 0)
      p.lse[static_cast<size_t>(t) * p.H + h] = seen ? m[r] * kLn2 + logf(l[r]) : -INFINITY;
  }
}

// ---------------------------------------------------------------------------
// FP32 with plain FMA: 64 query rows x 64 keys per step, 256 threads as a
// 16 x 16 grid; thread (ty, tx) owns rows ty + 16i and keys (then output
// columns) tx + 16j, so a row's 16 threads are one half-warp and row
// reductions are 4 shuffles. Rows of odd stride keep shared reads
// conflict-free.

template <int D>
struct F32Tile {
  static constexpr int kThreads = 256;
  static constexpr int kRows = 64;
  static constexpr int kKeys = 64;
  static constexpr int kStride = D + 1;       // Q and K/V rows
  static constexpr int kPStride = kKeys + 1;  // P rows
  static constexpr size_t kSharedBytes =
      (size_t{kRows} * kStride + size_t{kKeys} * kStride + size_t{kRows} * kPStride) *
      sizeof(float);
};

template <int D>
__global__ void __launch_bounds__(F32Tile<D>::kThreads) f32_tile_kernel(ForwardParams p) {
  using Tile = F32Tile<D>;
  constexpr int kRows = Tile::kRows, kKeys = Tile::kKeys, kStride = Tile::kStride;
  constexpr int kPStride = Tile::kPStride, kThreads = Tile::kThreads;
  constexpr int kCols = D / 16;  // output columns per thread

  extern __shared__ float shared_f32[];
  float* q_s = shared_f32;              // [kRows][kStride]
  float* kv_s = q_s + kRows * kStride;  // [kKeys][kStride]: K, then V
  float* p_s = kv_s + kKeys * kStride;  // [kRows][kPStride]
  __shared__ int row_lo[kRows], row_hi[kRows];

  const int t0 = (gridDim.x - 1 - blockIdx.x) * kRows;
  const int h = blockIdx.y;
  const int kv = h / p.group;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;

  const TileRanges range = load_row_ranges<kRows, kThreads>(p, t0, row_lo, row_hi);
  int lo[4], hi[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) lo[i] = row_lo[ty + 16 * i], hi[i] = row_hi[ty + 16 * i];

  float acc[4][kCols];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int cc = 0; cc < kCols; ++cc) acc[i][cc] = 0;
  float m[4], l[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) m[i] = -INFINITY, l[i] = 0;

  const int first_tile = range.any() ? range.key_lo / kKeys : 0;
  const int end_tile = range.any() ? (range.key_hi + kKeys - 1) / kKeys : 0;
  if (first_tile < end_tile) {
    const float* q = static_cast<const float*>(p.q);
    const float* k = static_cast<const float*>(p.k);
    const float* v = static_cast<const float*>(p.v);
    const size_t q_stride = static_cast<size_t>(p.H) * D,
                 kv_stride = static_cast<size_t>(p.H_kv) * D;
    load_tile_f32<kRows, D, kThreads>(q_s, q + (static_cast<size_t>(t0) * p.H + h) * D, q_stride,
                                      p.T - t0);
    for (int j = first_tile; j < end_tile; ++j) {
      const int c0 = j * kKeys;
      const size_t key_offset = static_cast<size_t>(c0) * kv_stride + static_cast<size_t>(kv) * D;
      __syncthreads();  // Q is in; every thread is done with the previous V and P
      load_tile_f32<kKeys, D, kThreads>(kv_s, k + key_offset, kv_stride, p.S - c0);
      __syncthreads();

      float s[4][4];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int jj = 0; jj < 4; ++jj) s[i][jj] = 0;
#pragma unroll 8
      for (int d = 0; d < D; ++d) {
        float qd[4], kd[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) qd[i] = q_s[(ty + 16 * i) * kStride + d];
#pragma unroll
        for (int jj = 0; jj < 4; ++jj) kd[jj] = kv_s[(tx + 16 * jj) * kStride + d];
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
          for (int jj = 0; jj < 4; ++jj) s[i][jj] = fmaf(qd[i], kd[jj], s[i][jj]);
      }

      const bool masked = !range.unmasked(c0, c0 + kKeys);
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        float top = m[i];
#pragma unroll
        for (int jj = 0; jj < 4; ++jj) {
          const int key = c0 + tx + 16 * jj;
          float x = s[i][jj] * p.scale_log2;
          if (masked && !(key >= lo[i] && key < hi[i])) x = -INFINITY;
          s[i][jj] = x;
          top = fmaxf(top, x);
        }
        for (int offset = 1; offset < 16; offset *= 2)
          top = fmaxf(top, __shfl_xor_sync(0xffffffffu, top, offset));
        const float base = top == -INFINITY ? 0.0f : top;  // no NaN from -inf - -inf
        const float alpha = exp2f(m[i] - base);
        m[i] = top;
        l[i] *= alpha;
#pragma unroll
        for (int cc = 0; cc < kCols; ++cc) acc[i][cc] *= alpha;
#pragma unroll
        for (int jj = 0; jj < 4; ++jj) {
          const float prob = exp2f(s[i][jj] - base);
          l[i] += prob;
          p_s[(ty + 16 * i) * kPStride + tx + 16 * jj] = prob;
        }
      }
      __syncthreads();  // P is complete; every thread is done reading K
      load_tile_f32<kKeys, D, kThreads>(kv_s, v + key_offset, kv_stride, p.S - c0);
      __syncthreads();

#pragma unroll 4
      for (int key = 0; key < kKeys; ++key) {
        float pk[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) pk[i] = p_s[(ty + 16 * i) * kPStride + key];
#pragma unroll
        for (int cc = 0; cc < kCols; ++cc) {
          const float vd = kv_s[key * kStride + tx + 16 * cc];
#pragma unroll
          for (int i = 0; i < 4; ++i) acc[i][cc] = fmaf(pk[i], vd, acc[i][cc]);
        }
      }
    }
  }

#pragma unroll
  for (int i = 0; i < 4; ++i) {
    for (int offset = 1; offset < 16; offset *= 2)
      l[i] += __shfl_xor_sync(0xffffffffu, l[i], offset);
    const int64_t t = t0 + ty + 16 * i;
    if (t >= p.T) continue;
    const bool seen = l[i] > 0;
    const float inverse = seen ? 1.0f / l[i] : 0.0f;
    float* out = p.o + q_row(p, t, h);
#pragma unroll
    for (int cc = 0; cc < kCols; ++cc) out[tx + 16 * cc] = acc[i][cc] * inverse;
    if (tx == 0)
      p.lse[static_cast<size_t>(t) * p.H + h] = seen ? m[i] * kLn2 + logf(l[i]) : -INFINITY;
  }
}

// ---------------------------------------------------------------------------
// Any D, any alignment: one warp per (query row, head), one key at a time;
// lane d-strided dot products, the output row accumulated in place.

__device__ inline float load_value(const float* p, size_t i) {
  return p[i];
}
__device__ inline float load_value(const uint16_t* p, size_t i) {
  return __uint_as_float(static_cast<uint32_t>(p[i]) << 16);
}

template <class In>
__global__ void generic_kernel(ForwardParams p) {
  const int64_t task = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (task >= static_cast<int64_t>(p.T) * p.H) return;  // whole warps leave together
  const int64_t t = task / p.H;
  const int h = static_cast<int>(task % p.H);
  const int kv = h / p.group;
  const In* q = static_cast<const In*>(p.q) + q_row(p, t, h);
  float* out = p.o + q_row(p, t, h);
  for (int d = lane; d < p.D; d += 32) out[d] = 0;

  int lo, hi;
  detail::visible_keys(p.mask, t, p.S, lo, hi);
  float m = -INFINITY, l = 0;
  for (int j = lo; j < hi; ++j) {
    const In* key = static_cast<const In*>(p.k) + kv_row(p, j, kv);
    const In* value = static_cast<const In*>(p.v) + kv_row(p, j, kv);
    float dot = 0;
    for (int d = lane; d < p.D; d += 32) dot = fmaf(load_value(q, d), load_value(key, d), dot);
    const float x = detail::warp_sum(dot) * p.scale_log2;
    const float top = fmaxf(m, x);
    const float alpha = exp2f(m - top);  // 0 for the first key (m = -inf)
    const float prob = exp2f(x - top);
    l = l * alpha + prob;
    for (int d = lane; d < p.D; d += 32) out[d] = fmaf(out[d], alpha, prob * load_value(value, d));
    m = top;
  }
  const bool seen = l > 0;
  const float inverse = seen ? 1.0f / l : 0.0f;
  for (int d = lane; d < p.D; d += 32) out[d] *= inverse;
  if (lane == 0) p.lse[static_cast<size_t>(t) * p.H + h] = seen ? m * kLn2 + logf(l) : -INFINITY;
}

// ---------------------------------------------------------------------------

template <class Kernel>
void launch_tiles(Kernel kernel, int rows_per_block, int threads, size_t shared_bytes,
                  const ForwardParams& p, cudaStream_t stream) {
  detail::allow_shared_memory(kernel, shared_bytes);
  const dim3 grid((p.T + rows_per_block - 1) / rows_per_block, p.H);
  kernel<<<grid, threads, shared_bytes, stream>>>(p);
  PARALAB_CUDA_CHECK_LAUNCH();
}

template <class In>
void launch_generic(const ForwardParams& p, cudaStream_t stream) {
  constexpr int kThreads = 128;
  const int64_t warps = static_cast<int64_t>(p.T) * p.H;
  const int64_t blocks = (warps * 32 + kThreads - 1) / kThreads;
  generic_kernel<In><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(p);
  PARALAB_CUDA_CHECK_LAUNCH();
}

// In is float or uint16_t (BF16 bits).
template <class In>
void forward(const AttentionArgs& args, const In* q, const In* k, const In* v, float* o, float* lse,
             void* stream_handle) {
  validate(args);
  const AttentionShape& s = args.shape;
  if (s.T == 0) return;
  const cudaStream_t stream = detail::to_stream(stream_handle);
  const detail::StreamArray<int64_t> doc_starts(args.mask.doc_starts, stream);

  ForwardParams p{};
  p.q = q;
  p.k = k;
  p.v = v;
  p.o = o;
  p.lse = lse;
  p.T = s.T;
  p.S = s.S;
  p.H = s.H;
  p.H_kv = s.H_kv;
  p.D = s.D;
  p.group = s.H / s.H_kv;
  p.scale_log2 = softmax_scale(args) * kLog2e;
  p.mask = detail::make_mask(args.mask, doc_starts.get());

  constexpr bool kBf16 = std::is_same_v<In, uint16_t>;
  // The tensor-core kernel moves 16-byte chunks (cp.async) and stores float2.
  const bool aligned = !kBf16 || (detail::aligned_to(q, 16) && detail::aligned_to(k, 16) &&
                                  detail::aligned_to(v, 16) && detail::aligned_to(o, 8));
  if (aligned && s.D == 64) {
    if constexpr (kBf16)
      launch_tiles(bf16_tile_kernel<64>, Bf16Tile<64>::kRows, Bf16Tile<64>::kThreads,
                   Bf16Tile<64>::kSharedBytes, p, stream);
    else
      launch_tiles(f32_tile_kernel<64>, F32Tile<64>::kRows, F32Tile<64>::kThreads,
                   F32Tile<64>::kSharedBytes, p, stream);
  } else if (aligned && s.D == 128) {
    if constexpr (kBf16)
      launch_tiles(bf16_tile_kernel<128>, Bf16Tile<128>::kRows, Bf16Tile<128>::kThreads,
                   Bf16Tile<128>::kSharedBytes, p, stream);
    else
      launch_tiles(f32_tile_kernel<128>, F32Tile<128>::kRows, F32Tile<128>::kThreads,
                   F32Tile<128>::kSharedBytes, p, stream);
  } else {
    launch_generic<In>(p, stream);
  }
}

}  // namespace

void attention_forward(const AttentionArgs& args, const float* q, const float* k, const float* v,
                       float* o, float* lse, void* stream) {
  forward(args, q, k, v, o, lse, stream);
}

void attention_forward(const AttentionArgs& args, const bf16* q, const bf16* k, const bf16* v,
                       float* o, float* lse, void* stream) {
  static_assert(sizeof(bf16) == sizeof(uint16_t), "bf16 is its 16 bits");
  forward(args, reinterpret_cast<const uint16_t*>(q), reinterpret_cast<const uint16_t*>(k),
          reinterpret_cast<const uint16_t*>(v), o, lse, stream);
}

}  // namespace paralab::kernels::cuda
