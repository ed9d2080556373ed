// Context-parallel ring attention (pass-KV, pass-Q, all-gather); see
// ring_attention.hpp. The algorithms' control flow is their program
// (program.hpp); the measure executor below binds its operations to the CPU
// kernels and Communicator calls, on buffers laid out per algorithm.
#include "ring/ring_attention.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "core/errors.hpp"
#include "core/timer.hpp"
#include "kernels/attention.hpp"
#include "ring/program.hpp"
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

// Buffers ----------------------------------------------------------------------

// Accumulators for `tokens` query tokens before any key: O = 0, LSE = -inf.
RingOutput empty_output(const RingProblem& p, size_t tokens) {
  RingOutput out;
  out.o.assign(tokens * p.H * p.D, 0.0f);
  out.lse.assign(tokens * p.H, kNoKeys);
  return out;
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
  float* o(int r) const { return data + r * slot; }
  float* lse(int r) const { return o(r) + rows * D; }

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

// The measure executor ---------------------------------------------------------

// This rank's operations of the ring's program (program.hpp), each bound to
// a kernel or a Communicator call; the control flow is the program's. The
// algorithms differ only in where a kernel call's tensors are (bases()).
template <class E>
class Executor {
 public:
  Executor(comm::Communicator& comm, const RingProblem& p, const RankLayout& layout,
           const RingSchedule& plan, const LocalInputs<E>& in, RingWorkspace& ws)
      : comm_(comm), p_(p), plan_(plan), in_(in), me_(comm.rank()) {
    out_ = empty_output(p, shard_tokens(layout.queries[me_]));
    out_.timing.steps.resize(plan.steps[me_].size());
    Stopwatch setup;
    allocate(ws);
    out_.timing.setup = setup.seconds();
  }

  RingOutput run(const schedule::Program& program) {
    Stopwatch total;
    for (const schedule::Op& op : program.ops(me_)) execute(op);
    out_.timing.total = total.seconds() + out_.timing.setup;
    return std::move(out_);
  }

 private:
  // Message buffers, packed with this rank's block: the ring's two (the
  // block in hand at step k is ring_[k % 2], the other receives the next),
  // or all-gather's own block and the gathered ones; pass-Q's partial slots.
  void allocate(RingWorkspace& ws) {
    const size_t n = plan_.block_elements;
    for (int b = 0; b < 2; ++b) ring_[b] = ws.template buffer<E>(b, n);
    if (plan_.algorithm == Algorithm::pass_q) {
      std::copy(in_.q.begin(), in_.q.end(), ring_[0]);
      partials_.emplace(ws, 2, p_, plan_.all2all_slot_floats, comm_.size());
      returned_.emplace(ws, 3, p_, plan_.all2all_slot_floats, comm_.size());
      return;
    }
    // K then V, each in its half of the block.
    std::copy(in_.k.begin(), in_.k.end(), ring_[0]);
    std::copy(in_.v.begin(), in_.v.end(), ring_[0] + n / 2);
    if (plan_.algorithm == Algorithm::all_gather)
      gathered_ = ws.template buffer<E>(1, n * comm_.size());
  }

  CallBases<E> bases(const AttentionCall& call, int step) {
    const size_t half = plan_.block_elements / 2;
    switch (plan_.algorithm) {
      case Algorithm::pass_kv: {
        const E* block = ring_[step % 2];
        return {in_.q.data(), block, block + half, out_.o.data(), out_.lse.data()};
      }
      case Algorithm::pass_q:
        return {ring_[step % 2], in_.k.data(), in_.v.data(), partials_->o(call.q_owner),
                partials_->lse(call.q_owner)};
      case Algorithm::all_gather: {
        const E* block = gathered_ + call.kv_owner * plan_.block_elements;
        return {in_.q.data(), block, block + half, out_.o.data(), out_.lse.data()};
      }
    }
    throw std::logic_error("ring attention: unknown algorithm");
  }

  void execute(const schedule::Op& op) {
    const int k = op.ref.step;
    switch (role_of(op)) {
      case RingRole::ring_send:
        break;  // posted together with its receive: one ring step
      case RingRole::ring_recv:
        transfer_ = comm_.start_ring_step(ring_[k % 2], ring_[(k + 1) % 2], plan_.block_elements,
                                          dtype_of<E>());
        break;
      case RingRole::attention:
        attention(plan_.steps[me_][k].calls[op.ref.item], k);
        break;
      case RingRole::merge:
        merge(plan_.steps[me_][k].calls[op.ref.item], k);
        break;
      case RingRole::step_wait:
        if (transfer_.active()) out_.timing.steps[k].comm_wait = wait_timed(transfer_);
        break;
      case RingRole::all_gather: {
        Stopwatch watch;
        comm_.allgather(ring_[0], gathered_, plan_.block_elements, dtype_of<E>());
        out_.timing.steps[0].comm_wait = watch.seconds();
        break;
      }
      case RingRole::all_to_all: {
        // Slot r of the result holds rank r's partial for this rank's queries.
        Stopwatch watch;
        comm_.alltoall(partials_->data, returned_->data, partials_->slot, DType::f32);
        out_.timing.all2all = watch.seconds();
        break;
      }
      case RingRole::final_merge:
        final_merge();
        break;
    }
  }

  void attention(const AttentionCall& call, int step) {
    const CallBases<E> base = bases(call, step);
    const size_t rows = static_cast<size_t>(call.q.length) * p_.H;
    scratch_.o.resize(rows * p_.D);
    scratch_.lse.resize(rows);
    const size_t q_row = static_cast<size_t>(p_.H) * p_.D,
                 kv_row = static_cast<size_t>(p_.H_kv) * p_.D;
    const auto q_at = static_cast<size_t>(call.q_row), kv_at = static_cast<size_t>(call.kv_row);
    Stopwatch watch;
    kernels::cpu::attention_forward(attention_args(p_, call), base.q + q_at * q_row,
                                    base.k + kv_at * kv_row, base.v + kv_at * kv_row,
                                    scratch_.o.data(), scratch_.lse.data());
    out_.timing.steps[step].attention += watch.seconds();
  }

  // The last attention call's partial, merged by LSE into its queries' accumulators.
  void merge(const AttentionCall& call, int step) {
    const CallBases<E> base = bases(call, step);
    const size_t rows = static_cast<size_t>(call.q.length) * p_.H;
    const auto q_at = static_cast<size_t>(call.q_row);
    Stopwatch watch;
    kernels::cpu::attention_merge_into(rows, p_.D, base.o + q_at * p_.H * p_.D,
                                       base.lse + q_at * p_.H, scratch_.o.data(),
                                       scratch_.lse.data());
    out_.timing.steps[step].merge += watch.seconds();
  }

  // pass-Q: the N partials of each query row, merged by their LSE.
  void final_merge() {
    Stopwatch watch;
    std::vector<const float*> o_parts, lse_parts;
    for (int r = 0; r < comm_.size(); ++r) {
      o_parts.push_back(returned_->o(r));
      lse_parts.push_back(returned_->lse(r));
    }
    kernels::cpu::attention_merge(plan_.final_merge_rows[me_], p_.D, o_parts, lse_parts,
                                  out_.o.data(), out_.lse.data());
    out_.timing.final_merge = watch.seconds();
  }

  comm::Communicator& comm_;
  const RingProblem& p_;
  const RingSchedule& plan_;
  const LocalInputs<E>& in_;
  const int me_;
  RingOutput out_;
  E* ring_[2] = {};
  E* gathered_ = nullptr;
  std::optional<PartialSlots> partials_, returned_;
  Scratch scratch_;  // the last attention call's partial, until its merge
  comm::Request transfer_;
};

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
  const schedule::Program program =
      ring_program(plan, {static_cast<int>(sizeof(E)), static_cast<int>(sizeof(float))});
  return Executor<E>(comm, p, layout, plan, in, ws).run(program);
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
