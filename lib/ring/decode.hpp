// decode.hpp: batched decode over context-parallel ranks (Yang et al.,
// MLSys'25, section 3.3: decode runs batched ring pass-Q).
//
// A batch of B requests, each with a KV cache of `context` tokens, generates
// one token per request per step. Request b owns the global positions
// [b L, (b+1) L), L = context + steps, and a document mask keeps requests
// apart. Its cache is split contiguously over the N ranks; the K/V of the
// token it decodes at step s is appended on rank (b + s) mod N, which also
// holds that token's query: round robin with an offset per step, so every
// rank's cache grows by B/N tokens a step and no rank fills first.
//
// Each step is an ordinary ring problem over decode_layout(): any algorithm
// (pass-Q is the one the paper uses for decode) runs it exactly.
#pragma once

#include <cstdint>

#include "ring/ring_attention.hpp"

namespace paralab::ring {

struct DecodeBatch {
  int batch = 1;        // B requests
  int64_t context = 0;  // cached tokens per request before the first step
  int steps = 1;        // decode steps
};

// The problem every step shares: heads, D, scale from `heads`; causal with
// one document per request; T = B, P = context (for reports).
RingProblem decode_problem(const RingProblem& heads, const DecodeBatch& batch);

// Throws UsageError, identically on every rank, for a batch the ranks cannot
// run (B < 1, steps < 1, negative context, bad heads).
void validate_decode(const RingProblem& problem, const DecodeBatch& batch, int ranks);

// The rank that holds request b's token of step s (its query and its K/V).
int decode_rank(int request, int step, int ranks);

// Position of request b's token at step s.
int64_t decode_position(const DecodeBatch& batch, int request, int step);

// Who holds what at step s: queries are this step's tokens; K/V are every
// request's cache share, then its decoded tokens up to and including step s.
RankLayout decode_layout(const DecodeBatch& batch, int step, int ranks);

}  // namespace paralab::ring
