// compute.hpp: the time of one kernel call from a hardware profile. Compute-
// bound kernels (attention, GEMM) run at the profile's peak for the input
// precision times their efficiency (for attention, optionally a function of
// the keys a call attends to, and never faster than its memory traffic allows);
// memory-bound ones (LSE merges, copies) at its
// memory bandwidth; every call also pays the fixed kernel overhead.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <utility>
#include <vector>

#include "sim/hardware.hpp"

namespace paralab::sim {

enum class Precision { bf16, fp32 };

struct ComputeModel {
  double attention_flops_per_s = 0;
  double gemm_flops_per_s = 0;
  double memory_bytes_per_s = 0;
  double kernel_overhead_s = 0;
  double peak_flops = 0;                                   // what the curve's efficiencies scale
  std::vector<std::pair<double, double>> attention_curve;  // the profile's, may be empty

  // One attention call of `flops` over `keys` keys (0: unknown, the flat
  // rate) that moves `bytes` through memory (Q, K, V read, O written): a
  // roofline, so decode-like calls (few queries, long K/V) are memory-bound.
  double attention_s(double flops, double keys = 0, double bytes = 0) const {
    return kernel_overhead_s + std::max(flops / attention_rate(keys), bytes / memory_bytes_per_s);
  }
  double gemm_s(double flops) const { return kernel_overhead_s + flops / gemm_flops_per_s; }
  double memory_s(double bytes) const { return kernel_overhead_s + bytes / memory_bytes_per_s; }

  // The attention rate for calls over `keys` keys: the curve interpolated in
  // log(keys), constant past its ends; the flat rate without a curve.
  double attention_rate(double keys) const {
    if (attention_curve.empty() || keys <= 0) return attention_flops_per_s;
    if (keys <= attention_curve.front().first) return peak_flops * attention_curve.front().second;
    if (keys >= attention_curve.back().first) return peak_flops * attention_curve.back().second;
    size_t i = 1;
    while (attention_curve[i].first < keys) ++i;
    const auto [k0, e0] = attention_curve[i - 1];
    const auto [k1, e1] = attention_curve[i];
    const double t = std::log(keys / k0) / std::log(k1 / k0);
    return peak_flops * (e0 + t * (e1 - e0));
  }
};

inline ComputeModel compute_model(const HardwareProfile& hw, Precision precision) {
  const double peak = precision == Precision::bf16 ? hw.bf16_peak_flops : hw.fp32_peak_flops;
  ComputeModel model;
  model.attention_flops_per_s = peak * hw.attention_efficiency;
  model.gemm_flops_per_s = peak * hw.gemm_efficiency;
  model.memory_bytes_per_s = hw.memory_bytes_per_s;
  model.kernel_overhead_s = hw.kernel_overhead_s;
  model.peak_flops = peak;
  model.attention_curve = hw.attention_efficiency_by_keys;
  return model;
}

}  // namespace paralab::sim
