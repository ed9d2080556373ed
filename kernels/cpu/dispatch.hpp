// dispatch.hpp: which instruction sets the CPU kernels may use, decided at
// run time, so one binary runs everywhere and takes the fast path where the
// CPU has it.
#pragma once

namespace paralab::kernels::cpu::detail {

// AVX-512 F, BW, VL and DQ.
bool has_avx512();
// The above plus AVX512-BF16 (vdpbf16ps, vcvtneps2bf16).
bool has_avx512_bf16();
// Test hook: while forced, both report false, so tests can run the portable
// paths on a CPU that has the fast ones.
void force_portable(bool forced);

}  // namespace paralab::kernels::cpu::detail
