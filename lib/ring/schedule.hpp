// schedule.hpp: what every rank of a context-parallel attention does, step by
// step, written once and played by both executors: the measure side
// (ring_attention.cpp: real kernels, real transfers) and the simulator
// (simulate.hpp: the same steps on a timeline with modelled costs).
//
// A schedule lists, per rank and ring step, which block is in hand and the
// kernel calls on it (query piece against key/value piece, with the true
// positions so masks stay exact, and the call's FLOPs), plus the sizes of the
// messages: the ring block every step sends, pass-Q's all-to-all slot, the
// all-gather block. Pairs of pieces that no query can see are left out, so
// the executors never launch them and the simulator never charges them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/attention.hpp"
#include "ring/ring_attention.hpp"
#include "ring/sharding.hpp"

namespace paralab::ring {

// One attention kernel call: query piece `q` (rows from q_row of q_owner's
// query shard) against key/value piece `kv` (rows from kv_row of kv_owner's
// key/value shard); the partial result merges into the queries' accumulators.
struct AttentionCall {
  int q_owner = 0;
  int kv_owner = 0;
  Piece q;
  Piece kv;
  int64_t q_row = 0;
  int64_t kv_row = 0;
  double flops = 0;  // visible query-key pairs x 4 D H (kernels::attention_forward_flops)
};

// One ring step of one rank: the block in hand (pass-KV: whose keys/values;
// pass-Q: whose queries; all-gather: -1, every block) and the calls on it.
// Every step but the last also forwards the block to the next rank, in a
// transfer posted before the calls and waited for after them.
struct PlannedStep {
  int block_owner = 0;
  bool forwards = false;
  std::vector<AttentionCall> calls;
};

struct RingSchedule {
  Algorithm algorithm = Algorithm::pass_kv;
  int ranks = 1;
  int64_t H = 1, H_kv = 1, D = 1;  // the problem's heads and head dimension
  // Elements (of the input type) of one ring message, padded to the largest
  // rank's block: pass-KV a K+V block, pass-Q a Q block, all-gather one
  // rank's K+V contribution.
  size_t block_elements = 0;
  // pass-Q only: FP32 values one rank sends to each rank in the all-to-all
  // (O and LSE of the largest query shard), and the query rows each rank
  // merges from N partials at the end.
  size_t all2all_slot_floats = 0;
  std::vector<size_t> final_merge_rows;         // per rank (tokens x H)
  std::vector<std::vector<PlannedStep>> steps;  // [rank][step]

  double flops(int rank) const;  // the rank's attention FLOPs over all steps
};

// The kernel arguments of one call (shape, mask with the pieces' positions).
kernels::AttentionArgs attention_args(const RingProblem& problem, const AttentionCall& call);

// The schedule of `algorithm` for a problem laid out as `layout` over
// layout.queries.size() ranks.
RingSchedule plan_ring(Algorithm algorithm, const RingProblem& problem, const RankLayout& layout);

}  // namespace paralab::ring
