// Context-parallel ring attention (pass-KV, pass-Q, all-gather); see
// ring_attention.hpp. Each algorithm is one function of readable steps; what
// they share (attention of a query shard against a key/value shard, piece by
// piece, merged by LSE; padded message buffers) is written once above them.
#include "ring/ring_attention.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "core/errors.hpp"
#include "core/timer.hpp"
#include "kernels/attention.hpp"

namespace paralab::ring {

// Problem, layout -----------------------------------------------------------------

void validate(const RingProblem& p, int ranks) {
  auto fail = [](const std::string& message) { throw UsageError("ring attention: " + message); };
  if (p.H < 1 || p.H_kv < 1 || p.D < 1) fail("H, H_kv and D must be positive");
  if (p.H % p.H_kv != 0)
    fail("H (" + std::to_string(p.H) + ") must be a multiple of H_kv (" + std::to_string(p.H_kv) +
         ")");
  if (p.P < 0) fail("the cached prefix P must not be negative");
  if (!std::is_sorted(p.doc_starts.begin(), p.doc_starts.end()))
    fail("document starts must be in ascending order");
  if (!(p.scale >= 0) || std::isinf(p.scale)) fail("the softmax scale must be finite and >= 0");
  if (p.T < ranks)
    fail("T (" + std::to_string(p.T) + ") must be at least the number of ranks (" +
         std::to_string(ranks) + "): every rank needs query tokens");
  if (p.T + p.P > std::numeric_limits<int>::max())
    fail("sequences beyond 2^31 tokens are not supported by the kernels");
}

RankLayout layout_of(const RingProblem& p, int ranks) {
  RankLayout layout;
  for (int r = 0; r < ranks; ++r) {
    layout.queries.push_back(shard_of(p.sharding, p.P, p.T, ranks, r));
    Shard kv = cache_shard_of(p.P, ranks, r);
    kv.insert(kv.end(), layout.queries.back().begin(), layout.queries.back().end());
    layout.kv.push_back(std::move(kv));
  }
  return layout;
}

StepTiming RingTiming::summed() const {
  StepTiming sum;
  for (const StepTiming& s : steps) {
    sum.attention += s.attention;
    sum.merge += s.merge;
    sum.comm_wait += s.comm_wait;
  }
  return sum;
}

std::string_view algorithm_name(Algorithm algorithm) {
  switch (algorithm) {
    case Algorithm::pass_kv:
      return "pass_kv";
    case Algorithm::pass_q:
      return "pass_q";
    case Algorithm::all_gather:
      return "all_gather";
  }
  return "?";
}

namespace {

constexpr float kNoKeys = -std::numeric_limits<float>::infinity();  // LSE of an empty key set

template <class E>
constexpr DType dtype_of() {
  return std::is_same_v<E, float> ? DType::f32 : DType::bf16;
}

size_t max_tokens(std::span<const Shard> shards) {
  int64_t most = 0;
  for (const Shard& shard : shards) most = std::max(most, shard_tokens(shard));
  return static_cast<size_t>(most);
}

// The rank that sent the block held at ring step `step` (blocks move to rank+1).
int ring_source(int rank, int step, int ranks) {
  return ((rank - step) % ranks + ranks) % ranks;
}

double wait_timed(comm::Request& request) {
  Stopwatch watch;
  request.wait();
  return watch.seconds();
}

// Piece-vs-piece attention --------------------------------------------------------

class DocumentIndex {
 public:
  explicit DocumentIndex(std::span<const int64_t> starts) : starts_(starts) {}
  int64_t of(int64_t position) const {
    return std::upper_bound(starts_.begin(), starts_.end(), position) - starts_.begin();
  }

 private:
  std::span<const int64_t> starts_;
};

// Whether no query of `q` may see any key of `k`: then the kernel call is
// skipped (it would return LSE = -inf rows that merge to nothing).
bool fully_masked(const RingProblem& p, Piece q, Piece k) {
  if (p.causal && k.start > q.end() - 1) return true;
  if (p.doc_starts.empty()) return false;
  const DocumentIndex docs(p.doc_starts);
  return docs.of(k.end() - 1) < docs.of(q.start) || docs.of(k.start) > docs.of(q.end() - 1);
}

// Partial results of one kernel call, reused across calls.
struct Scratch {
  std::vector<float> o, lse;
};

// Adds to the accumulators (o, lse) of the query rows of `q_shard` their
// attention against the keys of `kv_shard`, one kernel call per pair of pieces
// with the pieces' true positions as offsets, so every mask stays exact.
template <class E>
void attend_shard(const RingProblem& p, const Shard& q_shard, const E* q, const Shard& kv_shard,
                  const E* k, const E* v, float* o, float* lse, Scratch& scratch,
                  StepTiming& timing) {
  const size_t q_row = static_cast<size_t>(p.H) * p.D;
  const size_t kv_row = static_cast<size_t>(p.H_kv) * p.D;
  size_t q_token = 0;
  for (const Piece& qp : q_shard) {
    size_t k_token = 0;
    for (const Piece& kp : kv_shard) {
      if (!fully_masked(p, qp, kp)) {
        kernels::AttentionArgs args;
        args.shape = {static_cast<int>(qp.length), static_cast<int>(kp.length), p.H, p.H_kv, p.D};
        args.mask = {p.causal, qp.start, kp.start, p.doc_starts};
        args.scale = p.scale;
        const size_t rows = static_cast<size_t>(qp.length) * p.H;
        scratch.o.resize(rows * p.D);
        scratch.lse.resize(rows);
        Stopwatch watch;
        kernels::cpu::attention_forward(args, q + q_token * q_row, k + k_token * kv_row,
                                        v + k_token * kv_row, scratch.o.data(), scratch.lse.data());
        timing.attention += watch.seconds();
        watch.restart();
        kernels::cpu::attention_merge_into(rows, p.D, o + q_token * q_row, lse + q_token * p.H,
                                           scratch.o.data(), scratch.lse.data());
        timing.merge += watch.seconds();
      }
      k_token += static_cast<size_t>(kp.length);
    }
    q_token += static_cast<size_t>(qp.length);
  }
}

// Buffers ----------------------------------------------------------------------

// Accumulators for `tokens` query tokens before any key: O = 0, LSE = -inf.
RingOutput empty_output(const RingProblem& p, size_t tokens) {
  RingOutput out;
  out.o.assign(tokens * p.H * p.D, 0.0f);
  out.lse.assign(tokens * p.H, kNoKeys);
  return out;
}

// One rank's K and V in a single message buffer, K then V, each padded to
// `tokens` rows so that all ranks' blocks have the same size.
template <class E>
class KvBlock {
 public:
  KvBlock(const RingProblem& p, size_t tokens)
      : half_(tokens * p.H_kv * p.D), data_(2 * half_, E{}) {}
  KvBlock(const RingProblem& p, size_t tokens, const LocalInputs<E>& in) : KvBlock(p, tokens) {
    std::copy(in.k.begin(), in.k.end(), data_.begin());
    std::copy(in.v.begin(), in.v.end(), data_.begin() + half_);
  }
  E* data() { return data_.data(); }
  size_t size() const { return data_.size(); }
  const E* k() const { return data_.data(); }
  const E* v() const { return data_.data() + half_; }

 private:
  size_t half_;
  std::vector<E> data_;
};

// pass-Q's partial results for one query shard: O [rows, D] then LSE [rows],
// padded to `tokens` query tokens; N of these make one all-to-all slot each.
struct PartialSlots {
  PartialSlots(const RingProblem& p, size_t tokens, int ranks)
      : rows(tokens * p.H), slot(rows * (p.D + 1)), data(slot * ranks, 0.0f), D(p.D) {
    for (int r = 0; r < ranks; ++r) std::fill_n(lse(r), rows, kNoKeys);
  }
  float* o(int r) { return data.data() + r * slot; }
  float* lse(int r) { return o(r) + rows * D; }

  size_t rows, slot;
  std::vector<float> data;
  int D;
};

template <class E>
void check_inputs(const RingProblem& p, const RankLayout& layout, int rank,
                  const LocalInputs<E>& in) {
  const auto q_size = static_cast<size_t>(shard_tokens(layout.queries[rank])) * p.H * p.D;
  const auto kv_size = static_cast<size_t>(shard_tokens(layout.kv[rank])) * p.H_kv * p.D;
  if (in.q.size() != q_size || in.k.size() != kv_size || in.v.size() != kv_size)
    throw std::invalid_argument(
        "ring attention: rank " + std::to_string(rank) + "'s inputs do not match its shard (q " +
        std::to_string(in.q.size()) + " of " + std::to_string(q_size) + ", k/v " +
        std::to_string(in.k.size()) + " of " + std::to_string(kv_size) + " elements)");
}

// The ring both pass-KV and pass-Q run: N steps; at each, the block in hand
// leaves for the next rank while compute(step, block, timing) works on it
// (the transfer is posted first, so it overlaps the compute), then the block
// from the previous rank takes its place. Block: data() and size() elements.
template <class Block, class Compute>
void rotate_ring(comm::Communicator& comm, DType type, Block& held, Block& arriving,
                 Compute&& compute, RingTiming& timing) {
  const int ranks = comm.size();
  for (int step = 0; step < ranks; ++step) {
    StepTiming step_timing;
    comm::Request transfer;
    if (step + 1 < ranks)
      transfer = comm.start_ring_step(held.data(), arriving.data(), held.size(), type);
    compute(step, held, step_timing);
    if (transfer.active()) step_timing.comm_wait = wait_timed(transfer);
    std::swap(held, arriving);
    timing.steps.push_back(step_timing);
  }
}

}  // namespace

// The algorithms ------------------------------------------------------------------

template <class E>
RingOutput pass_kv(comm::Communicator& comm, const RingProblem& p, const LocalInputs<E>& in) {
  Stopwatch total;
  const int ranks = comm.size(), me = comm.rank();
  const RankLayout layout = layout_of(p, ranks);
  check_inputs(p, layout, me, in);
  const Shard& my_queries = layout.queries[me];
  RingOutput out = empty_output(p, shard_tokens(my_queries));
  Scratch scratch;

  // Double buffering: `held` is attended while `arriving` receives the next block.
  const size_t block_tokens = max_tokens(layout.kv);
  KvBlock<E> held(p, block_tokens, in), arriving(p, block_tokens);
  rotate_ring(
      comm, dtype_of<E>(), held, arriving,
      [&](int step, const KvBlock<E>& block, StepTiming& timing) {
        const Shard& block_kv = layout.kv[ring_source(me, step, ranks)];
        attend_shard(p, my_queries, in.q.data(), block_kv, block.k(), block.v(), out.o.data(),
                     out.lse.data(), scratch, timing);
      },
      out.timing);
  out.timing.total = total.seconds();
  return out;
}

template <class E>
RingOutput pass_q(comm::Communicator& comm, const RingProblem& p, const LocalInputs<E>& in) {
  Stopwatch total;
  const int ranks = comm.size(), me = comm.rank();
  const RankLayout layout = layout_of(p, ranks);
  check_inputs(p, layout, me, in);
  const size_t q_tokens = max_tokens(layout.queries);
  const size_t my_tokens = shard_tokens(layout.queries[me]);
  RingOutput out = empty_output(p, my_tokens);
  Scratch scratch;

  // 1. Visiting query shards travel the ring (double-buffered, padded); each
  //    one's partial result against the local K/V goes to its owner's slot.
  std::vector<E> held(q_tokens * p.H * p.D, E{}), arriving(held.size(), E{});
  std::copy(in.q.begin(), in.q.end(), held.begin());
  PartialSlots partials(p, q_tokens, ranks);
  rotate_ring(
      comm, dtype_of<E>(), held, arriving,
      [&](int step, const std::vector<E>& block, StepTiming& timing) {
        const int owner = ring_source(me, step, ranks);
        attend_shard(p, layout.queries[owner], block.data(), layout.kv[me], in.k.data(),
                     in.v.data(), partials.o(owner), partials.lse(owner), scratch, timing);
      },
      out.timing);

  // 2. One all-to-all returns every partial to its owner: slot r of the
  //    result holds rank r's partial for this rank's queries.
  PartialSlots mine(p, q_tokens, ranks);
  Stopwatch watch;
  comm.alltoall(partials.data.data(), mine.data.data(), partials.slot, DType::f32);
  out.timing.all2all = watch.seconds();

  // 3. Merge the N partials of each query row by their LSE.
  watch.restart();
  std::vector<const float*> o_parts, lse_parts;
  for (int r = 0; r < ranks; ++r) {
    o_parts.push_back(mine.o(r));
    lse_parts.push_back(mine.lse(r));
  }
  kernels::cpu::attention_merge(my_tokens * p.H, p.D, o_parts, lse_parts, out.o.data(),
                                out.lse.data());
  out.timing.final_merge = watch.seconds();
  out.timing.total = total.seconds();
  return out;
}

template <class E>
RingOutput all_gather_kv(comm::Communicator& comm, const RingProblem& p, const LocalInputs<E>& in) {
  Stopwatch total;
  const int ranks = comm.size(), me = comm.rank();
  const RankLayout layout = layout_of(p, ranks);
  check_inputs(p, layout, me, in);
  const Shard& my_queries = layout.queries[me];
  RingOutput out = empty_output(p, shard_tokens(my_queries));
  Scratch scratch;
  StepTiming timing;

  // 1. Every rank's padded K/V block, gathered on every rank.
  const size_t block_tokens = max_tokens(layout.kv);
  KvBlock<E> mine(p, block_tokens, in);
  std::vector<E> gathered(mine.size() * ranks);
  Stopwatch watch;
  comm.allgather(mine.data(), gathered.data(), mine.size(), dtype_of<E>());
  timing.comm_wait = watch.seconds();

  // 2. Local attention against each rank's block in turn.
  for (int r = 0; r < ranks; ++r) {
    const E* block = gathered.data() + r * mine.size();
    attend_shard(p, my_queries, in.q.data(), layout.kv[r], block, block + mine.size() / 2,
                 out.o.data(), out.lse.data(), scratch, timing);
  }
  out.timing.steps.push_back(timing);
  out.timing.total = total.seconds();
  return out;
}

template <class E>
RingOutput ring_attention(Algorithm algorithm, comm::Communicator& comm, const RingProblem& p,
                          const LocalInputs<E>& in) {
  switch (algorithm) {
    case Algorithm::pass_kv:
      return pass_kv(comm, p, in);
    case Algorithm::pass_q:
      return pass_q(comm, p, in);
    case Algorithm::all_gather:
      return all_gather_kv(comm, p, in);
  }
  throw std::invalid_argument("ring attention: unknown algorithm");
}

#define PARALAB_RING_INSTANTIATE(E)                                                            \
  template RingOutput pass_kv(comm::Communicator&, const RingProblem&, const LocalInputs<E>&); \
  template RingOutput pass_q(comm::Communicator&, const RingProblem&, const LocalInputs<E>&);  \
  template RingOutput all_gather_kv(comm::Communicator&, const RingProblem&,                   \
                                    const LocalInputs<E>&);                                    \
  template RingOutput ring_attention(Algorithm, comm::Communicator&, const RingProblem&,       \
                                     const LocalInputs<E>&);
PARALAB_RING_INSTANTIATE(float)
PARALAB_RING_INSTANTIATE(bf16)
#undef PARALAB_RING_INSTANTIATE

}  // namespace paralab::ring
