// The tiers of isa.hpp, detected through Highway (which reads CPUID and XGETBV on x86-64 and
// the auxiliary vector on Linux/aarch64), and the mask that restricts Highway's dynamic
// dispatch to the tier in force.
#include "kernels/cpu/isa.hpp"

#include <hwy/targets.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <stdexcept>

namespace paralab::kernels::cpu {

namespace {

constexpr Isa kAllIsas[] = {Isa::scalar,      Isa::sse4, Isa::avx2, Isa::avx512,
                            Isa::avx512_bf16, Isa::neon, Isa::sve,  Isa::sve2};

// The Highway targets a tier may dispatch to: its own and every lower one.
int64_t highway_targets(Isa isa) {
  int64_t mask = HWY_SCALAR | HWY_EMU128;
#if HWY_ARCH_X86
  if (isa >= Isa::sse4 && isa <= Isa::avx512_bf16) mask |= HWY_SSSE3 | HWY_SSE4;
  if (isa >= Isa::avx2 && isa <= Isa::avx512_bf16) mask |= HWY_AVX2;
  if (isa == Isa::avx512 || isa == Isa::avx512_bf16) mask |= HWY_AVX3 | HWY_AVX3_DL;
#elif HWY_ARCH_ARM
  if (isa >= Isa::neon) mask |= HWY_NEON;
  if (isa >= Isa::sve) mask |= HWY_SVE | HWY_SVE_256;
  if (isa >= Isa::sve2) mask |= HWY_SVE2 | HWY_SVE2_128;
#endif
  return mask;
}

// Tiers of one architecture rise with the enum; scalar belongs to both.
bool same_family(Isa a, Isa b) {
  auto family = [](Isa isa) {
    if (isa == Isa::scalar) return 0;
    return isa <= Isa::avx512_bf16 ? 1 : 2;
  };
  return family(a) == 0 || family(b) == 0 || family(a) == family(b);
}

struct State {
  int64_t cpu_targets = 0;  // what Highway found, before any restriction
  std::vector<Isa> available;
  Isa from_environment = Isa::scalar;  // the default tier: the best, or PARALAB_ISA's
  std::optional<Isa> forced;
  Isa active = Isa::scalar;
  // A bad PARALAB_ISA: apps refuse it at start-up (isa_from_environment); a library user who
  // never asks is warned once, at the first kernel call.
  std::string environment_error;
  std::atomic<bool> error_told{false};

  State() {
    cpu_targets = hwy::SupportedTargets();
#if HWY_ARCH_X86
    available.push_back(Isa::scalar);  // x86-64's baseline (SSE2): Highway's SCALAR target
    if (cpu_targets & HWY_SSE4) available.push_back(Isa::sse4);
    if (cpu_targets & HWY_AVX2) available.push_back(Isa::avx2);
    if (cpu_targets & HWY_AVX3) {
      available.push_back(Isa::avx512);
      // AVX3 implies the OS saves the 512-bit state; BF16 is one more CPUID bit.
      if (__builtin_cpu_supports("avx512bf16")) available.push_back(Isa::avx512_bf16);
    }
#elif HWY_ARCH_ARM
    // NEON is aarch64's baseline, the lowest target Highway compiles there: no scalar tier.
    available.push_back(Isa::neon);
    if (cpu_targets & (HWY_SVE | HWY_SVE_256)) available.push_back(Isa::sve);
    if (cpu_targets & (HWY_SVE2 | HWY_SVE2_128)) available.push_back(Isa::sve2);
#else
    available.push_back(Isa::scalar);
#endif
    from_environment = available.back();
    try {
      if (const auto tier = parse_environment()) from_environment = *tier;
    } catch (const std::invalid_argument& e) {
      environment_error = e.what();
    }
    apply();
  }

  std::optional<Isa> parse_environment() const {
    const char* value = std::getenv("PARALAB_ISA");
    if (value == nullptr || *value == '\0') return std::nullopt;
    const auto tier = isa_from_name(value);
    if (!tier || std::find(available.begin(), available.end(), *tier) == available.end())
      throw std::invalid_argument("PARALAB_ISA=" + std::string(value) + ": " +
                                  (tier ? "this CPU cannot run it" : "no such tier") +
                                  " (this CPU: " + list() + ")");
    return tier;
  }

  std::string list() const {
    std::string names;
    for (const Isa isa : available)
      names += (names.empty() ? "" : ", ") + std::string(isa_name(isa));
    return names;
  }

  void apply() {
    active = forced.value_or(from_environment);
    // Unrestricted when the best tier runs; otherwise Highway sees only the tier's targets.
    const bool restricted = active != available.back();
    hwy::SetSupportedTargetsForTest(restricted ? cpu_targets & highway_targets(active) : 0);
  }
};

State& state() {
  static State s;
  return s;
}

// The state, after warning once about a bad PARALAB_ISA nobody has been told of.
State& checked_state() {
  State& s = state();
  if (!s.environment_error.empty() && !s.error_told.exchange(true))
    std::fprintf(stderr, "paralab: warning: %s; using %s\n", s.environment_error.c_str(),
                 isa_name(s.from_environment));
  return s;
}

std::mutex& force_mutex() {
  static std::mutex m;
  return m;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar:
      return "scalar";
    case Isa::sse4:
      return "sse4";
    case Isa::avx2:
      return "avx2";
    case Isa::avx512:
      return "avx512";
    case Isa::avx512_bf16:
      return "avx512_bf16";
    case Isa::neon:
      return "neon";
    case Isa::sve:
      return "sve";
    case Isa::sve2:
      return "sve2";
  }
  return "?";
}

std::optional<Isa> isa_from_name(std::string_view name) {
  for (const Isa isa : kAllIsas)
    if (name == isa_name(isa)) return isa;
  return std::nullopt;
}

const std::vector<Isa>& available_isas() {
  return state().available;
}

Isa best_isa() {
  return state().available.back();
}

Isa active_isa() {
  return checked_state().active;
}

bool isa_enabled(Isa tier) {
  const Isa active = checked_state().active;
  return same_family(active, tier) && active >= tier;
}

void force_isa(std::optional<Isa> tier) {
  State& s = state();
  if (tier && std::find(s.available.begin(), s.available.end(), *tier) == s.available.end())
    throw std::invalid_argument(std::string("instruction-set tier ") + isa_name(*tier) +
                                ": this CPU cannot run it (this CPU: " + s.list() + ")");
  std::lock_guard lock(force_mutex());
  s.forced = tier;
  s.apply();
}

std::optional<Isa> forced_isa() {
  return state().forced;
}

std::optional<Isa> isa_from_environment() {
  State& s = state();
  if (!s.environment_error.empty()) {
    s.error_told = true;  // the caller reports it
    throw std::invalid_argument(s.environment_error);
  }
  return s.parse_environment();
}

std::string isa_description() {
  const State& s = state();
  return std::string(isa_name(s.active)) + " (of " + s.list() + ")";
}

}  // namespace paralab::kernels::cpu
