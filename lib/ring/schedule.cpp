// The per-rank, per-step plan of each context-parallel attention algorithm;
// see schedule.hpp.
#include "ring/schedule.hpp"

#include <algorithm>
#include <stdexcept>

namespace paralab::ring {
namespace {

class DocumentIndex {
 public:
  explicit DocumentIndex(std::span<const int64_t> starts) : starts_(starts) {}
  int64_t of(int64_t position) const {
    return std::upper_bound(starts_.begin(), starts_.end(), position) - starts_.begin();
  }

 private:
  std::span<const int64_t> starts_;
};

// Whether no query of `q` may see any key of `k` (the call would only return
// LSE = -inf rows, which merge to nothing).
bool fully_masked(const RingProblem& p, Piece q, Piece k) {
  if (p.causal && k.start > q.end() - 1) return true;
  if (p.doc_starts.empty()) return false;
  const DocumentIndex docs(p.doc_starts);
  return docs.of(k.end() - 1) < docs.of(q.start) || docs.of(k.start) > docs.of(q.end() - 1);
}

size_t max_tokens(std::span<const Shard> shards) {
  int64_t most = 0;
  for (const Shard& shard : shards) most = std::max(most, shard_tokens(shard));
  return static_cast<size_t>(most);
}

// Every call of q_owner's queries against kv_owner's keys/values that some
// query can see, piece by piece.
std::vector<AttentionCall> calls_between(const RingProblem& p, const RankLayout& layout,
                                         int q_owner, int kv_owner) {
  std::vector<AttentionCall> calls;
  int64_t q_row = 0;
  for (const Piece& qp : layout.queries[q_owner]) {
    int64_t kv_row = 0;
    for (const Piece& kp : layout.kv[kv_owner]) {
      if (!fully_masked(p, qp, kp)) {
        AttentionCall call{q_owner, kv_owner, qp, kp, q_row, kv_row, 0};
        call.flops = kernels::attention_forward_flops(attention_args(p, call));
        calls.push_back(call);
      }
      kv_row += kp.length;
    }
    q_row += qp.length;
  }
  return calls;
}

// The rank whose block is in hand at ring step `step` (blocks move to rank+1).
int ring_source(int rank, int step, int ranks) {
  return ((rank - step) % ranks + ranks) % ranks;
}

}  // namespace

kernels::AttentionArgs attention_args(const RingProblem& p, const AttentionCall& call) {
  kernels::AttentionArgs args;
  args.shape = {static_cast<int>(call.q.length), static_cast<int>(call.kv.length), p.H, p.H_kv,
                p.D};
  args.mask = {p.causal, call.q.start, call.kv.start, p.doc_starts};
  args.scale = p.scale;
  return args;
}

double RingSchedule::flops(int rank) const {
  double sum = 0;
  for (const PlannedStep& step : steps.at(rank))
    for (const AttentionCall& call : step.calls) sum += call.flops;
  return sum;
}

RingSchedule plan_ring(Algorithm algorithm, const RingProblem& p, const RankLayout& layout) {
  const int ranks = static_cast<int>(layout.queries.size());
  if (ranks < 1 || layout.kv.size() != layout.queries.size())
    throw std::invalid_argument("ring schedule: the layout must give every rank a shard");
  RingSchedule s;
  s.algorithm = algorithm;
  s.ranks = ranks;
  s.H = p.H;
  s.H_kv = p.H_kv;
  s.D = p.D;
  const size_t kv_block = 2 * max_tokens(layout.kv) * p.H_kv * p.D;
  const size_t q_block = max_tokens(layout.queries) * p.H * p.D;
  s.steps.resize(ranks);
  for (int r = 0; r < ranks; ++r) {
    if (algorithm == Algorithm::all_gather) {
      PlannedStep step{-1, false, {}};
      for (int owner = 0; owner < ranks; ++owner) {
        auto calls = calls_between(p, layout, r, owner);
        step.calls.insert(step.calls.end(), calls.begin(), calls.end());
      }
      s.steps[r].push_back(std::move(step));
      continue;
    }
    for (int k = 0; k < ranks; ++k) {
      const int owner = ring_source(r, k, ranks);
      PlannedStep step{owner, k + 1 < ranks, {}};
      step.calls = algorithm == Algorithm::pass_kv ? calls_between(p, layout, r, owner)
                                                   : calls_between(p, layout, owner, r);
      s.steps[r].push_back(std::move(step));
    }
  }
  s.block_elements = algorithm == Algorithm::pass_q ? q_block : kv_block;
  if (algorithm == Algorithm::pass_q) {
    s.all2all_slot_floats = max_tokens(layout.queries) * p.H * (p.D + 1);
    for (int r = 0; r < ranks; ++r)
      s.final_merge_rows.push_back(static_cast<size_t>(shard_tokens(layout.queries[r])) * p.H);
  }
  return s;
}

}  // namespace paralab::ring
