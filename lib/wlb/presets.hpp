// presets.hpp: the models and 4D grids of WLB-LLM's evaluation (Wang et al.,
// OSDI'25): 550M, 7B, 30B and 70B decoder-only transformers, each at 64K and
// 128K context on a (TP, CP, PP, DP) grid of H100s.
//
// The paper names the models by size only; the shapes here are Llama-like
// (SwiGLU MLP, RoPE, head dimension 128, untied 32000-token embeddings): the
// 7B and 70B are Llama 2's, the 550M and 30B are chosen so that their counts
// match the names and their heads split over the grids' TP degrees. See
// docs/wlb_4d.md for what is the paper's and what is assumed.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "packing/packing.hpp"
#include "sim/transformer.hpp"

namespace paralab::wlb {

// A model: its transformer layers (what the simulator times) and its
// vocabulary (which only enters the parameter count).
struct ModelPreset {
  sim::TransformerShape shape;
  int64_t vocab = 32000;

  // Weights of one transformer layer: QKV, output, SwiGLU (gate, up, down)
  // projections and the two RMSNorm scales.
  int64_t layer_parameters() const;
  // All weights: the layers, input and output embeddings, the final norm.
  int64_t parameters() const;
};

// "550M", "7B", "30B", "70B".
std::vector<ModelPreset> model_presets();
std::vector<std::string> model_preset_names();
// UsageError naming the known presets for an unknown name.
ModelPreset find_model_preset(std::string_view name);

// A 4D process grid: tensor, context, pipeline and data parallel degrees.
// Ranks are placed TP fastest, then CP, PP, DP (rank = ((dp * PP + pp) * CP +
// cp) * TP + tp), so TP groups share a node whenever TP <= GPUs per node.
struct Grid {
  int tp = 1, cp = 1, pp = 1, dp = 1;
  int gpus() const { return tp * cp * pp * dp; }
  std::string describe() const;  // "tp2 cp2 pp4 dp2"
};

// One configuration of the paper's end-to-end evaluation.
struct PaperConfig {
  std::string name;   // "7B-128K"
  std::string model;  // a model_presets() name
  int64_t context = 0;
  Grid grid;
  // Micro-batches per data-parallel replica and global batch (the paper does
  // not give it; 2 x PP is the assumption, see docs/wlb_4d.md).
  int micro_batches_per_replica = 0;
};

// The eight configurations, 550M-64K ... 70B-128K.
std::vector<PaperConfig> paper_configs();
// UsageError naming the known configurations for an unknown name.
PaperConfig find_paper_config(std::string_view name);

// The paper's headline speedups of WLB-LLM over plain 4D parallelism.
inline constexpr double kPaperMeanSpeedup = 1.23;
inline constexpr double kPaperSpeedup64K = 1.15;
inline constexpr double kPaperSpeedup128K = 1.30;

// Attention kernel efficiency on an H100 by query-chunk length, relative to
// long chunks: FlashAttention-3's causal BF16 forward throughput against
// sequence length (head dimension 128), read off its paper's plot: about 0.3
// of the long-sequence rate at 512 tokens, 0.5 at 1K, 0.7 at 2K, 0.85 at 4K,
// 0.95 at 8K. An approximation, for per-document CP sharding's short chunks
// and the adaptive choice; replace it with a measured curve when one exists.
packing::KernelEfficiency h100_chunk_efficiency();

// Checks a grid against a model: every degree >= 1, PP divides the layers
// (equal layers per stage), query heads split over TP and KV heads split or
// replicate. Throws UsageError naming what does not fit.
void validate_grid(const Grid& grid, const sim::TransformerShape& shape);

}  // namespace paralab::wlb
