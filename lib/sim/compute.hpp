// compute.hpp: the time of one kernel call from a hardware profile. Compute-
// bound kernels (attention, GEMM) run at the profile's peak for the input
// precision times their efficiency; memory-bound ones (LSE merges, copies) at
// its memory bandwidth; every call also pays the fixed kernel overhead.
#pragma once

#include "sim/hardware.hpp"

namespace paralab::sim {

enum class Precision { bf16, fp32 };

struct ComputeModel {
  double attention_flops_per_s = 0;
  double gemm_flops_per_s = 0;
  double memory_bytes_per_s = 0;
  double kernel_overhead_s = 0;

  double attention_s(double flops) const {
    return kernel_overhead_s + flops / attention_flops_per_s;
  }
  double gemm_s(double flops) const { return kernel_overhead_s + flops / gemm_flops_per_s; }
  double memory_s(double bytes) const { return kernel_overhead_s + bytes / memory_bytes_per_s; }
};

inline ComputeModel compute_model(const HardwareProfile& hw, Precision precision) {
  const double peak = precision == Precision::bf16 ? hw.bf16_peak_flops : hw.fp32_peak_flops;
  return {peak * hw.attention_efficiency, peak * hw.gemm_efficiency, hw.memory_bytes_per_s,
          hw.kernel_overhead_s};
}

}  // namespace paralab::sim
