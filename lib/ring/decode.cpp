// Batched decode layouts; see decode.hpp.
#include "ring/decode.hpp"

#include <string>

#include "core/errors.hpp"

namespace paralab::ring {
namespace {

int64_t request_span(const DecodeBatch& d) {
  return d.context + d.steps;
}

// Appends a piece of a request's positions, joining it to the last one when
// they touch and belong to the same request (one kernel call instead of two;
// never across requests, whose keys a query must not read).
void append(Shard& shard, Piece piece, int64_t request_first) {
  if (!shard.empty() && shard.back().end() == piece.start && shard.back().start >= request_first)
    shard.back().length += piece.length;
  else
    shard.push_back(piece);
}

}  // namespace

RingProblem decode_problem(const RingProblem& heads, const DecodeBatch& d) {
  RingProblem p = heads;
  p.T = d.batch;
  p.P = d.context;
  p.causal = true;
  p.doc_starts.clear();
  for (int b = 1; b < d.batch; ++b) p.doc_starts.push_back(b * request_span(d));
  return p;
}

void validate_decode(const RingProblem& p, const DecodeBatch& d, int ranks) {
  auto fail = [](const std::string& message) { throw UsageError("decode: " + message); };
  if (d.batch < 1) fail("the batch needs at least one request");
  if (d.steps < 1) fail("at least one decode step is needed");
  if (d.context < 0) fail("the context must not be negative");
  if (int64_t(d.batch) * request_span(d) > (int64_t(1) << 31) - 1)
    fail("batch x (context + steps) beyond 2^31 positions is not supported by the kernels");
  // Heads, D and scale as for prefill; T here is only the batch.
  RingProblem heads = p;
  heads.T = ranks;
  heads.P = 0;
  heads.doc_starts.clear();
  validate(heads, ranks);
}

int decode_rank(int request, int step, int ranks) {
  return (request + step) % ranks;
}

int64_t decode_position(const DecodeBatch& d, int request, int step) {
  return request * request_span(d) + d.context + step;
}

RankLayout decode_layout(const DecodeBatch& d, int step, int ranks) {
  RankLayout layout;
  layout.queries.resize(ranks);
  layout.kv.resize(ranks);
  for (int b = 0; b < d.batch; ++b) {
    layout.queries[decode_rank(b, step, ranks)].push_back({decode_position(d, b, step), 1});
    const int64_t first = b * request_span(d);
    for (int r = 0; r < ranks; ++r)
      for (const Piece& piece : cache_shard_of(d.context, ranks, r))
        append(layout.kv[r], {first + piece.start, piece.length}, first);
    for (int t = 0; t <= step; ++t)
      append(layout.kv[decode_rank(b, t, ranks)], {decode_position(d, b, t), 1}, first);
  }
  return layout;
}

}  // namespace paralab::ring
