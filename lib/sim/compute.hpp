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

// The shape of one attention call, for the GPU occupancy model: query rows,
// query heads, key/value heads, keys (0: unknown; no occupancy model).
struct AttentionShape {
  double q_rows = 0;
  int heads = 1, kv_heads = 1;
  double keys = 0;
};

struct ComputeModel {
  double attention_flops_per_s = 0;
  double gemm_flops_per_s = 0;
  double memory_bytes_per_s = 0;
  double kernel_overhead_s = 0;
  double peak_flops = 0;                                   // what the curve's efficiencies scale
  std::vector<std::pair<double, double>> attention_curve;  // the profile's, may be empty
  int sm_count = 0;                                        // 0: no occupancy model (CPUs)
  int tile_rows = 128;

  // One attention call of `flops` over `keys` keys (0: unknown, the flat
  // rate) that moves `bytes` through memory (Q, K, V read, O written): a
  // roofline, so decode-like calls (few queries, long K/V) are memory-bound.
  double attention_s(double flops, double keys = 0, double bytes = 0) const {
    return kernel_overhead_s + std::max(flops / attention_rate(keys), bytes / memory_bytes_per_s);
  }
  // A GEMM that moves `bytes` (weights, inputs, outputs): a roofline, so
  // decode's thin GEMMs cost the time to stream their weights.
  double gemm_s(double flops, double bytes = 0) const {
    return kernel_overhead_s + std::max(flops / gemm_flops_per_s, bytes / memory_bytes_per_s);
  }

  // attention_s for a call of this shape: the flop rate scaled by the
  // fraction of the GPU's tile slots doing useful work (occupancy()).
  double attention_s(double flops, const AttentionShape& shape, double bytes) const {
    const double rate = attention_rate(shape.keys) * occupancy(shape);
    return kernel_overhead_s + std::max(flops / rate, bytes / memory_bytes_per_s);
  }

  // FlashAttention-style kernels give each thread block one tile of
  // tile_rows query rows of one KV head's query group (grouped-query heads
  // packed into the rows, as FlashAttention-3's PackGQA and decode kernels
  // do); a short call leaves rows of its tiles empty, and fewer tiles than
  // SMs are split along the keys to fill them (FlashAttention's split-KV
  // heuristic), at most one split per tile_rows keys; the last wave of blocks
  // may leave SMs idle. 1 when the profile has no SM count.
  double occupancy(const AttentionShape& s) const {
    if (sm_count <= 0 || s.q_rows <= 0 || s.keys <= 0) return 1;
    const double group = double(s.heads) / s.kv_heads;
    const double tiles_per_head = std::ceil(s.q_rows * group / tile_rows);
    const double row_fill = s.q_rows * group / (tiles_per_head * tile_rows);
    const double blocks = tiles_per_head * s.kv_heads;
    const double splits = blocks < 0.8 * sm_count ? kv_splits(blocks, s.keys) : 1;
    return row_fill * wave_efficiency(blocks * splits);
  }

  // The busy fraction of SM slots over the waves `blocks` thread blocks take.
  double wave_efficiency(double blocks) const {
    return blocks / (std::ceil(blocks / sm_count) * sm_count);
  }

  // FlashAttention's num_splits_heuristic: the fewest key splits (up to 128,
  // at most one per key tile) whose wave efficiency is within 85% of the best.
  double kv_splits(double blocks, double keys) const {
    const int most = int(std::min(128.0, std::ceil(keys / tile_rows)));
    double best = 0;
    for (int n = 1; n <= most; ++n) best = std::max(best, wave_efficiency(blocks * n));
    for (int n = 1; n <= most; ++n)
      if (wave_efficiency(blocks * n) >= 0.85 * best) return n;
    return 1;
  }
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
  model.sm_count = hw.sm_count;
  model.tile_rows = hw.attention_tile_rows;
  return model;
}

}  // namespace paralab::sim
