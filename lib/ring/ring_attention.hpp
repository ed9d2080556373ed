// ring_attention.hpp: exact context-parallel attention over the ranks of a
// communicator (Yang et al., "Context Parallelism for Scalable Million-Token
// Inference", MLSys'25), measure side, on the CPU kernels:
//
//   pass_kv     queries stay; K/V shards travel N-1 steps around the ring,
//               each step's transfer overlapping the attention on the block
//               in hand; partial results merge by their LSE.
//   pass_q      K/V stay; query shards travel the ring; every rank computes
//               the visiting queries' partial (O, LSE) against its own K/V;
//               one all-to-all returns the partials, and owners merge them.
//   all_gather  all-gather K/V, then local attention (training-style baseline).
//
// Persistent-KV (partial) prefill is the same call with P > 0: the T new tokens
// sit at positions P..P+T-1 and attend to a KV cache of the P earlier tokens,
// already sharded over the ranks (sharding.hpp: contiguous). A rank's key/value
// block is then its cache rows followed by its new tokens' rows, and every
// algorithm treats it as one list of position pieces.
//
// Every rank computes the same layout (which positions each rank holds) from
// the problem, so only tensor data moves: a visiting block's positions follow
// from the rank it came from. Messages are padded to the largest rank's block
// so every ring step and every all-to-all slot moves the same bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "comm/comm.hpp"
#include "core/bf16.hpp"
#include "ring/sharding.hpp"

namespace paralab::ring {

// What every rank agrees on. Masks as in kernels::AttentionMask, in global
// positions (cache positions 0..P-1, new tokens P..P+T-1).
struct RingProblem {
  int64_t T = 0;  // new (query) tokens
  int64_t P = 0;  // cached tokens before them (persistent-KV prefill); 0 = full prefill
  int H = 1;      // query heads
  int H_kv = 1;   // key/value heads (grouped-query attention)
  int D = 128;    // head dimension
  bool causal = true;
  std::vector<int64_t> doc_starts;  // document first positions, ascending; empty = one document
  float scale = 0;                  // softmax scale; 0 = 1/sqrt(D)
  Sharding sharding = Sharding::load_balanced;
};

// Throws UsageError, identically on every rank, for a problem `ranks` ranks
// cannot run (T < ranks, H not a multiple of H_kv, non-positive sizes,
// negative P, unsorted doc_starts).
void validate(const RingProblem& problem, int ranks);

// Which positions each rank holds, for every rank.
struct RankLayout {
  std::vector<Shard> queries;  // new tokens: the rank's queries (and their new K/V)
  std::vector<Shard> kv;       // the rank's keys/values: cache pieces, then new-token pieces
};
RankLayout layout_of(const RingProblem& problem, int ranks);

// This rank's inputs, rows in the order of its layout's shards:
//   q     [queries tokens, H, D]
//   k, v  [kv tokens, H_kv, D]   (cache rows first, then new-token rows)
template <class E>
struct LocalInputs {
  std::span<const E> q;
  std::span<const E> k;
  std::span<const E> v;
};

// Seconds spent in one ring step.
struct StepTiming {
  double attention = 0;  // the attention kernel
  double merge = 0;      // merging partial results by LSE
  double comm_wait = 0;  // waiting for the step's transfer after the compute
};
struct RingTiming {
  std::vector<StepTiming> steps;  // one per ring step (all_gather: one step)
  double all2all = 0;             // pass_q: returning the partial outputs
  double final_merge = 0;         // pass_q: merging the N partials of each query
  double setup = 0;               // allocating and packing the message buffers
  double total = 0;               // the whole call, wall clock
  StepTiming summed() const;      // the steps added up
};

// This rank's exact result for its queries: O [queries tokens, H, D] and
// LSE [queries tokens, H] (FP32), against all keys of the sequence.
struct RingOutput {
  std::vector<float> o;
  std::vector<float> lse;
  RingTiming timing;
};

enum class Algorithm { pass_kv, pass_q, all_gather };
std::string_view algorithm_name(Algorithm algorithm);  // "pass_kv" | "pass_q" | "all_gather"

// Collective over `comm`; E is float or bf16. Call validate() first (these
// throw std::invalid_argument when the inputs do not match the layout).
template <class E>
RingOutput pass_kv(comm::Communicator& comm, const RingProblem& problem,
                   const LocalInputs<E>& inputs);
template <class E>
RingOutput pass_q(comm::Communicator& comm, const RingProblem& problem,
                  const LocalInputs<E>& inputs);
template <class E>
RingOutput all_gather_kv(comm::Communicator& comm, const RingProblem& problem,
                         const LocalInputs<E>& inputs);
template <class E>
RingOutput ring_attention(Algorithm algorithm, comm::Communicator& comm, const RingProblem& problem,
                          const LocalInputs<E>& inputs);

// Message buffers kept between calls, as a serving loop keeps them: with a
// workspace, repeated calls skip allocating (and first touching) the ring
// and all-to-all buffers. Contents between calls are unspecified.
class RingWorkspace {
 public:
  // `count` elements of T in buffer `slot`, grown when too small.
  template <class T>
  T* buffer(size_t slot, size_t count) {
    if (slots_.size() <= slot) slots_.resize(slot + 1);
    std::vector<std::max_align_t>& storage = slots_[slot];
    const size_t words =
        (count * sizeof(T) + sizeof(std::max_align_t) - 1) / sizeof(std::max_align_t);
    if (storage.size() < words) storage.resize(words);
    return reinterpret_cast<T*>(storage.data());
  }

 private:
  std::vector<std::vector<std::max_align_t>> slots_;
};

// The same for a schedule planned once (schedule.hpp: plan_ring) over any
// layout, e.g. decode's; inputs laid out as `layout` says for this rank.
// `workspace` may be null (buffers allocated for this call only).
struct RingSchedule;
template <class E>
RingOutput run_ring(comm::Communicator& comm, const RingProblem& problem, const RankLayout& layout,
                    const RingSchedule& schedule, const LocalInputs<E>& inputs,
                    RingWorkspace* workspace = nullptr);

}  // namespace paralab::ring
