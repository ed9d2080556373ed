// Context-parallel attention (lib/parallel/cp_attention) against single-rank
// attention (kernels::cpu on the whole packed sequence): forward O and LSE,
// backward dQ, dK, dV gathered back to global order, at every CP size from 1
// to the world size (the first cp ranks of the world; the others wait), with
// GQA, documents whose lengths do not divide by 2 x cp, per-sequence-like,
// per-document-like and random shardings, and ranks that hold no token.
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/bf16.hpp"
#include "core/errors.hpp"
#include "kernels/attention.hpp"
#include "parallel/cp_attention.hpp"

namespace paralab::parallel {
namespace {

using packing::CpShards;
using packing::TokenRange;

constexpr int kHeads = 4, kKvHeads = 2, kHeadDim = 32;
constexpr float kScale = 0.2f;  // not 1/sqrt(D), so the scale is really passed on

int world_rank() {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

int world_size() {
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

// The first `ranks` ranks of the world as a communicator; MPI_COMM_NULL on the
// others. Creating it is collective over the world.
class FirstRanks {
 public:
  explicit FirstRanks(int ranks) {
    MPI_Comm_split(MPI_COMM_WORLD, world_rank() < ranks ? 0 : MPI_UNDEFINED, world_rank(), &comm_);
  }
  ~FirstRanks() {
    if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
  }
  FirstRanks(const FirstRanks&) = delete;
  FirstRanks& operator=(const FirstRanks&) = delete;
  MPI_Comm comm() const { return comm_; }
  bool member() const { return comm_ != MPI_COMM_NULL; }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
};

std::vector<int64_t> starts_of(const std::vector<int64_t>& doc_lengths) {
  std::vector<int64_t> starts;
  int64_t at = 0;
  for (int64_t length : doc_lengths) {
    starts.push_back(at);
    at += length;
  }
  return starts;
}

int64_t total_of(const std::vector<int64_t>& doc_lengths) {
  int64_t total = 0;
  for (int64_t length : doc_lengths) total += length;
  return total;
}

// Splits [begin, end) into 2 x cp chunks as equal as possible (the first
// `remainder` one token longer) and gives rank c chunks c and 2cp-1-c.
void deal_symmetric_chunks(int64_t begin, int64_t end, int cp, CpShards& shards) {
  const int chunks = 2 * cp;
  const int64_t base = (end - begin) / chunks, remainder = (end - begin) % chunks;
  std::vector<TokenRange> chunk(chunks);
  int64_t at = begin;
  for (int i = 0; i < chunks; ++i) {
    chunk[i] = {at, at + base + (i < remainder ? 1 : 0)};
    at = chunk[i].end;
  }
  for (int c = 0; c < cp; ++c) {
    shards[c].push_back(chunk[c]);
    shards[c].push_back(chunk[chunks - 1 - c]);
  }
}

// Per-sequence-like: the whole packed sequence in 2 x cp symmetric chunks.
CpShards per_sequence(const std::vector<int64_t>& doc_lengths, int cp) {
  CpShards shards(cp);
  deal_symmetric_chunks(0, total_of(doc_lengths), cp, shards);
  return shards;
}

// Per-document-like: every document in 2 x cp symmetric chunks, so a rank
// holds two pieces of every document (adjacent pieces stay separate ranges).
CpShards per_document(const std::vector<int64_t>& doc_lengths, int cp) {
  CpShards shards(cp);
  const std::vector<int64_t> starts = starts_of(doc_lengths);
  for (size_t d = 0; d < doc_lengths.size(); ++d)
    deal_symmetric_chunks(starts[d], starts[d] + doc_lengths[d], cp, shards);
  return shards;
}

// Arbitrary: the sequence cut at random points, each piece to a random rank.
CpShards random_shards(const std::vector<int64_t>& doc_lengths, int cp, uint32_t seed) {
  std::mt19937 rng(seed);
  const int64_t total = total_of(doc_lengths);
  CpShards shards(cp);
  int64_t at = 0;
  while (at < total) {
    const int64_t piece = std::min<int64_t>(total - at, 1 + rng() % 23);
    shards[rng() % cp].push_back({at, at + piece});
    at += piece;
  }
  return shards;
}

std::vector<float> random_values(size_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> out(count);
  for (float& x : out) x = dist(rng);
  return out;
}

// Every tensor of one problem over the whole sequence, and the single-rank
// results: the reference every CP run is compared with.
struct Reference {
  int64_t length = 0;
  std::vector<int64_t> doc_starts;
  std::vector<float> q, k, v, d_o;  // inputs
  std::vector<float> o, lse, dq, dk, dv;
};

kernels::AttentionArgs whole_sequence_args(const Reference& r) {
  kernels::AttentionArgs args;
  args.shape = {static_cast<int>(r.length), static_cast<int>(r.length), kHeads, kKvHeads, kHeadDim};
  args.mask.causal = true;
  args.mask.doc_starts = r.doc_starts;
  args.scale = kScale;
  return args;
}

Reference make_reference(const std::vector<int64_t>& doc_lengths, uint32_t seed) {
  Reference r;
  r.length = total_of(doc_lengths);
  r.doc_starts = starts_of(doc_lengths);
  const size_t n = static_cast<size_t>(r.length);
  r.q = random_values(n * kHeads * kHeadDim, seed);
  r.k = random_values(n * kKvHeads * kHeadDim, seed + 1);
  r.v = random_values(n * kKvHeads * kHeadDim, seed + 2);
  r.d_o = random_values(n * kHeads * kHeadDim, seed + 3);
  r.o.resize(r.q.size());
  r.lse.resize(n * kHeads);
  r.dq.resize(r.q.size());
  r.dk.resize(r.k.size());
  r.dv.resize(r.v.size());
  const kernels::AttentionArgs args = whole_sequence_args(r);
  kernels::cpu::attention_forward(args, r.q.data(), r.k.data(), r.v.data(), r.o.data(),
                                  r.lse.data());
  kernels::cpu::attention_backward(args, r.q.data(), r.k.data(), r.v.data(), r.o.data(),
                                   r.lse.data(), r.d_o.data(), r.dq.data(), r.dk.data(),
                                   r.dv.data());
  return r;
}

// The rows of `global` ([length, width]) that `rank` holds, in its local order.
template <class E>
std::vector<E> local_rows(const CpLayout& layout, int rank, const std::vector<E>& global,
                          int width) {
  std::vector<E> out;
  for (const TokenRange& range : layout.ranges(rank))
    out.insert(out.end(), global.begin() + range.begin * width, global.begin() + range.end * width);
  return out;
}

// Every rank's local rows ([n_local, width]) gathered back to global order.
std::vector<float> to_global(const CpLayout& layout, MPI_Comm comm, const std::vector<float>& local,
                             int width) {
  std::vector<int> counts(layout.ranks()), displs(layout.ranks());
  for (int r = 0; r < layout.ranks(); ++r) {
    counts[r] = static_cast<int>(layout.tokens(r) * width);
    displs[r] = static_cast<int>(layout.first_row(r) * width);
  }
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  std::vector<float> by_rank(static_cast<size_t>(layout.length() * width));
  MPI_Allgatherv(local.data(), counts[rank], MPI_FLOAT, by_rank.data(), counts.data(),
                 displs.data(), MPI_FLOAT, comm);
  std::vector<float> global(by_rank.size(), std::nanf(""));
  for (int r = 0; r < layout.ranks(); ++r) {
    int64_t row = layout.first_row(r);
    for (const TokenRange& range : layout.ranges(r)) {
      std::copy(by_rank.begin() + row * width,
                by_rank.begin() + (row + range.end - range.begin) * width,
                global.begin() + range.begin * width);
      row += range.end - range.begin;
    }
  }
  return global;
}

// Largest |a - b| over the largest |b| (at least 1): FP32 sums in another order.
double relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double err = 0, scale = 1;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::fabs(double(a[i]) - double(b[i]));
    err = std::isnan(d) ? INFINITY : std::max(err, d);
    scale = std::max(scale, std::fabs(double(b[i])));
  }
  return err / scale;
}

constexpr double kTolerance = 2e-5;

// Forward and backward at CP size cp with the given shards, compared with the
// reference. Collective over the world (ranks >= cp only take part in the split).
void expect_matches(const Reference& ref, int cp, const CpShards& shards, const std::string& what) {
  FirstRanks group(cp);
  if (!group.member()) return;
  SCOPED_TRACE(what + " at cp=" + std::to_string(cp));
  const CpLayout layout(ref.doc_starts, ref.length, shards);
  const auto comm = comm::make_mpi_communicator(group.comm());
  CpAttention attention(*comm, kHeads, kKvHeads, kHeadDim, kScale);
  const int rank = attention.rank();
  const int q_width = kHeads * kHeadDim, kv_width = kKvHeads * kHeadDim;
  const auto q = local_rows(layout, rank, ref.q, q_width);
  const auto k = local_rows(layout, rank, ref.k, kv_width);
  const auto v = local_rows(layout, rank, ref.v, kv_width);
  const auto d_o = local_rows(layout, rank, ref.d_o, q_width);
  const size_t n = static_cast<size_t>(layout.tokens(rank));
  std::vector<float> o(n * q_width), lse(n * kHeads), dq(n * q_width), dk(n * kv_width),
      dv(n * kv_width);

  attention.forward(layout, q.data(), k.data(), v.data(), o.data(), lse.data());
  attention.backward(layout, q.data(), k.data(), v.data(), o.data(), lse.data(), d_o.data(),
                     dq.data(), dk.data(), dv.data());

  EXPECT_LE(relative_error(to_global(layout, group.comm(), o, q_width), ref.o), kTolerance);
  EXPECT_LE(relative_error(to_global(layout, group.comm(), lse, kHeads), ref.lse), kTolerance);
  EXPECT_LE(relative_error(to_global(layout, group.comm(), dq, q_width), ref.dq), kTolerance);
  EXPECT_LE(relative_error(to_global(layout, group.comm(), dk, kv_width), ref.dk), kTolerance);
  EXPECT_LE(relative_error(to_global(layout, group.comm(), dv, kv_width), ref.dv), kTolerance);
}

// Six documents, 151 tokens: no document length nor the total divides by 2 x cp
// for every cp in 2..4; one document of a single token.
const std::vector<int64_t> kDocs = {37, 5, 62, 1, 29, 17};

TEST(CpAttention, PerSequenceShardingMatchesSingleRank) {
  const Reference ref = make_reference(kDocs, 11);
  for (int cp = 1; cp <= world_size(); ++cp)
    expect_matches(ref, cp, per_sequence(kDocs, cp), "per-sequence");
}

TEST(CpAttention, PerDocumentShardingMatchesSingleRank) {
  const Reference ref = make_reference(kDocs, 12);
  for (int cp = 1; cp <= world_size(); ++cp)
    expect_matches(ref, cp, per_document(kDocs, cp), "per-document");
}

TEST(CpAttention, RandomShardingMatchesSingleRank) {
  const Reference ref = make_reference(kDocs, 13);
  for (int cp = 1; cp <= world_size(); ++cp)
    for (uint32_t seed = 0; seed < 3; ++seed)
      expect_matches(ref, cp, random_shards(kDocs, cp, 100 + seed),
                     "random sharding " + std::to_string(seed));
}

// The shardings of lib/packing (packing::shard) on the same micro-batch.
TEST(CpAttention, PackingShardingsMatchSingleRank) {
  packing::MicroBatch micro_batch;
  for (size_t d = 0; d < kDocs.size(); ++d)
    micro_batch.docs.push_back({static_cast<int64_t>(d), kDocs[d], 0});
  const Reference ref = make_reference(kDocs, 18);
  ASSERT_EQ(micro_batch.doc_starts(), ref.doc_starts);
  ASSERT_EQ(micro_batch.tokens(), ref.length);
  for (auto sharding : {packing::CpSharding::per_sequence, packing::CpSharding::per_document,
                        packing::CpSharding::adaptive}) {
    for (int cp = 1; cp <= world_size(); ++cp)
      expect_matches(ref, cp, packing::shard(micro_batch, cp, sharding),
                     "packing::shard " + packing::to_string(sharding));
  }
}

// One document over the whole sequence (empty doc_starts) spanning several
// key blocks of the kernels.
TEST(CpAttention, SingleLongDocumentMatchesSingleRank) {
  const std::vector<int64_t> one_doc = {203};
  Reference ref = make_reference(one_doc, 14);
  ref.doc_starts.clear();  // empty = one document; the reference used {0}, the same mask
  for (int cp = 1; cp <= world_size(); ++cp)
    expect_matches(ref, cp, per_sequence(one_doc, cp), "one document");
}

// A sequence of 3 tokens at every CP size: 2 x cp chunks leave some ranks
// with nothing; and a hand-made layout where rank 0 holds nothing.
TEST(CpAttention, RanksWithEmptyShards) {
  const std::vector<int64_t> tiny = {2, 1};
  const Reference ref = make_reference(tiny, 15);
  for (int cp = 1; cp <= world_size(); ++cp)
    expect_matches(ref, cp, per_sequence(tiny, cp), "tiny per-sequence");
  if (world_size() >= 2) {
    CpShards shards(2);
    shards[1] = {{0, 3}};
    expect_matches(ref, 2, shards, "rank 0 empty");
  }
}

// BF16 inputs: the same as the single-rank BF16 kernel on the same values, up
// to BF16 rounding: the BF16 kernel rounds the probabilities to BF16 relative to
// a running maximum, which depends on how the queries and keys are blocked, so
// chunking the sequence moves O by a fraction of BF16's epsilon (2^-8).
constexpr double kBf16Tolerance = 2e-3;
TEST(CpAttention, Bf16ForwardMatchesSingleRank) {
  const Reference ref = make_reference(kDocs, 16);
  auto to_bf16 = [](const std::vector<float>& x) {
    std::vector<bf16> out(x.size());
    std::transform(x.begin(), x.end(), out.begin(), float_to_bf16_rne);
    return out;
  };
  const auto q16 = to_bf16(ref.q), k16 = to_bf16(ref.k), v16 = to_bf16(ref.v);
  std::vector<float> o_ref(ref.o.size()), lse_ref(ref.lse.size());
  kernels::cpu::attention_forward(whole_sequence_args(ref), q16.data(), k16.data(), v16.data(),
                                  o_ref.data(), lse_ref.data());
  for (int cp = 1; cp <= world_size(); ++cp) {
    FirstRanks group(cp);
    if (!group.member()) continue;
    SCOPED_TRACE("bf16 at cp=" + std::to_string(cp));
    const CpLayout layout(ref.doc_starts, ref.length, per_document(kDocs, cp));
    const auto comm = comm::make_mpi_communicator(group.comm());
    CpAttention attention(*comm, kHeads, kKvHeads, kHeadDim, kScale);
    const int rank = attention.rank();
    const auto q = local_rows(layout, rank, q16, kHeads * kHeadDim);
    const auto k = local_rows(layout, rank, k16, kKvHeads * kHeadDim);
    const auto v = local_rows(layout, rank, v16, kKvHeads * kHeadDim);
    const size_t n = static_cast<size_t>(layout.tokens(rank));
    std::vector<float> o(n * kHeads * kHeadDim), lse(n * kHeads);
    attention.forward(layout, q.data(), k.data(), v.data(), o.data(), lse.data());
    EXPECT_LE(relative_error(to_global(layout, group.comm(), o, kHeads * kHeadDim), o_ref),
              kBf16Tolerance);
    EXPECT_LE(relative_error(to_global(layout, group.comm(), lse, kHeads), lse_ref),
              kBf16Tolerance);
  }
}

// Calls repeat bitwise (the reused buffers hold nothing stale), and the
// timings add up: the total is the sum of the calls' phases.
TEST(CpAttention, RepeatedCallsAgreeAndTimingsAddUp) {
  const Reference ref = make_reference(kDocs, 17);
  const int cp = world_size();
  const CpLayout layout(ref.doc_starts, ref.length, per_document(kDocs, cp));
  const auto world = comm::make_mpi_communicator(MPI_COMM_WORLD);
  CpAttention attention(*world, kHeads, kKvHeads, kHeadDim, kScale);
  const int rank = attention.rank();
  const int q_width = kHeads * kHeadDim, kv_width = kKvHeads * kHeadDim;
  const auto q = local_rows(layout, rank, ref.q, q_width);
  const auto k = local_rows(layout, rank, ref.k, kv_width);
  const auto v = local_rows(layout, rank, ref.v, kv_width);
  const auto d_o = local_rows(layout, rank, ref.d_o, q_width);
  const size_t n = static_cast<size_t>(layout.tokens(rank));
  std::vector<std::vector<float>> dks;
  CpAttentionTiming sum;
  for (int call = 0; call < 2; ++call) {
    std::vector<float> o(n * q_width), lse(n * kHeads), dq(n * q_width), dk(n * kv_width),
        dv(n * kv_width);
    attention.forward(layout, q.data(), k.data(), v.data(), o.data(), lse.data());
    sum += attention.last_timing();
    EXPECT_EQ(attention.last_timing().reduce_scatter_s, 0.0);  // forward has none
    attention.backward(layout, q.data(), k.data(), v.data(), o.data(), lse.data(), d_o.data(),
                       dq.data(), dk.data(), dv.data());
    sum += attention.last_timing();
    EXPECT_GT(attention.last_timing().compute_s, 0.0);
    dks.push_back(dk);
  }
  EXPECT_EQ(dks[0], dks[1]);
  EXPECT_DOUBLE_EQ(attention.total_timing().total_s(), sum.total_s());
  attention.reset_timing();
  EXPECT_EQ(attention.total_timing().total_s(), 0.0);
}

TEST(CpLayout, PositionsAndOffsets) {
  const std::vector<int64_t> starts = {0, 4, 9};
  const CpLayout layout(starts, 12, CpShards{{{0, 2}, {10, 12}}, {}, {{2, 10}}});
  EXPECT_EQ(layout.ranks(), 3);
  EXPECT_EQ(layout.tokens(0), 4);
  EXPECT_EQ(layout.tokens(1), 0);
  EXPECT_EQ(layout.first_row(2), 4);
  EXPECT_EQ(layout.positions(0), (std::vector<int64_t>{0, 1, 10, 11}));
  EXPECT_EQ(layout.doc_start_of(3), 0);
  EXPECT_EQ(layout.doc_start_of(4), 4);
  EXPECT_EQ(layout.doc_start_of(11), 9);
}

TEST(CpLayout, RunsMergeAdjacentRangesAndKeepTheRowOrder) {
  const std::vector<int64_t> starts = {0, 6};
  const CpLayout layout(starts, 12,
                        CpShards{{{0, 2}, {2, 4}, {4, 4}, {8, 10}}, {{4, 8}, {10, 12}}});
  ASSERT_EQ(layout.ranges(0).size(), 3u);  // the empty range is dropped
  ASSERT_EQ(layout.runs(0).size(), 2u);
  EXPECT_EQ(layout.runs(0)[0].begin, 0);
  EXPECT_EQ(layout.runs(0)[0].end, 4);
  EXPECT_EQ(layout.runs(0)[1].begin, 8);
  EXPECT_EQ(layout.runs(1).size(), 2u);
  EXPECT_EQ(layout.positions(0), (std::vector<int64_t>{0, 1, 2, 3, 8, 9}));
  EXPECT_EQ(layout.positions(1), (std::vector<int64_t>{4, 5, 6, 7, 10, 11}));
}

TEST(CpLayout, RejectsShardsThatDoNotCoverTheSequenceOnce) {
  const std::vector<int64_t> starts = {0, 5};
  EXPECT_THROW(CpLayout(starts, 10, CpShards{{{0, 6}}, {{5, 10}}}), UsageError);  // overlap
  EXPECT_THROW(CpLayout(starts, 10, CpShards{{{0, 4}}, {{5, 10}}}), UsageError);  // gap
  EXPECT_THROW(CpLayout(starts, 10, CpShards{{{0, 5}}, {{5, 9}}}), UsageError);   // short
  EXPECT_THROW(CpLayout(starts, 10, CpShards{{{0, 5}}, {{5, 11}}}), UsageError);  // past the end
  EXPECT_THROW(CpLayout(starts, 10, CpShards{{{5, 10}, {0, 5}}}), UsageError);    // not ascending
  EXPECT_THROW(CpLayout(starts, 10, CpShards{}), UsageError);                     // no ranks
  const std::vector<int64_t> unsorted = {0, 6, 3};
  EXPECT_THROW(CpLayout(unsorted, 10, CpShards{{{0, 10}}}), UsageError);
  EXPECT_NO_THROW(CpLayout(starts, 10, CpShards{{{0, 5}, {5, 5}}, {{5, 10}}}));  // empty range
}

TEST(CpAttention, RejectsBadHeadsAndMismatchedLayouts) {
  const auto world = comm::make_mpi_communicator(MPI_COMM_WORLD);
  EXPECT_THROW(CpAttention(*world, 4, 3, 32), UsageError);
  EXPECT_THROW(CpAttention(*world, 4, 2, 0), UsageError);
  CpAttention attention(*world, kHeads, kKvHeads, kHeadDim);
  const std::vector<int64_t> starts = {0};
  // A valid layout for one rank more than the communicator has.
  CpShards shards(world_size() + 1);
  shards[0] = {{0, 8}};
  const CpLayout one_too_many(starts, 8, shards);
  std::vector<float> buffer(8 * kHeads * kHeadDim);
  EXPECT_THROW(attention.forward(one_too_many, buffer.data(), buffer.data(), buffer.data(),
                                 buffer.data(), buffer.data()),
               UsageError);
}

}  // namespace
}  // namespace paralab::parallel
