// attention_backward.cu: the CUDA attention backward (FP32), recomputing P
// from Q, K and the forward's LSE as the reference does:
//   delta_i = rowsum(dO_i * O_i)
//   P = exp(scale q.k - LSE), dP = dO V^T, dS = P * (dP - delta)
//   dQ = scale dS K, dK = scale dS^T Q, dV = P^T dO   (dK, dV summed over a group)
// Kernels:
//   delta_kernel          one warp per (row, head)
//   key_tile_kernel<D>    D = 64 or 128: one block per (64-key tile, kv head)
//                         keeps its dK, dV in registers over every query tile
//                         of every head of its group that sees it (no atomics
//                         for dK, dV); dQ gets each block's part by atomicAdd
//   generic_dkdv_kernel,  any D: one warp per key (dK, dV) and one warp per
//   generic_dq_kernel     query row (dQ), each owning its output row
// Rows whose LSE is -inf saw no key and get no gradient.
#include <cmath>

#include "kernels/attention.hpp"
#include "kernels/cuda/common.cuh"

namespace paralab::kernels::cuda {

namespace {

using detail::load_tile_f32;
using detail::MaskParams;

struct BackwardParams {
  const float* q;
  const float* k;
  const float* v;
  const float* o;
  const float* lse;
  const float* d_o;
  const float* delta;  // [T, H] from delta_kernel
  float* dq;
  float* dk;
  float* dv;
  int T, S, H, H_kv, D;
  int group;  // H / H_kv
  float scale;
  MaskParams mask;
};

__device__ inline size_t q_row(const BackwardParams& p, int64_t t, int h) {
  return (static_cast<size_t>(t) * p.H + h) * p.D;
}
__device__ inline size_t kv_row(const BackwardParams& p, int64_t s, int kv) {
  return (static_cast<size_t>(s) * p.H_kv + kv) * p.D;
}

__global__ void delta_kernel(const float* o, const float* d_o, float* delta, int64_t rows, int D) {
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  float sum = 0;
  for (int d = lane; d < D; d += 32) sum = fmaf(o[row * D + d], d_o[row * D + d], sum);
  sum = detail::warp_sum(sum);
  if (lane == 0) delta[row] = sum;
}

// ---------------------------------------------------------------------------
// The tiled kernel: 256 threads as a 16 x 16 grid (ty, tx). In the score
// phase thread (ty, tx) owns keys ty + 16a and queries tx + 16b; in the
// accumulation phases it owns keys (for dK, dV) or queries (for dQ) ty + 16a
// and dimensions tx + 16c. Shared rows of odd stride keep reads conflict-free.

template <int D>
struct KeyTile {
  static constexpr int kThreads = 256;
  static constexpr int kKeys = 64;
  static constexpr int kRows = 64;  // query rows per step
  static constexpr int kStride = D + 1;
  static constexpr int kPStride = kRows + 1;
  // K, V, Q, dO tiles and P^T, dS^T (key-major).
  static constexpr size_t kSharedBytes =
      (size_t{2 * kKeys + 2 * kRows} * kStride + size_t{2 * kKeys} * kPStride) * sizeof(float);
};

template <int D>
__global__ void __launch_bounds__(KeyTile<D>::kThreads) key_tile_kernel(BackwardParams p) {
  using Tile = KeyTile<D>;
  constexpr int kKeys = Tile::kKeys, kRows = Tile::kRows, kStride = Tile::kStride;
  constexpr int kPStride = Tile::kPStride, kThreads = Tile::kThreads;
  constexpr int kCols = D / 16;

  extern __shared__ float shared_f32[];
  float* k_s = shared_f32;               // [kKeys][kStride]
  float* v_s = k_s + kKeys * kStride;    // [kKeys][kStride]
  float* q_s = v_s + kKeys * kStride;    // [kRows][kStride]
  float* do_s = q_s + kRows * kStride;   // [kRows][kStride]
  float* p_s = do_s + kRows * kStride;   // [kKeys][kPStride]
  float* ds_s = p_s + kKeys * kPStride;  // [kKeys][kPStride]
  __shared__ int row_lo[kRows], row_hi[kRows];
  __shared__ float row_lse[kRows], row_delta[kRows];

  const int k0 = blockIdx.x * kKeys;
  const int kv = blockIdx.y;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const size_t q_stride = static_cast<size_t>(p.H) * D, kv_stride = static_cast<size_t>(p.H_kv) * D;

  load_tile_f32<kKeys, D, kThreads>(k_s, p.k + kv_row(p, k0, kv), kv_stride, p.S - k0);
  load_tile_f32<kKeys, D, kThreads>(v_s, p.v + kv_row(p, k0, kv), kv_stride, p.S - k0);

  float dk[4][kCols], dv[4][kCols];
#pragma unroll
  for (int a = 0; a < 4; ++a)
#pragma unroll
    for (int cc = 0; cc < kCols; ++cc) dk[a][cc] = dv[a][cc] = 0;

  for (int h = kv * p.group; h < (kv + 1) * p.group; ++h) {
    for (int t0 = 0; t0 < p.T; t0 += kRows) {
      // Which rows of this query tile have a gradient and see one of our keys?
      bool sees = false;
      if (threadIdx.x < kRows) {
        const int t = t0 + threadIdx.x;
        int lo = 0, hi = 0;
        float l = -INFINITY, dl = 0;
        if (t < p.T) {
          l = p.lse[static_cast<size_t>(t) * p.H + h];
          dl = p.delta[static_cast<size_t>(t) * p.H + h];
          if (l != -INFINITY) detail::visible_keys(p.mask, t, p.S, lo, hi);
        }
        row_lo[threadIdx.x] = lo;
        row_hi[threadIdx.x] = hi;
        row_lse[threadIdx.x] = l;
        row_delta[threadIdx.x] = dl;
        sees = lo < hi && lo < k0 + kKeys && hi > k0;
      }
      // Also the barrier that ends the previous step's use of q_s, do_s, p_s, ds_s.
      if (!__syncthreads_or(sees)) continue;
      load_tile_f32<kRows, D, kThreads>(q_s, p.q + q_row(p, t0, h), q_stride, p.T - t0);
      load_tile_f32<kRows, D, kThreads>(do_s, p.d_o + q_row(p, t0, h), q_stride, p.T - t0);
      __syncthreads();
      // Which of this thread's dQ rows (ty + 16a) have keys, read now: the
      // row arrays may be rewritten for the next tile once the barrier
      // after the P phase has passed.
      bool dq_row[4];
#pragma unroll
      for (int a = 0; a < 4; ++a) dq_row[a] = row_lo[ty + 16 * a] < row_hi[ty + 16 * a];

      // S^T = K Q^T and dP^T = V dO^T for keys ty + 16a, queries tx + 16b.
      float s[4][4], dp[4][4];
#pragma unroll
      for (int a = 0; a < 4; ++a)
#pragma unroll
        for (int b = 0; b < 4; ++b) s[a][b] = dp[a][b] = 0;
#pragma unroll 4
      for (int d = 0; d < D; ++d) {
        float kd[4], vd[4], qd[4], od[4];
#pragma unroll
        for (int a = 0; a < 4; ++a) {
          kd[a] = k_s[(ty + 16 * a) * kStride + d];
          vd[a] = v_s[(ty + 16 * a) * kStride + d];
        }
#pragma unroll
        for (int b = 0; b < 4; ++b) {
          qd[b] = q_s[(tx + 16 * b) * kStride + d];
          od[b] = do_s[(tx + 16 * b) * kStride + d];
        }
#pragma unroll
        for (int a = 0; a < 4; ++a)
#pragma unroll
          for (int b = 0; b < 4; ++b) {
            s[a][b] = fmaf(kd[a], qd[b], s[a][b]);
            dp[a][b] = fmaf(vd[a], od[b], dp[a][b]);
          }
      }
#pragma unroll
      for (int a = 0; a < 4; ++a) {
        const int key = k0 + ty + 16 * a;
#pragma unroll
        for (int b = 0; b < 4; ++b) {
          const int row = tx + 16 * b;
          const bool visible = key >= row_lo[row] && key < row_hi[row];
          const float prob = visible ? expf(s[a][b] * p.scale - row_lse[row]) : 0.0f;
          p_s[(ty + 16 * a) * kPStride + row] = prob;
          ds_s[(ty + 16 * a) * kPStride + row] = prob * (dp[a][b] - row_delta[row]);
        }
      }
      __syncthreads();

      // dV += P^T dO and dK += dS^T Q for keys ty + 16a, dimensions tx + 16c.
#pragma unroll 2
      for (int row = 0; row < kRows; ++row) {
        float pa[4], da[4];
#pragma unroll
        for (int a = 0; a < 4; ++a) {
          pa[a] = p_s[(ty + 16 * a) * kPStride + row];
          da[a] = ds_s[(ty + 16 * a) * kPStride + row];
        }
#pragma unroll
        for (int cc = 0; cc < kCols; ++cc) {
          const float od = do_s[row * kStride + tx + 16 * cc];
          const float qd = q_s[row * kStride + tx + 16 * cc];
#pragma unroll
          for (int a = 0; a < 4; ++a) {
            dv[a][cc] = fmaf(pa[a], od, dv[a][cc]);
            dk[a][cc] = fmaf(da[a], qd, dk[a][cc]);
          }
        }
      }

      // This key tile's part of dQ for queries ty + 16a, dimensions tx + 16c.
      float dq[4][kCols];
#pragma unroll
      for (int a = 0; a < 4; ++a)
#pragma unroll
        for (int cc = 0; cc < kCols; ++cc) dq[a][cc] = 0;
#pragma unroll 2
      for (int key = 0; key < kKeys; ++key) {
        float da[4];
#pragma unroll
        for (int a = 0; a < 4; ++a) da[a] = ds_s[key * kPStride + ty + 16 * a];
#pragma unroll
        for (int cc = 0; cc < kCols; ++cc) {
          const float kd = k_s[key * kStride + tx + 16 * cc];
#pragma unroll
          for (int a = 0; a < 4; ++a) dq[a][cc] = fmaf(da[a], kd, dq[a][cc]);
        }
      }
#pragma unroll
      for (int a = 0; a < 4; ++a) {
        const int row = ty + 16 * a;
        if (!dq_row[a]) continue;  // also rows past T (empty intervals)
        float* out = p.dq + q_row(p, t0 + row, h);
#pragma unroll
        for (int cc = 0; cc < kCols; ++cc) atomicAdd(out + tx + 16 * cc, p.scale * dq[a][cc]);
      }
    }
  }

#pragma unroll
  for (int a = 0; a < 4; ++a) {
    const int key = k0 + ty + 16 * a;
    if (key >= p.S) continue;
#pragma unroll
    for (int cc = 0; cc < kCols; ++cc) {
      p.dk[kv_row(p, key, kv) + tx + 16 * cc] = p.scale * dk[a][cc];
      p.dv[kv_row(p, key, kv) + tx + 16 * cc] = dv[a][cc];
    }
  }
}

// ---------------------------------------------------------------------------
// Any D: a warp per output row, lanes over d, one (query, key) pair at a time.

// P and dS of query (t, h) and key (j, kv); every lane gets the same values.
__device__ inline void pair_gradients(const BackwardParams& p, int64_t t, int h, int64_t j, int kv,
                                      float lse, float delta, float& prob, float& ds) {
  const float* q = p.q + q_row(p, t, h);
  const float* d_o = p.d_o + q_row(p, t, h);
  const float* k = p.k + kv_row(p, j, kv);
  const float* v = p.v + kv_row(p, j, kv);
  float s = 0, dp = 0;
  for (int d = threadIdx.x % 32; d < p.D; d += 32) {
    s = fmaf(q[d], k[d], s);
    dp = fmaf(d_o[d], v[d], dp);
  }
  s = detail::warp_sum(s);
  dp = detail::warp_sum(dp);
  prob = expf(s * p.scale - lse);
  ds = prob * (dp - delta);
}

__global__ void generic_dkdv_kernel(BackwardParams p) {
  const int64_t task = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (task >= static_cast<int64_t>(p.S) * p.H_kv) return;
  const int64_t j = task / p.H_kv;
  const int kv = static_cast<int>(task % p.H_kv);
  float* dk = p.dk + kv_row(p, j, kv);
  float* dv = p.dv + kv_row(p, j, kv);
  for (int d = lane; d < p.D; d += 32) dk[d] = dv[d] = 0;
  for (int h = kv * p.group; h < (kv + 1) * p.group; ++h) {
    for (int64_t t = 0; t < p.T; ++t) {
      const float lse = p.lse[t * p.H + h];
      if (lse == -INFINITY) continue;
      int lo, hi;
      detail::visible_keys(p.mask, t, p.S, lo, hi);
      if (j < lo || j >= hi) continue;
      float prob, ds;
      pair_gradients(p, t, h, j, kv, lse, p.delta[t * p.H + h], prob, ds);
      const float* q = p.q + q_row(p, t, h);
      const float* d_o = p.d_o + q_row(p, t, h);
      for (int d = lane; d < p.D; d += 32) {
        dk[d] = fmaf(p.scale * ds, q[d], dk[d]);
        dv[d] = fmaf(prob, d_o[d], dv[d]);
      }
    }
  }
}

__global__ void generic_dq_kernel(BackwardParams p) {
  const int64_t task = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (task >= static_cast<int64_t>(p.T) * p.H) return;
  const int64_t t = task / p.H;
  const int h = static_cast<int>(task % p.H);
  const int kv = h / p.group;
  float* dq = p.dq + q_row(p, t, h);
  for (int d = lane; d < p.D; d += 32) dq[d] = 0;
  const float lse = p.lse[task];
  if (lse == -INFINITY) return;
  int lo, hi;
  detail::visible_keys(p.mask, t, p.S, lo, hi);
  const float delta = p.delta[task];
  for (int j = lo; j < hi; ++j) {
    float prob, ds;
    pair_gradients(p, t, h, j, kv, lse, delta, prob, ds);
    const float* k = p.k + kv_row(p, j, kv);
    for (int d = lane; d < p.D; d += 32) dq[d] = fmaf(p.scale * ds, k[d], dq[d]);
  }
}

// ---------------------------------------------------------------------------

unsigned warp_blocks(int64_t warps, int threads) {
  return static_cast<unsigned>((warps * 32 + threads - 1) / threads);
}

template <int D>
void launch_key_tiles(const BackwardParams& p, cudaStream_t stream) {
  using Tile = KeyTile<D>;
  detail::allow_shared_memory(key_tile_kernel<D>, Tile::kSharedBytes);
  const dim3 grid((p.S + Tile::kKeys - 1) / Tile::kKeys, p.H_kv);
  key_tile_kernel<D><<<grid, Tile::kThreads, Tile::kSharedBytes, stream>>>(p);
  PARALAB_CUDA_CHECK_LAUNCH();
}

}  // namespace

void attention_backward(const AttentionArgs& args, const float* q, const float* k, const float* v,
                        const float* o, const float* lse, const float* d_o, float* dq, float* dk,
                        float* dv, void* stream_handle) {
  validate(args);
  const AttentionShape& s = args.shape;
  const cudaStream_t stream = detail::to_stream(stream_handle);
  const size_t q_elements = static_cast<size_t>(s.T) * s.H * s.D;
  const size_t kv_elements = static_cast<size_t>(s.S) * s.H_kv * s.D;
  if (s.T == 0 || s.S == 0) {  // no pair at all: every gradient is zero
    if (q_elements > 0)
      PARALAB_CUDA_CHECK(cudaMemsetAsync(dq, 0, q_elements * sizeof(float), stream));
    if (kv_elements > 0) {
      PARALAB_CUDA_CHECK(cudaMemsetAsync(dk, 0, kv_elements * sizeof(float), stream));
      PARALAB_CUDA_CHECK(cudaMemsetAsync(dv, 0, kv_elements * sizeof(float), stream));
    }
    return;
  }

  const detail::StreamArray<int64_t> doc_starts(args.mask.doc_starts, stream);
  const int64_t rows = static_cast<int64_t>(s.T) * s.H;
  const detail::StreamArray<float> delta(static_cast<size_t>(rows), stream);

  BackwardParams p{};
  p.q = q;
  p.k = k;
  p.v = v;
  p.o = o;
  p.lse = lse;
  p.d_o = d_o;
  p.delta = delta.get();
  p.dq = dq;
  p.dk = dk;
  p.dv = dv;
  p.T = s.T;
  p.S = s.S;
  p.H = s.H;
  p.H_kv = s.H_kv;
  p.D = s.D;
  p.group = s.H / s.H_kv;
  p.scale = softmax_scale(args);
  p.mask = detail::make_mask(args.mask, doc_starts.get());

  constexpr int kThreads = 128;
  delta_kernel<<<warp_blocks(rows, kThreads), kThreads, 0, stream>>>(o, d_o, delta.get(), rows,
                                                                     s.D);
  PARALAB_CUDA_CHECK_LAUNCH();

  if (s.D == 64 || s.D == 128) {
    // dQ collects every key tile's part by atomicAdd.
    PARALAB_CUDA_CHECK(cudaMemsetAsync(dq, 0, q_elements * sizeof(float), stream));
    if (s.D == 64)
      launch_key_tiles<64>(p, stream);
    else
      launch_key_tiles<128>(p, stream);
  } else {
    generic_dkdv_kernel<<<warp_blocks(static_cast<int64_t>(s.S) * s.H_kv, kThreads), kThreads, 0,
                          stream>>>(p);
    PARALAB_CUDA_CHECK_LAUNCH();
    generic_dq_kernel<<<warp_blocks(rows, kThreads), kThreads, 0, stream>>>(p);
    PARALAB_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace paralab::kernels::cuda
