// isa.hpp: the CPU instruction-set tiers the kernels are compiled for, which one runs, and the
// hook that forces a lower one (tests run every kernel on every tier this CPU has; benchmarks
// measure a lower tier on a bigger CPU).
//
// Every CPU kernel is written once over Google Highway and compiled for each tier; the best
// tier the CPU supports is chosen at run time, so one binary runs on any x86-64 or aarch64
// CPU. A few hand-written AVX-512 kernels (measured faster on their tier, docs/kernels.md)
// stand in for the portable code on the avx512 and avx512_bf16 tiers.
//
//   x86-64:   scalar (the SSE2 baseline) < sse4 (SSSE3/SSE4.2) < avx2 (AVX2 + FMA + F16C)
//             < avx512 (F, BW, DQ, VL) < avx512_bf16 (+ AVX512-BF16)
//   aarch64:  neon (the baseline) < sve < sve2
//
// The tier in force: the best this CPU has, lowered by PARALAB_ISA=<tier> in the environment
// (read once, at the first kernel call) or by force_isa().
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace paralab::kernels::cpu {

enum class Isa { scalar, sse4, avx2, avx512, avx512_bf16, neon, sve, sve2 };

// "scalar", "sse4", "avx2", "avx512", "avx512_bf16", "neon", "sve", "sve2".
const char* isa_name(Isa isa);
std::optional<Isa> isa_from_name(std::string_view name);

// Every tier this CPU can run, lowest first (starts with the architecture's baseline: scalar
// on x86-64, neon on aarch64).
const std::vector<Isa>& available_isas();
// The best of them.
Isa best_isa();
// The tier the kernels use now.
Isa active_isa();
// Whether the tier in force includes `tier` (same architecture, at least as high).
bool isa_enabled(Isa tier);

// Runs the kernels on `tier` (one of available_isas()), or again on the best tier for
// std::nullopt. Throws std::invalid_argument for a tier this CPU cannot run. Not for use
// while kernels run on other threads.
void force_isa(std::optional<Isa> tier);

// The tier PARALAB_ISA names: std::nullopt when unset; throws std::invalid_argument with a
// message listing the available tiers when it names an unknown or unavailable one. Apps call
// this at start-up so that a bad value is a usage error, not a failure in the first kernel.
std::optional<Isa> isa_from_environment();

// The Highway target the Highway kernels dispatch to now ("AVX2", "SSE4", "NEON", "SVE2_128",
// "SCALAR", ...).
const char* highway_target();

// "avx2 (of scalar, sse4, avx2)": the active tier and what the CPU offers, for headers and
// result files.
std::string isa_description();

// The tier force_isa() set, if any.
std::optional<Isa> forced_isa();

// Forces a tier for a scope (tests, benchmarks), then restores what was forced before.
class ScopedIsa {
 public:
  explicit ScopedIsa(Isa tier) : previous_(forced_isa()) { force_isa(tier); }
  ~ScopedIsa() { force_isa(previous_); }
  ScopedIsa(const ScopedIsa&) = delete;
  ScopedIsa& operator=(const ScopedIsa&) = delete;

 private:
  std::optional<Isa> previous_;
};

}  // namespace paralab::kernels::cpu
