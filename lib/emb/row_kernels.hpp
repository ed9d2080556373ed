// row_kernels.hpp: the inner loops of an embedding bag on stored rows:
// out[0 .. dim) += decode(row), for every format of format.hpp.
//
// reference:: decodes the row into a buffer (dequantize_row) and adds it:
// plain code the tests trust. The fast version fuses decoding and the sum in
// one loop per format, written so that GCC and Clang vectorise it at -O2/-O3
// (no branches, no calls, contiguous loads; int4 unpacks a byte into its two
// nibbles; fp16 decodes branch-free). GCC 12 -O3 vectorises every format's
// loop (-fopt-info-vec, 16-byte vectors: the build's baseline x86-64 ISA).
// They are not Highway kernels compiled per instruction-set tier (no AVX2 /
// AVX-512 variants, no F16C): docs/emb_cache.md says what that leaves.
// Both give the same floats except where the compiler contracts
// q * scale + bias into an FMA (int8/int4), which the tests allow for.
#pragma once

#include <cstdint>

#include "emb/format.hpp"

namespace paralab::emb {

namespace reference {
void accumulate_row(Format f, const uint8_t* row, int dim, float* out);
}  // namespace reference

void accumulate_row(Format f, const uint8_t* row, int dim, float* out);

}  // namespace paralab::emb
