// config.hpp: the sizes of a decoder-only transformer (ModelConfig) and one
// training batch (Batch), with their validation.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace paralab::model {

struct ModelConfig {
  int vocab = 256;           // token ids are 0 .. vocab - 1
  int layers = 2;            // transformer layers
  int d_model = 64;          // width of the residual stream
  int heads = 4;             // query heads; d_model / heads is the head dimension
  int kv_heads = 4;          // key/value heads (grouped-query attention); divides heads
  int ffn = 172;             // hidden width of the SwiGLU MLP
  int context = 256;         // the longest sequence a batch may hold (RoPE table size)
  float rope_theta = 10000;  // RoPE base; 0 turns RoPE off (no position signal but the mask)
  float norm_eps = 1e-5f;    // RMSNorm epsilon
  float init_std = 0.02f;    // standard deviation of the initial weights

  int head_dim() const { return d_model / heads; }
};

// Throws paralab::UsageError naming the first impossible field (non-positive
// sizes, heads not dividing d_model, kv_heads not dividing heads, an odd head
// dimension with RoPE, ...).
void validate(const ModelConfig& config);

// B sequences of T tokens, row-major [B * T]. targets[i] is the token that
// position i should predict; a negative target is ignored (padding). Each
// sequence may pack several documents: doc_starts is empty (one document per
// sequence) or holds B ascending lists of the documents' first positions
// within their sequence (0 .. T - 1). Attention never crosses a document
// boundary and RoPE positions restart at each document.
struct Batch {
  int batch = 0;  // B
  int seq = 0;    // T
  std::span<const int32_t> tokens;
  std::span<const int32_t> targets;
  std::span<const std::vector<int64_t>> doc_starts = {};

  int64_t tokens_count() const { return int64_t{batch} * seq; }
};

// Throws paralab::UsageError when the batch does not fit the model: sizes,
// token or target ids out of range, unsorted or out-of-range doc_starts.
void validate(const Batch& batch, const ModelConfig& config);

// Position of every token within its document ([B * T]), for RoPE.
std::vector<int32_t> document_positions(const Batch& batch);

}  // namespace paralab::model
