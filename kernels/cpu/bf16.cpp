// The CPU BF16 conversions and the Kahan-compensated BF16 update: AVX-512
// (with AVX512-BF16's vcvtneps2bf16 for round to nearest even) when the CPU
// has it, chosen at run time, and a portable loop otherwise. Every path is
// bit-identical to kernels/reference/bf16.cpp; large arrays are split over
// the OpenMP threads in chunks whose element indices stay global, so
// stochastic rounding gives the same bits for any thread count.

#include <omp.h>
#include "kernels/cpu/x86_intrinsics.hpp"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdint>
#include <cstring>

#include "kernels/bf16.hpp"
#include "kernels/cpu/isa.hpp"

namespace paralab::kernels::cpu {

namespace {

// Below this many elements per thread, starting a parallel region costs more
// than it saves (a chunk of 64k elements takes tens of microseconds).
constexpr size_t kMinChunk = size_t{1} << 16;

// Calls body(begin, end) over [0, n) in chunks that the OpenMP threads take
// dynamically, about 8 per thread, so that a thread slowed down (by another
// process on its core, say) does not hold the others up. Chunk boundaries are
// multiples of 64 elements, so only the last chunk has a partial vector.
template <class Body>
void parallel_chunks(size_t n, Body&& body) {
  const size_t max_threads = static_cast<size_t>(std::max(1, omp_get_max_threads()));
  const size_t threads = std::min(max_threads, n / kMinChunk);
  if (threads <= 1) {
    body(size_t{0}, n);
    return;
  }
  const size_t chunk = std::max(kMinChunk, (n / (8 * threads) + 63) & ~size_t{63});
  const size_t chunks = (n + chunk - 1) / chunk;
  const int team = static_cast<int>(threads);
#pragma omp parallel for num_threads(team) schedule(dynamic, 1)
  for (size_t t = 0; t < chunks; ++t) body(t * chunk, std::min(n, (t + 1) * chunk));
}

uint32_t bits_of(float x) {
  return std::bit_cast<uint32_t>(x);
}

// --- portable paths: plain loops over the scalar definitions ----------------

uint16_t truncate_bits(uint32_t bits) {
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  return static_cast<uint16_t>(bits >> 16);
}

void convert_portable(const float* in, bf16* out, size_t n, Rounding rounding, uint64_t seed,
                      uint64_t first) {
  switch (rounding) {
    case Rounding::nearest_even:
      for (size_t i = 0; i < n; ++i) out[i] = float_to_bf16_rne(in[i]);
      break;
    case Rounding::truncate:
      for (size_t i = 0; i < n; ++i) out[i].bits = truncate_bits(bits_of(in[i]));
      break;
    case Rounding::stochastic:
      for (size_t i = 0; i < n; ++i)
        out[i].bits = float_to_bf16_bits_sr(bits_of(in[i]), stochastic_bits(seed, first + i));
      break;
  }
}

void widen_portable(const bf16* in, float* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = bf16_to_float(in[i]);
}

void kahan_portable(bf16* w, bf16* c, const float* u, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const float weight = bf16_to_float(w[i]);
    const float y = u[i] - bf16_to_float(c[i]);
    const bf16 t = float_to_bf16_rne(weight + y);
    c[i] = float_to_bf16_rne((bf16_to_float(t) - weight) - y);
    w[i] = t;
  }
}

// --- AVX-512 paths: 16 elements a step ---------------------------------------
//
// Each kernel is a step functor over 16 elements [i, i + 16) under a lane mask;
// for_each_vector() drives it. Arrays larger than the caches are written with
// non-temporal stores: a regular store first reads the line it writes (read
// for ownership), which for FP32 -> BF16 adds a third to the traffic.

#define PARALAB_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

// Arrays from this many elements up are streamed (16 MiB or more of output,
// beside at least 32 MiB of input: past the last-level cache of most CPUs).
constexpr size_t kStreamMin = size_t{8} << 20;

PARALAB_AVX512 __mmask16 tail_mask(size_t left) {
  return left >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << left) - 1);
}

// Loads and stores of 16 elements. Masked forms only for partial vectors:
// masked stores are slow on some CPUs (several cycles each on AMD Zen 4/5).
// A streaming store needs an aligned address, which for_each_vector gives.
PARALAB_AVX512 __m512i load_f32(const float* p, __mmask16 mask) {
  return mask == 0xffff ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi32(mask, p);
}
PARALAB_AVX512 __m256i load_bf16(const bf16* p, __mmask16 mask) {
  return mask == 0xffff ? _mm256_loadu_si256((const __m256i*)p) : _mm256_maskz_loadu_epi16(mask, p);
}
PARALAB_AVX512 void store_f32(float* p, __m512 v, __mmask16 mask, bool stream) {
  if (mask != 0xffff) return _mm512_mask_storeu_ps(p, mask, v);
  if (stream) return _mm512_stream_ps(p, v);
  _mm512_storeu_ps(p, v);
}
PARALAB_AVX512 void store_bf16(bf16* p, __m256i v, __mmask16 mask, bool stream) {
  if (mask != 0xffff) return _mm256_mask_storeu_epi16(p, mask, v);
  if (stream) return _mm256_stream_si256((__m256i*)p, v);
  _mm256_storeu_si256((__m256i*)p, v);
}

// Elements before `out` reaches a multiple of `alignment` bytes.
template <class T>
size_t elements_to_alignment(const T* out, size_t alignment) {
  const size_t misalignment = reinterpret_cast<uintptr_t>(out) % alignment;
  return misalignment == 0 ? 0 : (alignment - misalignment) / sizeof(T);
}

// Calls step(i, mask) over [0, n), 16 elements a step. A first, partial step
// of `head` elements (< 16) aligns the following full steps' stores.
template <class Step>
PARALAB_AVX512 void for_each_vector(size_t n, size_t head, const Step& step) {
  size_t i = 0;
  if (head > 0 && head < n) {
    step(0, tail_mask(head));
    i = head;
  }
  for (; i + 16 <= n; i += 16) step(i, __mmask16(0xffff));
  if (i < n) step(i, tail_mask(n - i));
  if (step.stream) _mm_sfence();  // order the streamed stores before what follows
}

// Runs a step functor writing `out` with 16-element stores of `vector_bytes`.
template <class Step, class T>
PARALAB_AVX512 void run_steps(const Step& step, size_t n, const T* out, size_t vector_bytes) {
  for_each_vector(n, step.stream ? elements_to_alignment(out, vector_bytes) : 0, step);
}

// NaN lanes as the reference makes them: the top half, quietened.
PARALAB_AVX512 __m512i truncate_with_nan(__m512i bits) {
  const __m512i magnitude = _mm512_and_si512(bits, _mm512_set1_epi32(0x7fffffff));
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(magnitude, _mm512_set1_epi32(0x7f800000));
  const __m512i top = _mm512_srli_epi32(bits, 16);
  return _mm512_mask_or_epi32(top, nan, top, _mm512_set1_epi32(0x40));
}

// Round to nearest even with vcvtneps2bf16. The instruction treats subnormal
// inputs as zero (DAZ), unlike the reference, so lanes holding a subnormal are
// redone with the integer rounding (bits + 0x7fff + lsb) >> 16. NaN lanes are
// redone too: the SDM's pseudo-code quietens NaN exactly as the reference does,
// but the check costs one compare and keeps us independent of the vendor.
PARALAB_AVX512 __m256i round_nearest_even(__m512 x) {
  const __m256i fast = (__m256i)_mm512_cvtneps_pbh(x);
  const __m512i bits = _mm512_castps_si512(x);
  const __m512i magnitude = _mm512_and_si512(bits, _mm512_set1_epi32(0x7fffffff));
  const __mmask16 subnormal = _mm512_cmplt_epu32_mask(
      _mm512_sub_epi32(magnitude, _mm512_set1_epi32(1)), _mm512_set1_epi32(0x007fffff));
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(magnitude, _mm512_set1_epi32(0x7f800000));
  const __mmask16 redo = subnormal | nan;
  if (redo == 0) return fast;  // the common case: one instruction per 16 values
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  const __m512i bias = _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb);
  __m512i slow = _mm512_srli_epi32(_mm512_add_epi32(bits, bias), 16);
  slow = _mm512_mask_blend_epi32(nan, slow, truncate_with_nan(bits));
  return _mm256_mask_blend_epi16(redo, fast, _mm512_cvtepi32_epi16(slow));
}

struct NearestEven {
  const float* in;
  bf16* out;
  bool stream;
  PARALAB_AVX512 void operator()(size_t i, __mmask16 mask) const {
    const __m256i r = round_nearest_even(_mm512_castsi512_ps(load_f32(in + i, mask)));
    store_bf16(out + i, r, mask, stream);
  }
};

struct Truncate {
  const float* in;
  bf16* out;
  bool stream;
  PARALAB_AVX512 void operator()(size_t i, __mmask16 mask) const {
    const __m256i r = _mm512_cvtepi32_epi16(truncate_with_nan(load_f32(in + i, mask)));
    store_bf16(out + i, r, mask, stream);
  }
};

// SplitMix64's finaliser over 8 indices in 64-bit lanes (vpmullq is AVX512DQ);
// returns z ^ (z >> 31) whose top 32 bits are stochastic_bits().
PARALAB_AVX512 __m512i splitmix_lanes(__m512i z) {
  z = _mm512_xor_si512(z, _mm512_srli_epi64(z, 30));
  z = _mm512_mullo_epi64(z, _mm512_set1_epi64(static_cast<long long>(0xbf58476d1ce4e5b9ull)));
  z = _mm512_xor_si512(z, _mm512_srli_epi64(z, 27));
  z = _mm512_mullo_epi64(z, _mm512_set1_epi64(static_cast<long long>(0x94d049bb133111ebull)));
  return _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
}

// float_to_bf16_bits_sr on 16 lanes: add the low 16 bits of
// stochastic_bits(seed, first + i + lane) and truncate; lanes with an all-ones
// exponent (inf, NaN) take the plain truncation, which quietens NaN, as in
// the scalar definition.
struct Stochastic {
  static constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ull;
  const float* in;
  bf16* out;
  bool stream;
  uint64_t seed, first;
  __m512i golden_lanes;  // kGolden * (0, 1, .., 7), wrapping

  Stochastic(const float* in_, bf16* out_, bool stream_, uint64_t seed_, uint64_t first_)
      : in(in_), out(out_), stream(stream_), seed(seed_), first(first_) {
    alignas(64) uint64_t lanes[8];
    for (int l = 0; l < 8; ++l) lanes[l] = kGolden * l;
    std::memcpy(&golden_lanes, lanes, sizeof lanes);
  }

  // stochastic_bits for indices first + i .. first + i + 15, in 32-bit lanes:
  // z = seed + golden * (index + 1), two halves of 8 64-bit lanes.
  PARALAB_AVX512 __m512i random_bits(size_t i) const {
    const uint64_t z0 = seed + kGolden * (first + i + 1);
    const __m512i low = splitmix_lanes(_mm512_add_epi64(_mm512_set1_epi64(z0), golden_lanes));
    const __m512i high =
        splitmix_lanes(_mm512_add_epi64(_mm512_set1_epi64(z0 + 8 * kGolden), golden_lanes));
    // stochastic_bits is the high word: the odd 32-bit halves of low, then of high.
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    return _mm512_permutex2var_epi32(low, odd, high);
  }

  PARALAB_AVX512 void operator()(size_t i, __mmask16 mask) const {
    const __m512i bits = load_f32(in + i, mask);
    const __m512i random = _mm512_and_si512(random_bits(i), _mm512_set1_epi32(0xffff));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(bits, random), 16);
    const __m512i exponent = _mm512_set1_epi32(0x7f800000);
    const __mmask16 special = _mm512_cmpeq_epi32_mask(_mm512_and_si512(bits, exponent), exponent);
    r = _mm512_mask_blend_epi32(special, r, truncate_with_nan(bits));
    store_bf16(out + i, _mm512_cvtepi32_epi16(r), mask, stream);
  }
};

PARALAB_AVX512 __m512 widen(__m256i halves) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(halves), 16));
}

struct Widen {
  const bf16* in;
  float* out;
  bool stream;
  PARALAB_AVX512 void operator()(size_t i, __mmask16 mask) const {
    store_f32(out + i, widen(load_bf16(in + i, mask)), mask, stream);
  }
};

// The reference's arithmetic lane by lane: each FP32 operation is the same
// IEEE operation (no contraction is possible: there is no multiply). Never
// streamed: w and c are read first, so their lines are in cache anyway.
struct Kahan {
  bf16* w;
  bf16* c;
  const float* u;
  static constexpr bool stream = false;
  PARALAB_AVX512 void operator()(size_t i, __mmask16 mask) const {
    const __m512 weight = widen(load_bf16(w + i, mask));
    const __m512 compensation = widen(load_bf16(c + i, mask));
    const __m512 y = _mm512_sub_ps(_mm512_castsi512_ps(load_f32(u + i, mask)), compensation);
    const __m256i t = round_nearest_even(_mm512_add_ps(weight, y));
    const __m512 lost = _mm512_sub_ps(_mm512_sub_ps(widen(t), weight), y);
    store_bf16(c + i, round_nearest_even(lost), mask, false);
    store_bf16(w + i, t, mask, false);
  }
};

PARALAB_AVX512 void convert_avx512(const float* in, bf16* out, size_t n, Rounding rounding,
                                   uint64_t seed, uint64_t first, bool stream) {
  switch (rounding) {
    case Rounding::nearest_even:
      return run_steps(NearestEven{in, out, stream}, n, out, 32);
    case Rounding::truncate:
      return run_steps(Truncate{in, out, stream}, n, out, 32);
    case Rounding::stochastic:
      return run_steps(Stochastic(in, out, stream, seed, first), n, out, 32);
  }
}

PARALAB_AVX512 void widen_avx512(const bf16* in, float* out, size_t n, bool stream) {
  run_steps(Widen{in, out, stream}, n, out, 64);
}

PARALAB_AVX512 void kahan_avx512(bf16* w, bf16* c, const float* u, size_t n) {
  for_each_vector(n, 0, Kahan{w, c, u});
}

#undef PARALAB_AVX512

}  // namespace

void convert(const float* in, bf16* out, size_t n, Rounding rounding, uint64_t seed,
             uint64_t first) {
  const bool simd = isa_enabled(Isa::avx512_bf16);
  const bool stream = n >= kStreamMin;
  parallel_chunks(n, [&](size_t begin, size_t end) {
    const size_t count = end - begin;
    if (simd)
      return convert_avx512(in + begin, out + begin, count, rounding, seed, first + begin, stream);
    convert_portable(in + begin, out + begin, count, rounding, seed, first + begin);
  });
}

void convert(const bf16* in, float* out, size_t n) {
  const bool simd = isa_enabled(Isa::avx512_bf16);
  const bool stream = n >= kStreamMin;
  parallel_chunks(n, [&](size_t begin, size_t end) {
    if (simd) return widen_avx512(in + begin, out + begin, end - begin, stream);
    widen_portable(in + begin, out + begin, end - begin);
  });
}

void kahan_add(bf16* w, bf16* c, const float* u, size_t n) {
  const bool simd = isa_enabled(Isa::avx512_bf16);
  parallel_chunks(n, [&](size_t begin, size_t end) {
    if (simd) return kahan_avx512(w + begin, c + begin, u + begin, end - begin);
    kahan_portable(w + begin, c + begin, u + begin, end - begin);
  });
}

}  // namespace paralab::kernels::cpu
