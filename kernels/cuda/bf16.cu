// bf16.cu: the CUDA BF16 conversions and the Kahan-compensated BF16 update,
// bit-identical to kernels/reference/bf16.cpp: every rounding is done with
// the same integer operations on the FP32 bits as core/bf16.hpp and
// kernels/bf16.hpp (NaN quietened by OR-ing 0x40 into the high half), and
// stochastic rounding draws stochastic_bits(seed, first + i) for element i,
// so any launch shape gives the same bits as the CPU.
// Grid-stride kernels move 4 elements per thread (16-byte FP32 and 8-byte
// BF16 accesses) when the pointers allow it, else one at a time.
#include <cstdint>

#include "kernels/bf16.hpp"
#include "kernels/cuda/common.cuh"

namespace paralab::kernels::cuda {

namespace {

constexpr unsigned kThreads = 256;

__device__ inline uint16_t quiet_nan_bits(uint32_t bits) {
  return static_cast<uint16_t>((bits >> 16) | 0x40u);
}
__device__ inline bool is_nan_bits(uint32_t bits) {
  return (bits & 0x7fffffffu) > 0x7f800000u;
}

// float_to_bf16_rne of core/bf16.hpp on the bits.
__device__ inline uint16_t round_nearest_even(uint32_t bits) {
  if (is_nan_bits(bits)) return quiet_nan_bits(bits);
  const uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

__device__ inline uint16_t round_truncate(uint32_t bits) {
  if (is_nan_bits(bits)) return quiet_nan_bits(bits);
  return static_cast<uint16_t>(bits >> 16);
}

__device__ inline float widen(uint16_t bits) {
  return __uint_as_float(static_cast<uint32_t>(bits) << 16);
}

template <Rounding kMode>
__device__ inline uint16_t round_one(float value, uint64_t seed, uint64_t index) {
  const uint32_t bits = __float_as_uint(value);
  if constexpr (kMode == Rounding::nearest_even) return round_nearest_even(bits);
  if constexpr (kMode == Rounding::truncate) return round_truncate(bits);
  if constexpr (kMode == Rounding::stochastic)
    return float_to_bf16_bits_sr(bits, stochastic_bits(seed, index));
  return 0;
}

// The reference's kahan_add for one element, in FP32 (no products, so no
// contraction to FMA can change a rounding).
__device__ inline void kahan_one(uint16_t& w, uint16_t& c, float u) {
  const float weight = widen(w);
  const float y = u - widen(c);
  const uint16_t t = round_nearest_even(__float_as_uint(weight + y));
  c = round_nearest_even(__float_as_uint((widen(t) - weight) - y));
  w = t;
}

__device__ inline size_t thread_index() {
  return static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ inline size_t thread_count() {
  return static_cast<size_t>(gridDim.x) * blockDim.x;
}

// `vector`: in is 16-byte and out 8-byte aligned; groups of 4, then the tail.
template <Rounding kMode>
__global__ void to_bf16_kernel(const float* in, uint16_t* out, size_t n, uint64_t seed,
                               uint64_t first, bool vector) {
  size_t done = 0;
  if (vector) {
    const size_t groups = n / 4;
    for (size_t g = thread_index(); g < groups; g += thread_count()) {
      const float4 x = reinterpret_cast<const float4*>(in)[g];
      const uint64_t i = first + 4 * g;
      ushort4 y;
      y.x = round_one<kMode>(x.x, seed, i);
      y.y = round_one<kMode>(x.y, seed, i + 1);
      y.z = round_one<kMode>(x.z, seed, i + 2);
      y.w = round_one<kMode>(x.w, seed, i + 3);
      reinterpret_cast<ushort4*>(out)[g] = y;
    }
    done = groups * 4;
  }
  for (size_t i = done + thread_index(); i < n; i += thread_count())
    out[i] = round_one<kMode>(in[i], seed, first + i);
}

__global__ void to_f32_kernel(const uint16_t* in, float* out, size_t n, bool vector) {
  size_t done = 0;
  if (vector) {
    const size_t groups = n / 4;
    for (size_t g = thread_index(); g < groups; g += thread_count()) {
      const ushort4 x = reinterpret_cast<const ushort4*>(in)[g];
      reinterpret_cast<float4*>(out)[g] =
          make_float4(widen(x.x), widen(x.y), widen(x.z), widen(x.w));
    }
    done = groups * 4;
  }
  for (size_t i = done + thread_index(); i < n; i += thread_count()) out[i] = widen(in[i]);
}

__global__ void kahan_kernel(uint16_t* w, uint16_t* c, const float* u, size_t n, bool vector) {
  size_t done = 0;
  if (vector) {
    const size_t groups = n / 4;
    for (size_t g = thread_index(); g < groups; g += thread_count()) {
      ushort4 wv = reinterpret_cast<ushort4*>(w)[g];
      ushort4 cv = reinterpret_cast<ushort4*>(c)[g];
      const float4 uv = reinterpret_cast<const float4*>(u)[g];
      kahan_one(wv.x, cv.x, uv.x);
      kahan_one(wv.y, cv.y, uv.y);
      kahan_one(wv.z, cv.z, uv.z);
      kahan_one(wv.w, cv.w, uv.w);
      reinterpret_cast<ushort4*>(w)[g] = wv;
      reinterpret_cast<ushort4*>(c)[g] = cv;
    }
    done = groups * 4;
  }
  for (size_t i = done + thread_index(); i < n; i += thread_count()) kahan_one(w[i], c[i], u[i]);
}

unsigned blocks_for(size_t n) {
  return detail::grid_blocks((n + 3) / 4, kThreads);
}

}  // namespace

void convert(const float* in, bf16* out, size_t n, Rounding rounding, uint64_t seed, uint64_t first,
             void* stream_handle) {
  if (n == 0) return;
  const cudaStream_t stream = detail::to_stream(stream_handle);
  uint16_t* bits = reinterpret_cast<uint16_t*>(out);
  const bool vector = detail::aligned_to(in, 16) && detail::aligned_to(out, 8);
  const unsigned blocks = blocks_for(n);
  switch (rounding) {
    case Rounding::nearest_even:
      to_bf16_kernel<Rounding::nearest_even>
          <<<blocks, kThreads, 0, stream>>>(in, bits, n, seed, first, vector);
      break;
    case Rounding::truncate:
      to_bf16_kernel<Rounding::truncate>
          <<<blocks, kThreads, 0, stream>>>(in, bits, n, seed, first, vector);
      break;
    case Rounding::stochastic:
      to_bf16_kernel<Rounding::stochastic>
          <<<blocks, kThreads, 0, stream>>>(in, bits, n, seed, first, vector);
      break;
  }
  PARALAB_CUDA_CHECK_LAUNCH();
}

void convert(const bf16* in, float* out, size_t n, void* stream_handle) {
  if (n == 0) return;
  const bool vector = detail::aligned_to(in, 8) && detail::aligned_to(out, 16);
  to_f32_kernel<<<blocks_for(n), kThreads, 0, detail::to_stream(stream_handle)>>>(
      reinterpret_cast<const uint16_t*>(in), out, n, vector);
  PARALAB_CUDA_CHECK_LAUNCH();
}

void kahan_add(bf16* w, bf16* c, const float* u, size_t n, void* stream_handle) {
  if (n == 0) return;
  const bool vector =
      detail::aligned_to(w, 8) && detail::aligned_to(c, 8) && detail::aligned_to(u, 16);
  kahan_kernel<<<blocks_for(n), kThreads, 0, detail::to_stream(stream_handle)>>>(
      reinterpret_cast<uint16_t*>(w), reinterpret_cast<uint16_t*>(c), u, n, vector);
  PARALAB_CUDA_CHECK_LAUNCH();
}

}  // namespace paralab::kernels::cuda
