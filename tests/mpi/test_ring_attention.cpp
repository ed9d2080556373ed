// Context-parallel attention (lib/ring) against single-rank attention over the
// whole sequence: every algorithm, both shardings, causal and document masks,
// GQA, token counts that do not divide by 2N, and persistent-KV prefill.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "comm/comm.hpp"
#include "core/bf16.hpp"
#include "core/errors.hpp"
#include "kernels/attention.hpp"
#include "kernels/threads.hpp"
#include "ring/ring_attention.hpp"
#include "ring/sharding.hpp"

using paralab::bf16;
using paralab::UsageError;
using paralab::comm::Communicator;
using namespace paralab::ring;

namespace {

std::unique_ptr<Communicator> world_comm() {
  return paralab::comm::make_mpi_communicator(MPI_COMM_WORLD);
}
std::unique_ptr<Communicator> self_comm() {
  return paralab::comm::make_mpi_communicator(MPI_COMM_SELF);
}

enum class MaskKind { causal, causal_documents, documents };
const char* mask_name(MaskKind m) {
  return m == MaskKind::causal ? "causal" : m == MaskKind::documents ? "documents" : "causal_docs";
}

// Document starts over S positions: one crosses the cache/new boundary, one
// document is empty, and a short one sits at the end.
std::vector<int64_t> documents_for(int64_t S) {
  return {0, S / 5, S / 5, S / 2, S - 3};
}

RingProblem problem_for(int64_t T, int64_t P, MaskKind mask, Sharding sharding) {
  RingProblem p;
  p.T = T;
  p.P = P;
  p.H = 8;
  p.H_kv = 2;
  p.D = 64;
  p.causal = mask != MaskKind::documents;
  if (mask != MaskKind::causal) p.doc_starts = documents_for(T + P);
  p.sharding = sharding;
  return p;
}

// The full sequence's tensors, identical on every rank (same seed).
template <class E>
struct FullInputs {
  std::vector<E> q;     // [T, H, D], positions P..P+T-1
  std::vector<E> k, v;  // [P + T, H_kv, D], positions 0..P+T-1
};

template <class E>
E from_float(float x) {
  if constexpr (std::is_same_v<E, float>) {
    return x;
  } else {
    return paralab::float_to_bf16_rne(x);
  }
}

template <class E>
FullInputs<E> random_inputs(const RingProblem& p, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-2.0f, 2.0f);
  auto fill = [&](size_t n) {
    std::vector<E> x(n);
    for (E& e : x) e = from_float<E>(uniform(rng));
    return x;
  };
  FullInputs<E> in;
  in.q = fill(static_cast<size_t>(p.T) * p.H * p.D);
  in.k = fill(static_cast<size_t>(p.T + p.P) * p.H_kv * p.D);
  in.v = fill(static_cast<size_t>(p.T + p.P) * p.H_kv * p.D);
  return in;
}

struct Result {
  std::vector<float> o, lse;
};

paralab::kernels::AttentionArgs full_args(const RingProblem& p) {
  paralab::kernels::AttentionArgs args;
  args.shape = {static_cast<int>(p.T), static_cast<int>(p.T + p.P), p.H, p.H_kv, p.D};
  args.mask = {p.causal, p.P, 0, p.doc_starts};
  args.scale = p.scale;
  return args;
}

// Single-rank attention of all new tokens against the whole sequence.
template <class E>
Result single_rank(const RingProblem& p, const FullInputs<E>& in, bool use_reference = false) {
  Result r{std::vector<float>(in.q.size()), std::vector<float>(p.T * p.H)};
  if (use_reference) {
    paralab::kernels::reference::attention_forward(full_args(p), in.q.data(), in.k.data(),
                                                   in.v.data(), r.o.data(), r.lse.data());
  } else {
    paralab::kernels::cpu::attention_forward(full_args(p), in.q.data(), in.k.data(), in.v.data(),
                                             r.o.data(), r.lse.data());
  }
  return r;
}

// Runs `algorithm` on `comm` from this rank's share of `in`; every rank gets
// the gathered full output.
template <class E>
Result distributed(Algorithm algorithm, Communicator& comm, const RingProblem& p,
                   const FullInputs<E>& in, RingTiming* timing = nullptr) {
  const RankLayout layout = layout_of(p, comm.size());
  const int me = comm.rank();
  const size_t q_row = static_cast<size_t>(p.H) * p.D, kv_row = static_cast<size_t>(p.H_kv) * p.D;
  const auto q = take_rows<E>(in.q, q_row, layout.queries[me], p.P);
  const auto k = take_rows<E>(in.k, kv_row, layout.kv[me], 0);
  const auto v = take_rows<E>(in.v, kv_row, layout.kv[me], 0);
  RingOutput out = ring_attention<E>(algorithm, comm, p, {q, k, v});
  if (timing) *timing = out.timing;
  return {gather_rows(comm, out.o, q_row, layout.queries, p.P, p.T),
          gather_rows(comm, out.lse, p.H, layout.queries, p.P, p.T)};
}

// max |x - ref| / max |ref|; equal infinities (LSE of rows that see no key)
// count as exact, any other non-finite value as infinitely wrong.
double relative_error(const std::vector<float>& x, const std::vector<float>& ref) {
  double worst = 0, scale = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (x[i] == ref[i]) continue;
    if (!std::isfinite(x[i]) || !std::isfinite(ref[i])) return INFINITY;
    worst = std::max(worst, std::abs(double(x[i]) - ref[i]));
  }
  for (float r : ref)
    if (std::isfinite(r)) scale = std::max(scale, std::abs(double(r)));
  return scale > 0 ? worst / scale : worst;
}

struct Errors {
  double o = 0, lse = 0;
};
Errors errors(const Result& got, const Result& want) {
  return {relative_error(got.o, want.o), relative_error(got.lse, want.lse)};
}

// FP32 inputs: exact up to FP32 rounding. BF16 inputs: the kernel rounds the
// probabilities P to BF16 before P V, relative to each key block's running
// maximum, so splitting the keys differently moves O by up to about one BF16
// rounding (2^-8); partial results and merges stay FP32.
template <class E>
constexpr double kTolerance = std::is_same_v<E, float> ? 1e-5 : 1.0 / 128;
constexpr Algorithm kAlgorithms[] = {Algorithm::pass_kv, Algorithm::pass_q, Algorithm::all_gather};
constexpr Sharding kShardings[] = {Sharding::load_balanced, Sharding::contiguous};
constexpr MaskKind kMasks[] = {MaskKind::causal, MaskKind::causal_documents, MaskKind::documents};

std::string describe(Algorithm a, const RingProblem& p, MaskKind m) {
  return std::string(algorithm_name(a)) + " " + std::string(sharding_name(p.sharding)) + " " +
         mask_name(m) + " T=" + std::to_string(p.T) + " P=" + std::to_string(p.P);
}

// Every algorithm x sharding x mask at (T, P), against single-rank attention
// and against the same algorithm on one rank (the error must not grow with N).
template <class E>
void check_all(int64_t T, int64_t P) {
  auto comm = world_comm();
  auto self = self_comm();
  for (MaskKind mask : kMasks) {
    for (Sharding sharding : kShardings) {
      const RingProblem p = problem_for(T, P, mask, sharding);
      const auto in = random_inputs<E>(p, 1234 + static_cast<unsigned>(T + P));
      const Result want = single_rank(p, in);
      for (Algorithm algorithm : kAlgorithms) {
        SCOPED_TRACE(describe(algorithm, p, mask));
        const Errors at_n = errors(distributed(algorithm, *comm, p, in), want);
        const Errors at_1 = errors(distributed(algorithm, *self, p, in), want);
        EXPECT_LT(at_n.o, kTolerance<E>);
        EXPECT_LT(at_n.lse, kTolerance<E>);
        // Reordering the LSE merges moves results by a few FP32 roundings at
        // most; growth with N beyond that would mean lost or doubled keys.
        EXPECT_LE(at_n.o, 4 * at_1.o + 1e-6);
        EXPECT_LE(at_n.lse, 4 * at_1.lse + 1e-6);
      }
    }
  }
}

// Ranks share the host's cores, as the apps arrange: without this every rank's
// OpenMP team would spin on all cores and oversubscribed runs crawl.
class RingAttention : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    MPI_Comm host;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &host);
    int host_ranks = 1;
    MPI_Comm_size(host, &host_ranks);
    MPI_Comm_free(&host);
    saved_threads_ = paralab::kernels::threads();
    paralab::kernels::set_threads(paralab::kernels::default_threads(host_ranks));
  }
  static void TearDownTestSuite() { paralab::kernels::set_threads(saved_threads_); }

 private:
  static inline int saved_threads_ = 1;
};

}  // namespace

// Sharding ----------------------------------------------------------------------

TEST(RingSharding, LoadBalancedChunksAreEvenAndMirrored) {
  for (int ranks = 1; ranks <= 5; ++ranks) {
    for (int64_t T : {int64_t{ranks}, int64_t{37}, int64_t{101}}) {
      const auto chunks = split_even(10, T, 2 * ranks);
      std::set<int64_t> seen;
      for (int r = 0; r < ranks; ++r) {
        const Shard shard = shard_of(Sharding::load_balanced, 10, T, ranks, r);
        ASSERT_GE(shard_tokens(shard), 1) << "ranks " << ranks << " T " << T;
        EXPECT_EQ(shard.front(), chunks[r]);
        if (chunks[2 * ranks - 1 - r].length > 0) {
          EXPECT_EQ(shard.back(), chunks[2 * ranks - 1 - r]);
        }
        for (const Piece& piece : shard)
          for (int64_t t = piece.start; t < piece.end(); ++t) EXPECT_TRUE(seen.insert(t).second);
      }
      EXPECT_EQ(static_cast<int64_t>(seen.size()), T);
      EXPECT_EQ(*seen.begin(), 10);
      int64_t shortest = T, longest = 0;
      for (const Piece& c : chunks) {
        shortest = std::min(shortest, c.length);
        longest = std::max(longest, c.length);
      }
      EXPECT_LE(longest - shortest, 1);
    }
  }
}

TEST(RingSharding, ContiguousAndCacheShardsCoverInOrder) {
  const Shard a = shard_of(Sharding::contiguous, 5, 11, 3, 0);
  const Shard b = shard_of(Sharding::contiguous, 5, 11, 3, 2);
  EXPECT_EQ(a, (Shard{{5, 4}}));
  EXPECT_EQ(b, (Shard{{13, 3}}));  // 11 = 4 + 4 + 3
  EXPECT_EQ(cache_shard_of(2, 4, 1), (Shard{{1, 1}}));
  EXPECT_TRUE(cache_shard_of(2, 4, 3).empty());
}

TEST(RingSharding, GatherUndoesTake) {
  auto comm = world_comm();
  const int64_t T = 29;
  std::vector<float> full(T * 3);
  for (size_t i = 0; i < full.size(); ++i) full[i] = static_cast<float>(i);
  std::vector<Shard> shards;
  for (int r = 0; r < comm->size(); ++r)
    shards.push_back(shard_of(Sharding::load_balanced, 7, T, comm->size(), r));
  const auto mine = take_rows<float>(full, 3, shards[comm->rank()], 7);
  EXPECT_EQ(gather_rows(*comm, mine, 3, shards, 7, T), full);
}

// Exactness -------------------------------------------------------------------------

TEST_F(RingAttention, FullPrefillFp32) {
  check_all<float>(37, 0);
  check_all<float>(101, 0);
}

TEST_F(RingAttention, PersistentKvPrefillFp32) {
  check_all<float>(37, 23);
  check_all<float>(101, 50);
  check_all<float>(9, 3);  // a cache shorter than some rank counts' cache shards
}

TEST_F(RingAttention, Bf16Inputs) {
  check_all<bf16>(37, 11);
}

TEST_F(RingAttention, MatchesThePlainReference) {
  auto comm = world_comm();
  for (MaskKind mask : kMasks) {
    const RingProblem p = problem_for(13, 5, mask, Sharding::load_balanced);
    const auto in = random_inputs<float>(p, 7);
    const Result want = single_rank(p, in, /*use_reference=*/true);
    for (Algorithm algorithm : kAlgorithms) {
      SCOPED_TRACE(describe(algorithm, p, mask));
      const Errors e = errors(distributed(algorithm, *comm, p, in), want);
      EXPECT_LT(e.o, kTolerance<float>);
      EXPECT_LT(e.lse, kTolerance<float>);
    }
  }
}

TEST_F(RingAttention, TimingHasOneEntryPerRingStep) {
  auto comm = world_comm();
  const RingProblem p = problem_for(37, 8, MaskKind::causal, Sharding::load_balanced);
  const auto in = random_inputs<float>(p, 3);
  RingTiming timing;
  distributed(Algorithm::pass_kv, *comm, p, in, &timing);
  EXPECT_EQ(timing.steps.size(), static_cast<size_t>(comm->size()));
  EXPECT_GT(timing.summed().attention, 0.0);
  EXPECT_GE(timing.total, timing.summed().attention);
  distributed(Algorithm::pass_q, *comm, p, in, &timing);
  EXPECT_EQ(timing.steps.size(), static_cast<size_t>(comm->size()));
  EXPECT_GT(timing.final_merge, 0.0);
  distributed(Algorithm::all_gather, *comm, p, in, &timing);
  EXPECT_EQ(timing.steps.size(), 1u);
}

// Bad input ---------------------------------------------------------------------------

TEST_F(RingAttention, FewerTokensThanRanksIsAUsageErrorOnEveryRank) {
  auto comm = world_comm();
  RingProblem p = problem_for(comm->size() - 1, 4, MaskKind::causal, Sharding::load_balanced);
  try {
    validate(p, comm->size());
    FAIL() << "T < N was accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("must be at least the number of ranks"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(shard_of(Sharding::contiguous, 0, comm->size() - 1, comm->size(), 0), UsageError);
}

TEST_F(RingAttention, HeadsNotAMultipleOfKvHeadsIsAUsageError) {
  RingProblem p = problem_for(37, 0, MaskKind::causal, Sharding::load_balanced);
  p.H_kv = 3;
  try {
    validate(p, 1);
    FAIL() << "H = 8, H_kv = 3 was accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("H (8) must be a multiple of H_kv (3)"), std::string::npos)
        << e.what();
  }
}
