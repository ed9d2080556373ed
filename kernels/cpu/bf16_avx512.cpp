// bf16_avx512.cpp: the hand-written AVX-512 paths of the BF16 conversions (bf16_paths.hpp),
// with AVX512-BF16's vcvtneps2bf16 for round to nearest even: the avx512_bf16 tier, where they
// were measured (docs/kernels.md). Every other tier runs bf16_simd.cpp.
#if defined(__x86_64__)

#include "kernels/cpu/x86_intrinsics.hpp"

#include <cstdint>
#include <cstring>

#include "kernels/cpu/bf16_paths.hpp"

namespace paralab::kernels::cpu::bf16_paths {

namespace {

// --- AVX-512 paths: 16 elements a step ---------------------------------------
//
// Each kernel is a step functor over 16 elements [i, i + 16) under a lane mask;
// for_each_vector() drives it. Arrays larger than the caches are written with
// non-temporal stores: a regular store first reads the line it writes (read
// for ownership), which for FP32 -> BF16 adds a third to the traffic.

#define PARALAB_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

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

}  // namespace

PARALAB_AVX512 void avx512_convert(const float* in, bf16* out, size_t n, Rounding rounding,
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

PARALAB_AVX512 void avx512_widen(const bf16* in, float* out, size_t n, bool stream) {
  run_steps(Widen{in, out, stream}, n, out, 64);
}

PARALAB_AVX512 void avx512_kahan(bf16* w, bf16* c, const float* u, size_t n) {
  for_each_vector(n, 0, Kahan{w, c, u});
}

#undef PARALAB_AVX512

}  // namespace paralab::kernels::cpu::bf16_paths

#endif  // __x86_64__
