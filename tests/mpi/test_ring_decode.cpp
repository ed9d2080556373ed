// Batched decode over context-parallel ranks (lib/ring/decode): the round-
// robin layout, and every algorithm at every step against single-rank
// attention of each request's token over its own keys.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>
#include <vector>

#include "comm/comm.hpp"
#include "core/errors.hpp"
#include "kernels/attention.hpp"
#include "ring/decode.hpp"
#include "ring/schedule.hpp"
#include "ring/sharding.hpp"

using namespace paralab::ring;

namespace {

RingProblem heads() {
  RingProblem p;
  p.H = 4;
  p.H_kv = 2;
  p.D = 32;
  return p;
}

TEST(RingDecode, RoundRobinSpreadsEveryStepsTokensOverTheRanks) {
  const DecodeBatch d{5, 13, 6};
  for (int N : {1, 2, 3, 4}) {
    for (int s = 0; s < d.steps; ++s) {
      const RankLayout layout = decode_layout(d, s, N);
      std::set<int64_t> queries, keys;
      size_t most = 0, fewest = 1000;
      for (int r = 0; r < N; ++r) {
        for (const Piece& q : layout.queries[r]) queries.insert(q.start);
        for (const Piece& k : layout.kv[r])
          for (int64_t t = k.start; t < k.end(); ++t) EXPECT_TRUE(keys.insert(t).second);
        most = std::max(most, layout.queries[r].size());
        fewest = std::min(fewest, layout.queries[r].size());
      }
      EXPECT_EQ(queries.size(), size_t(d.batch));
      EXPECT_LE(most - fewest, 1u);  // B tokens over N ranks, as even as can be
      EXPECT_EQ(keys.size(), size_t(d.batch * (d.context + s + 1)));
    }
  }
  // The offset moves request 0's token to the next rank every step.
  for (int s = 0; s < 4; ++s) EXPECT_EQ(decode_rank(0, s, 4), s);
}

TEST(RingDecode, BadBatchesAreUsageErrors) {
  EXPECT_THROW(validate_decode(heads(), {0, 10, 1}, 2), paralab::UsageError);
  EXPECT_THROW(validate_decode(heads(), {2, 10, 0}, 2), paralab::UsageError);
  RingProblem odd = heads();
  odd.H = 3;
  EXPECT_THROW(validate_decode(odd, {2, 10, 1}, 2), paralab::UsageError);
  EXPECT_NO_THROW(validate_decode(heads(), {1, 0, 1}, 4));  // fewer requests than ranks is fine
}

// Rows of a [positions, row] tensor filled from a seeded generator.
std::vector<float> random_tensor(int64_t positions, size_t row, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-2.0f, 2.0f);
  std::vector<float> x(size_t(positions) * row);
  for (float& e : x) e = uniform(rng);
  return x;
}

TEST(RingDecode, EveryAlgorithmMatchesSingleRankAttentionAtEveryStep) {
  auto comm = paralab::comm::make_mpi_communicator(MPI_COMM_WORLD);
  const int N = comm->size(), me = comm->rank();
  for (const DecodeBatch d : {DecodeBatch{3, 29, 4}, DecodeBatch{1, 0, 3}, DecodeBatch{6, 7, 5}}) {
    const RingProblem p = decode_problem(heads(), d);
    const int64_t positions = d.batch * (d.context + d.steps);
    const size_t q_row = size_t(p.H) * p.D, kv_row = size_t(p.H_kv) * p.D;
    const auto q = random_tensor(positions, q_row, 1), k = random_tensor(positions, kv_row, 2),
               v = random_tensor(positions, kv_row, 3);
    for (int s = 0; s < d.steps; ++s) {
      const RankLayout layout = decode_layout(d, s, N);
      const auto my_q = take_rows<float>(q, q_row, layout.queries[me], 0);
      const auto my_k = take_rows<float>(k, kv_row, layout.kv[me], 0);
      const auto my_v = take_rows<float>(v, kv_row, layout.kv[me], 0);
      for (Algorithm algo : {Algorithm::pass_q, Algorithm::pass_kv, Algorithm::all_gather}) {
        SCOPED_TRACE(std::string(algorithm_name(algo)) + " step " + std::to_string(s) + " B " +
                     std::to_string(d.batch));
        const RingOutput out =
            run_ring<float>(*comm, p, layout, plan_ring(algo, p, layout), {my_q, my_k, my_v});
        // Each of this rank's queries against its request's keys, one call.
        size_t row = 0;
        for (const Piece& query : layout.queries[me]) {
          const int64_t first = query.start - d.context - s;  // the request's position 0
          paralab::kernels::AttentionArgs args;
          args.shape = {1, int(query.start - first + 1), p.H, p.H_kv, p.D};
          args.mask = {true, query.start, first, {}};
          std::vector<float> o(q_row), lse(p.H);
          paralab::kernels::reference::attention_forward(
              args, q.data() + query.start * q_row, k.data() + first * kv_row,
              v.data() + first * kv_row, o.data(), lse.data());
          for (size_t e = 0; e < q_row; ++e)
            EXPECT_NEAR(out.o[row * q_row + e], o[e], 1e-5) << "element " << e;
          for (int h = 0; h < p.H; ++h)
            EXPECT_NEAR(out.lse[row * p.H + h], lse[h], 1e-5 * std::abs(lse[h]) + 1e-6);
          ++row;
        }
      }
    }
  }
}

}  // namespace
