// isa.hpp: the tiers this CPU offers, forcing one, and PARALAB_ISA's parsing.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "kernels/cpu/isa.hpp"

namespace paralab::kernels::cpu {
namespace {

constexpr Isa kAll[] = {Isa::scalar,      Isa::sse4, Isa::avx2, Isa::avx512,
                        Isa::avx512_bf16, Isa::neon, Isa::sve,  Isa::sve2};

TEST(Isa, TiersStartAtTheBaselineAndRiseWithinOneArchitecture) {
  const auto& tiers = available_isas();
  ASSERT_FALSE(tiers.empty());
#if defined(__aarch64__)
  EXPECT_EQ(tiers.front(), Isa::neon);
#else
  EXPECT_EQ(tiers.front(), Isa::scalar);
#endif
  EXPECT_EQ(tiers.back(), best_isa());
  for (size_t i = 1; i < tiers.size(); ++i) {
    EXPECT_LT(tiers[i - 1], tiers[i]);
    EXPECT_TRUE(isa_enabled(tiers[i - 1]) || forced_isa().has_value());
  }
#if defined(__x86_64__)
  for (const Isa isa : tiers) EXPECT_LE(isa, Isa::avx512_bf16) << isa_name(isa);
#elif defined(__aarch64__)
  for (const Isa isa : tiers) EXPECT_GE(isa, Isa::neon) << isa_name(isa);
#endif
  std::string names;
  for (const Isa isa : tiers) names += std::string(" ") + isa_name(isa);
  RecordProperty("tiers", names);
  std::printf("this CPU's tiers:%s\n", names.c_str());
}

TEST(Isa, ForcingATierEnablesItAndNothingAbove) {
  for (const Isa isa : available_isas()) {
    const ScopedIsa scope(isa);
    EXPECT_EQ(active_isa(), isa);
    for (const Isa other : kAll) {
      const bool same_family = other == Isa::scalar || isa == Isa::scalar ||
                               (other <= Isa::avx512_bf16) == (isa <= Isa::avx512_bf16);
      EXPECT_EQ(isa_enabled(other), same_family && other <= isa)
          << isa_name(isa) << " forced, asking for " << isa_name(other);
    }
  }
  EXPECT_EQ(active_isa(), isa_from_environment().value_or(best_isa()));
}

// Each tier restricts Highway's dispatch to its own targets.
TEST(Isa, HighwayDispatchesToTheTiersTarget) {
  for (const Isa isa : available_isas()) {
    const ScopedIsa scope(isa);
    const std::string target = highway_target();
    switch (isa) {
      case Isa::scalar:
        EXPECT_TRUE(target == "SCALAR" || target == "EMU128") << target;
        break;
      case Isa::sse4:
        EXPECT_EQ(target, "SSE4");
        break;
      case Isa::avx2:
        EXPECT_EQ(target, "AVX2");
        break;
      case Isa::avx512:
      case Isa::avx512_bf16:
        EXPECT_EQ(target.rfind("AVX3", 0), 0u) << target;
        break;
      case Isa::neon:
        EXPECT_EQ(target, "NEON");
        break;
      case Isa::sve:
        EXPECT_TRUE(target == "SVE" || target == "SVE_256") << target;
        break;
      // Highway prefers its 256-bit SVE target to generic SVE2 where vectors are 256 bits.
      case Isa::sve2:
        EXPECT_TRUE(target == "SVE2" || target == "SVE2_128" || target == "SVE_256") << target;
        break;
    }
  }
}

TEST(Isa, ScopesNestAndRestore) {
  const Isa outer = available_isas().front();
  {
    const ScopedIsa a(outer);
    {
      const ScopedIsa b(best_isa());
      EXPECT_EQ(active_isa(), best_isa());
    }
    EXPECT_EQ(active_isa(), outer);
  }
  EXPECT_FALSE(forced_isa().has_value());
}

TEST(Isa, RefusesTiersThisCpuLacks) {
  for (const Isa isa : kAll) {
    const auto& tiers = available_isas();
    if (std::find(tiers.begin(), tiers.end(), isa) != tiers.end()) continue;
    EXPECT_THROW(force_isa(isa), std::invalid_argument) << isa_name(isa);
  }
  EXPECT_EQ(active_isa(), isa_from_environment().value_or(best_isa()));
}

TEST(Isa, NamesRoundTrip) {
  for (const Isa isa : kAll) EXPECT_EQ(isa_from_name(isa_name(isa)), isa);
  EXPECT_FALSE(isa_from_name("avx3").has_value());
  EXPECT_FALSE(isa_from_name("").has_value());
}

TEST(Isa, EnvironmentNamesOnlyAvailableTiers) {
  const char* saved = std::getenv("PARALAB_ISA");
  const std::string keep = saved ? saved : "";
  const Isa lowest = available_isas().front();
  setenv("PARALAB_ISA", isa_name(lowest), 1);
  EXPECT_EQ(isa_from_environment(), lowest);
  setenv("PARALAB_ISA", "no-such-tier", 1);
  EXPECT_THROW(isa_from_environment(), std::invalid_argument);
  for (const Isa isa : kAll) {
    const auto& tiers = available_isas();
    if (std::find(tiers.begin(), tiers.end(), isa) != tiers.end()) continue;
    setenv("PARALAB_ISA", isa_name(isa), 1);
    EXPECT_THROW(isa_from_environment(), std::invalid_argument) << isa_name(isa);
  }
  if (saved)
    setenv("PARALAB_ISA", keep.c_str(), 1);
  else
    unsetenv("PARALAB_ISA");
}

}  // namespace
}  // namespace paralab::kernels::cpu
