// attention.hpp: attention forward and backward with the log-sum-exp (LSE),
// grouped-query heads and causal/document masks, and the LSE-weighted merge
// of partial results. Three implementations share these declarations:
//   reference::  plain loops in double; what the tests compare against
//   cpu::        blocked, vectorised (AVX-512, AVX512-BF16), multi-threaded
//   cuda::       device pointers, queued on `stream` (a cudaStream_t; null =
//                the default stream); only when PARALAB_HAVE_CUDA
//
// Layouts (row-major, contiguous):
//   Q, O, dQ, dO   [T, H, D]      T query tokens, H query heads
//   K, V, dK, dV   [S, H_kv, D]   S key tokens, H_kv key/value heads
//   LSE            [T, H]         natural log of the sum of exp(scale * q.k)
// Query head h reads key/value head h / (H / H_kv) (grouped-query attention).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "core/bf16.hpp"

namespace paralab::kernels {

struct AttentionShape {
  int T = 0;     // queries
  int S = 0;     // keys
  int H = 1;     // query heads
  int H_kv = 1;  // key/value heads; H % H_kv == 0
  int D = 128;   // head dimension (the fast kernels: 64 or 128)
};

// Which keys a query sees. Query i sits at position q_offset + i and key j at
// k_offset + j (so a chunk of a long sequence, or one key block of a ring,
// keeps its true positions). A query sees a key when:
//   causal:    key position <= query position;
//   documents: both positions fall in the same document, where doc_starts
//              lists the documents' first positions in ascending order (a
//              position belongs to the last start <= it; repeated starts are
//              empty documents; empty span = one document).
// Both may hold at once (packed variable-length sequences, causal).
// A query that sees no key gets O = 0 and LSE = -inf (never NaN).
struct AttentionMask {
  bool causal = false;
  int64_t q_offset = 0;
  int64_t k_offset = 0;
  std::span<const int64_t> doc_starts = {};
};

struct AttentionArgs {
  AttentionShape shape;
  AttentionMask mask;
  float scale = 0;  // softmax scale; 0 means 1/sqrt(D)
};

// Throws std::invalid_argument for impossible shapes (non-positive sizes,
// H not a multiple of H_kv, unsorted doc_starts).
void validate(const AttentionArgs& args);
// 1/sqrt(D) when args.scale is 0.
float softmax_scale(const AttentionArgs& args);
// Whether query i may see key j under args.mask (the definition above).
bool visible(const AttentionMask& mask, int64_t i, int64_t j);
// Forward FLOPs actually needed under the mask (4 * D per visible
// query-key pair per head), for throughput reports.
double attention_forward_flops(const AttentionArgs& args);

// The CPU-side declarations, written once for reference:: and cpu::.
#define PARALAB_ATTENTION_DECLARATIONS                                                             \
  /* O [T,H,D] and LSE [T,H] from Q, K, V; FP32 accumulation. */                                   \
  void attention_forward(const AttentionArgs& args, const float* q, const float* k,                \
                         const float* v, float* o, float* lse);                                    \
  void attention_forward(const AttentionArgs& args, const bf16* q, const bf16* k, const bf16* v,   \
                         float* o, float* lse);                                                    \
  /* dQ [T,H,D], dK and dV [S,H_kv,D] (overwritten; summed over the heads of a group)       */     \
  /* from the forward's inputs, its O and LSE, and dO.                                      */     \
  void attention_backward(const AttentionArgs& args, const float* q, const float* k,               \
                          const float* v, const float* o, const float* lse, const float* d_o,      \
                          float* dq, float* dk, float* dv);                                        \
  /* Merges partial results of the same rows over disjoint key sets into the exact result: */      \
  /* rows = T * H; o_parts[i] [rows, D], lse_parts[i] [rows]. Parts whose LSE is -inf     */       \
  /* contribute nothing; if all are -inf the row is O = 0, LSE = -inf.                    */       \
  void attention_merge(size_t rows, int D, std::span<const float* const> o_parts,                  \
                       std::span<const float* const> lse_parts, float* o, float* lse);             \
  /* The same for two parts, in place: (o_acc, lse_acc) <- merge(acc, part).              */       \
  void attention_merge_into(size_t rows, int D, float* o_acc, float* lse_acc, const float* o_part, \
                            const float* lse_part);

namespace reference {
PARALAB_ATTENTION_DECLARATIONS
}  // namespace reference

namespace cpu {
PARALAB_ATTENTION_DECLARATIONS
}  // namespace cpu

#ifdef PARALAB_HAVE_CUDA
// Device pointers (mask.doc_starts stays in host memory: the kernels copy it);
// the functions queue their work on the given stream.
namespace cuda {
void attention_forward(const AttentionArgs& args, const float* q, const float* k, const float* v,
                       float* o, float* lse, void* stream = nullptr);
void attention_forward(const AttentionArgs& args, const bf16* q, const bf16* k, const bf16* v,
                       float* o, float* lse, void* stream = nullptr);
void attention_backward(const AttentionArgs& args, const float* q, const float* k, const float* v,
                        const float* o, const float* lse, const float* d_o, float* dq, float* dk,
                        float* dv, void* stream = nullptr);
void attention_merge_into(size_t rows, int D, float* o_acc, float* lse_acc, const float* o_part,
                          const float* lse_part, void* stream = nullptr);
}  // namespace cuda
#endif

#undef PARALAB_ATTENTION_DECLARATIONS

}  // namespace paralab::kernels
