// bf16_reference_shim.cpp: the two cpu::convert overloads the bf16 codec
// calls, forwarded to the scalar reference:: versions, for the clang build of
// fuzz_decompress only, which then needs none of the BF16 conversion paths
// (bf16.cpp and its Highway and AVX-512 files). Both produce the same bits
// (tests/kernels/test_bf16.cpp), so the decoder under test is the same.
#include "kernels/bf16.hpp"

namespace paralab::kernels::cpu {

void convert(const float* in, bf16* out, size_t n, Rounding rounding, uint64_t seed,
             uint64_t first) {
  reference::convert(in, out, n, rounding, seed, first);
}

void convert(const bf16* in, float* out, size_t n) {
  reference::convert(in, out, n);
}

}  // namespace paralab::kernels::cpu
