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
#include "ring/schedule.hpp"

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

double wait_timed(comm::Request& request) {
  Stopwatch watch;
  request.wait();
  return watch.seconds();
}

// Partial results of one kernel call, reused across calls.
struct Scratch {
  std::vector<float> o, lse;
};

// Row 0 of the tensors a call reads and accumulates into; the call's q_row
// and kv_row index from there.
template <class E>
struct CallBases {
  const E* q;
  const E* k;
  const E* v;
  float* o;
  float* lse;
};

// Runs one step's kernel calls, each merged by LSE into its queries'
// accumulators; bases(call) says where the call's tensors are.
template <class E, class Bases>
void run_calls(const RingProblem& p, const std::vector<AttentionCall>& calls, Bases&& bases,
               Scratch& scratch, StepTiming& timing) {
  const size_t q_row = static_cast<size_t>(p.H) * p.D;
  const size_t kv_row = static_cast<size_t>(p.H_kv) * p.D;
  for (const AttentionCall& call : calls) {
    const CallBases<E> base = bases(call);
    const size_t rows = static_cast<size_t>(call.q.length) * p.H;
    scratch.o.resize(rows * p.D);
    scratch.lse.resize(rows);
    const auto q_at = static_cast<size_t>(call.q_row), kv_at = static_cast<size_t>(call.kv_row);
    Stopwatch watch;
    kernels::cpu::attention_forward(attention_args(p, call), base.q + q_at * q_row,
                                    base.k + kv_at * kv_row, base.v + kv_at * kv_row,
                                    scratch.o.data(), scratch.lse.data());
    timing.attention += watch.seconds();
    watch.restart();
    kernels::cpu::attention_merge_into(rows, p.D, base.o + q_at * q_row, base.lse + q_at * p.H,
                                       scratch.o.data(), scratch.lse.data());
    timing.merge += watch.seconds();
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

// A message buffer of `count` elements in workspace storage. Padding past
// the rank's own rows is never read by a kernel call, so it is not cleared.
template <class E>
struct Block {
  E* ptr = nullptr;
  size_t count = 0;
  E* data() { return ptr; }
  const E* data() const { return ptr; }
  size_t size() const { return count; }
};

// One rank's K and V in a single message: K then V, each in its half.
template <class E>
struct KvBlock : Block<E> {
  const E* k() const { return this->ptr; }
  const E* v() const { return this->ptr + this->count / 2; }
};

template <class E>
KvBlock<E> kv_block(RingWorkspace& ws, int slot, size_t elements) {
  return {{ws.template buffer<E>(slot, elements), elements}};
}

template <class E>
void pack_kv(KvBlock<E>& block, const LocalInputs<E>& in) {
  std::copy(in.k.begin(), in.k.end(), block.ptr);
  std::copy(in.v.begin(), in.v.end(), block.ptr + block.count / 2);
}

// pass-Q's partial results, one all-to-all slot of `slot` floats per rank:
// O [rows, D] then LSE [rows], rows = slot / (D + 1) (the largest shard's);
// reset to "no keys yet" (O = 0, LSE = -inf), which rows no call reaches keep.
struct PartialSlots {
  PartialSlots(RingWorkspace& ws, int slot_id, const RingProblem& p, size_t slot_floats, int ranks)
      : rows(slot_floats / (p.D + 1)),
        slot(slot_floats),
        data(ws.buffer<float>(slot_id, slot * ranks)),
        D(p.D) {
    for (int r = 0; r < ranks; ++r) {
      std::fill_n(o(r), rows * D, 0.0f);
      std::fill_n(lse(r), rows, kNoKeys);
    }
  }
  float* o(int r) { return data + r * slot; }
  float* lse(int r) { return o(r) + rows * D; }

  size_t rows, slot;
  float* data;
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

// The algorithms, each running its schedule ----------------------------------------

template <class E>
RingOutput run_pass_kv(comm::Communicator& comm, const RingProblem& p, const RankLayout& layout,
                       const RingSchedule& plan, const LocalInputs<E>& in, RingWorkspace& ws) {
  Stopwatch total;
  const int me = comm.rank();
  RingOutput out = empty_output(p, shard_tokens(layout.queries[me]));
  Scratch scratch;

  // Double buffering: `held` is attended while `arriving` receives the next block.
  Stopwatch setup;
  KvBlock<E> held = kv_block<E>(ws, 0, plan.block_elements);
  KvBlock<E> arriving = kv_block<E>(ws, 1, plan.block_elements);
  pack_kv(held, in);
  out.timing.setup = setup.seconds();
  rotate_ring(
      comm, dtype_of<E>(), held, arriving,
      [&](int step, const KvBlock<E>& block, StepTiming& timing) {
        run_calls<E>(
            p, plan.steps[me][step].calls,
            [&](const AttentionCall&) {
              return CallBases<E>{in.q.data(), block.k(), block.v(), out.o.data(), out.lse.data()};
            },
            scratch, timing);
      },
      out.timing);
  out.timing.total = total.seconds();
  return out;
}

template <class E>
RingOutput run_pass_q(comm::Communicator& comm, const RingProblem& p, const RankLayout& layout,
                      const RingSchedule& plan, const LocalInputs<E>& in, RingWorkspace& ws) {
  Stopwatch total;
  const int ranks = comm.size(), me = comm.rank();
  RingOutput out = empty_output(p, shard_tokens(layout.queries[me]));
  Scratch scratch;

  // 1. Visiting query shards travel the ring (double-buffered, padded); each
  //    one's partial result against the local K/V goes to its owner's slot.
  Stopwatch setup;
  Block<E> held{ws.template buffer<E>(0, plan.block_elements), plan.block_elements};
  Block<E> arriving{ws.template buffer<E>(1, plan.block_elements), plan.block_elements};
  std::copy(in.q.begin(), in.q.end(), held.ptr);
  PartialSlots partials(ws, 2, p, plan.all2all_slot_floats, ranks);
  PartialSlots mine(ws, 3, p, plan.all2all_slot_floats, ranks);
  out.timing.setup = setup.seconds();
  rotate_ring(
      comm, dtype_of<E>(), held, arriving,
      [&](int step, const Block<E>& block, StepTiming& timing) {
        run_calls<E>(
            p, plan.steps[me][step].calls,
            [&](const AttentionCall& call) {
              return CallBases<E>{block.data(), in.k.data(), in.v.data(), partials.o(call.q_owner),
                                  partials.lse(call.q_owner)};
            },
            scratch, timing);
      },
      out.timing);

  // 2. One all-to-all returns every partial to its owner: slot r of the
  //    result holds rank r's partial for this rank's queries.
  Stopwatch watch;
  comm.alltoall(partials.data, mine.data, partials.slot, DType::f32);
  out.timing.all2all = watch.seconds();

  // 3. Merge the N partials of each query row by their LSE.
  watch.restart();
  std::vector<const float*> o_parts, lse_parts;
  for (int r = 0; r < ranks; ++r) {
    o_parts.push_back(mine.o(r));
    lse_parts.push_back(mine.lse(r));
  }
  kernels::cpu::attention_merge(plan.final_merge_rows[me], p.D, o_parts, lse_parts, out.o.data(),
                                out.lse.data());
  out.timing.final_merge = watch.seconds();
  out.timing.total = total.seconds();
  return out;
}

template <class E>
RingOutput run_all_gather(comm::Communicator& comm, const RingProblem& p, const RankLayout& layout,
                          const RingSchedule& plan, const LocalInputs<E>& in, RingWorkspace& ws) {
  Stopwatch total;
  const int ranks = comm.size(), me = comm.rank();
  RingOutput out = empty_output(p, shard_tokens(layout.queries[me]));
  Scratch scratch;
  StepTiming timing;

  // 1. Every rank's padded K/V block, gathered on every rank.
  Stopwatch setup;
  KvBlock<E> mine = kv_block<E>(ws, 0, plan.block_elements);
  pack_kv(mine, in);
  E* gathered = ws.template buffer<E>(1, mine.size() * ranks);
  out.timing.setup = setup.seconds();
  Stopwatch watch;
  comm.allgather(mine.data(), gathered, mine.size(), dtype_of<E>());
  timing.comm_wait = watch.seconds();

  // 2. Local attention against every rank's block.
  run_calls<E>(
      p, plan.steps[me][0].calls,
      [&](const AttentionCall& call) {
        const E* block = gathered + call.kv_owner * mine.size();
        return CallBases<E>{in.q.data(), block, block + mine.size() / 2, out.o.data(),
                            out.lse.data()};
      },
      scratch, timing);
  out.timing.steps.push_back(timing);
  out.timing.total = total.seconds();
  return out;
}

}  // namespace

template <class E>
RingOutput run_ring(comm::Communicator& comm, const RingProblem& p, const RankLayout& layout,
                    const RingSchedule& plan, const LocalInputs<E>& in, RingWorkspace* workspace) {
  RingWorkspace local;
  RingWorkspace& ws = workspace ? *workspace : local;
  if (plan.ranks != comm.size() || layout.queries.size() != static_cast<size_t>(comm.size()))
    throw std::invalid_argument("ring attention: the schedule was planned for " +
                                std::to_string(plan.ranks) + " ranks, the communicator has " +
                                std::to_string(comm.size()));
  check_inputs(p, layout, comm.rank(), in);
  switch (plan.algorithm) {
    case Algorithm::pass_kv:
      return run_pass_kv(comm, p, layout, plan, in, ws);
    case Algorithm::pass_q:
      return run_pass_q(comm, p, layout, plan, in, ws);
    case Algorithm::all_gather:
      return run_all_gather(comm, p, layout, plan, in, ws);
  }
  throw std::invalid_argument("ring attention: unknown algorithm");
}

template <class E>
RingOutput ring_attention(Algorithm algorithm, comm::Communicator& comm, const RingProblem& p,
                          const LocalInputs<E>& in) {
  const RankLayout layout = layout_of(p, comm.size());
  return run_ring(comm, p, layout, plan_ring(algorithm, p, layout), in);
}

template <class E>
RingOutput pass_kv(comm::Communicator& comm, const RingProblem& p, const LocalInputs<E>& in) {
  return ring_attention(Algorithm::pass_kv, comm, p, in);
}
template <class E>
RingOutput pass_q(comm::Communicator& comm, const RingProblem& p, const LocalInputs<E>& in) {
  return ring_attention(Algorithm::pass_q, comm, p, in);
}
template <class E>
RingOutput all_gather_kv(comm::Communicator& comm, const RingProblem& p, const LocalInputs<E>& in) {
  return ring_attention(Algorithm::all_gather, comm, p, in);
}

#define PARALAB_RING_INSTANTIATE(E)                                                            \
  template RingOutput pass_kv(comm::Communicator&, const RingProblem&, const LocalInputs<E>&); \
  template RingOutput pass_q(comm::Communicator&, const RingProblem&, const LocalInputs<E>&);  \
  template RingOutput all_gather_kv(comm::Communicator&, const RingProblem&,                   \
                                    const LocalInputs<E>&);                                    \
  template RingOutput ring_attention(Algorithm, comm::Communicator&, const RingProblem&,       \
                                     const LocalInputs<E>&);                                   \
  template RingOutput run_ring(comm::Communicator&, const RingProblem&, const RankLayout&,     \
                               const RingSchedule&, const LocalInputs<E>&, RingWorkspace*);
PARALAB_RING_INSTANTIATE(float)
PARALAB_RING_INSTANTIATE(bf16)
#undef PARALAB_RING_INSTANTIATE

}  // namespace paralab::ring
