#include "kernels/cpu/dispatch.hpp"

#include <atomic>

namespace paralab::kernels::cpu::detail {

namespace {
std::atomic<bool> portable_forced{false};
}  // namespace

bool has_avx512() {
  static const bool supported =
      __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  return supported && !portable_forced.load(std::memory_order_relaxed);
}

bool has_avx512_bf16() {
  static const bool supported = __builtin_cpu_supports("avx512bf16");
  return supported && has_avx512();
}

void force_portable(bool forced) {
  portable_forced.store(forced, std::memory_order_relaxed);
}

}  // namespace paralab::kernels::cpu::detail
