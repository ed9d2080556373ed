// Context-parallel sharding: every token on exactly one rank, symmetric
// chunks, per-document balance at cp 1..5 with lengths that do not divide by
// 2cp, the pairs under the causal document mask, the efficiency curve and
// the adaptive choice.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "core/errors.hpp"
#include "packing/packing.hpp"

namespace paralab::packing {
namespace {

MicroBatch batch_of(std::vector<int64_t> lengths) {
  MicroBatch mb;
  int64_t id = 0;
  for (int64_t length : lengths) mb.docs.push_back(Document{id++, length, 0});
  return mb;
}

MicroBatch random_batch(std::mt19937_64& rng, int docs, int64_t longest) {
  std::uniform_int_distribution<int64_t> length(1, longest);
  std::vector<int64_t> lengths;
  for (int i = 0; i < docs; ++i) lengths.push_back(length(rng));
  return batch_of(lengths);
}

// Pairs of every query by brute force: the query at offset o of its document
// sees o + 1 keys.
std::vector<double> brute_force_pairs(const MicroBatch& mb, const CpShards& shards) {
  std::vector<int64_t> offset_of;
  for (const Document& doc : mb.docs)
    for (int64_t o = 0; o < doc.length; ++o) offset_of.push_back(o);
  std::vector<double> pairs(shards.size(), 0.0);
  for (size_t c = 0; c < shards.size(); ++c)
    for (const TokenRange& range : shards[c])
      for (int64_t p = range.begin; p < range.end; ++p) {
        pairs[c] += double(offset_of[size_t(p)] + 1);
      }
  return pairs;
}

void expect_exact_cover(const MicroBatch& mb, const CpShards& shards, int cp) {
  ASSERT_EQ(shards.size(), size_t(cp));
  std::vector<int> owners(size_t(mb.tokens()), 0);
  for (const auto& ranges : shards) {
    for (size_t i = 0; i < ranges.size(); ++i) {
      ASSERT_LT(ranges[i].begin, ranges[i].end);
      if (i > 0) {
        ASSERT_LE(ranges[i - 1].end, ranges[i].begin) << "not ascending and disjoint";
      }
      for (int64_t p = ranges[i].begin; p < ranges[i].end; ++p) ++owners[size_t(p)];
    }
  }
  for (size_t p = 0; p < owners.size(); ++p) ASSERT_EQ(owners[p], 1) << "token " << p;
}

TEST(Sharding, EveryTokenOnExactlyOneRank) {
  std::mt19937_64 rng(17);
  for (int cp = 1; cp <= 5; ++cp)
    for (int trial = 0; trial < 20; ++trial) {
      const MicroBatch mb = random_batch(rng, 1 + trial % 7, 97);
      for (CpSharding sharding :
           {CpSharding::per_sequence, CpSharding::per_document, CpSharding::adaptive}) {
        SCOPED_TRACE("cp " + std::to_string(cp) + " " + to_string(sharding));
        expect_exact_cover(mb, shard(mb, cp, sharding), cp);
      }
    }
}

TEST(Sharding, PerSequenceTakesSymmetricChunks) {
  // 20 tokens, cp 2: chunks of 5; rank 0 takes chunks 0 and 3, rank 1 chunks 1 and 2.
  const CpShards shards = shard(batch_of({12, 8}), 2, CpSharding::per_sequence);
  ASSERT_EQ(shards[0].size(), 2u);
  EXPECT_EQ(shards[0][0].begin, 0);
  EXPECT_EQ(shards[0][0].end, 5);
  EXPECT_EQ(shards[0][1].begin, 15);
  EXPECT_EQ(shards[0][1].end, 20);
  ASSERT_EQ(shards[1].size(), 1u);  // the two middle chunks touch: one range
  EXPECT_EQ(shards[1][0].begin, 5);
  EXPECT_EQ(shards[1][0].end, 15);
}

TEST(Sharding, PairsMatchBruteForce) {
  std::mt19937_64 rng(5);
  for (int cp = 1; cp <= 5; ++cp) {
    const MicroBatch mb = random_batch(rng, 6, 61);
    double total = 0;
    for (const Document& doc : mb.docs) total += double(doc.length) * double(doc.length + 1) / 2;
    for (CpSharding sharding : {CpSharding::per_sequence, CpSharding::per_document}) {
      const CpShards shards = shard(mb, cp, sharding);
      const std::vector<double> pairs = cp_attention_pairs(mb, shards);
      EXPECT_EQ(pairs, brute_force_pairs(mb, shards));
      EXPECT_DOUBLE_EQ(std::accumulate(pairs.begin(), pairs.end(), 0.0), total);
    }
  }
}

TEST(Sharding, PerDocumentIsExactlyBalancedWhenLengthsDivide) {
  for (int cp = 1; cp <= 5; ++cp) {
    const int64_t unit = 2 * cp;
    const MicroBatch mb = batch_of({unit * 7, unit * 1, unit * 30, unit * 3});
    const std::vector<double> pairs =
        cp_attention_pairs(mb, shard(mb, cp, CpSharding::per_document));
    for (double p : pairs) EXPECT_DOUBLE_EQ(p, pairs[0]) << "cp " << cp;
  }
}

TEST(Sharding, PerDocumentBalancesUnevenLengths) {
  std::mt19937_64 rng(23);
  for (int cp = 2; cp <= 5; ++cp)
    for (int trial = 0; trial < 10; ++trial) {
      // A short document then a long one: per-sequence puts the long
      // document's heavy tail mostly on the ranks holding the end.
      std::uniform_int_distribution<int64_t> long_length(3000, 5000), short_length(1, 300);
      MicroBatch mb = batch_of({short_length(rng), long_length(rng), short_length(rng),
                                short_length(rng), long_length(rng) / 3});
      const std::vector<double> by_document =
          cp_attention_pairs(mb, shard(mb, cp, CpSharding::per_document));
      const double most = *std::max_element(by_document.begin(), by_document.end());
      const double least = *std::min_element(by_document.begin(), by_document.end());
      // Each document's remainder (< 2cp tokens, dealt in turn) moves at most
      // one token of at most its length between two ranks.
      double bound = 0;
      for (const Document& doc : mb.docs) bound += double(doc.length);
      EXPECT_LE(most - least, bound) << "cp " << cp;
      const double mean = std::accumulate(by_document.begin(), by_document.end(), 0.0) / double(cp);
      EXPECT_LT(most / mean, 1.005) << "cp " << cp;
    }
  // Per-sequence is measurably worse on such a batch.
  const MicroBatch mb = batch_of({2000, 100, 100, 100, 100, 100, 100, 100, 100, 5003});
  for (int cp = 2; cp <= 5; ++cp) {
    const auto seq = cp_attention_pairs(mb, shard(mb, cp, CpSharding::per_sequence));
    const auto doc = cp_attention_pairs(mb, shard(mb, cp, CpSharding::per_document));
    EXPECT_GT(*std::max_element(seq.begin(), seq.end()),
              1.05 * *std::max_element(doc.begin(), doc.end()))
        << "cp " << cp;
  }
}

TEST(Sharding, ShortDocumentsAreDealtRoundRobin) {
  // Documents of 1 token at cp 3: ranks 0, 1, 2, 0, 1.
  const CpShards shards = shard(batch_of({1, 1, 1, 1, 1}), 3, CpSharding::per_document);
  EXPECT_EQ(shards[0].size(), 2u);
  EXPECT_EQ(shards[1].size(), 2u);
  EXPECT_EQ(shards[2].size(), 1u);
  EXPECT_EQ(shards[0][1].begin, 3);
}

TEST(KernelEfficiency, InterpolatesInLogLength) {
  KernelEfficiency eff;
  EXPECT_DOUBLE_EQ(eff.at(123), 1.0);
  eff.points = {{128, 0.2}, {2048, 0.6}, {32768, 0.9}};
  EXPECT_DOUBLE_EQ(eff.at(64), 0.2);
  EXPECT_DOUBLE_EQ(eff.at(1e6), 0.9);
  EXPECT_DOUBLE_EQ(eff.at(512), 0.4);  // halfway between 128 and 2048 in log
  EXPECT_NEAR(eff.at(8192), 0.75, 1e-12);
}

double slowest_of(const MicroBatch& mb, int cp, CpSharding sharding, const KernelEfficiency& eff) {
  const auto latency = cp_predicted_latency(mb, shard(mb, cp, sharding, &eff), &eff);
  return *std::max_element(latency.begin(), latency.end());
}

TEST(Adaptive, PicksTheLowerPredictedLatency) {
  // Many short documents: per-document cuts them into tiny pieces that a
  // kernel runs inefficiently; per-sequence keeps long chunks.
  KernelEfficiency eff;
  eff.points = {{1, 0.01}, {256, 0.2}, {4096, 1.0}};
  std::vector<int64_t> shorts(64, 300);
  const MicroBatch many_short = batch_of(shorts);
  // One long document first and short ones after: per-sequence gives the
  // middle of the long document (its heavy part) to the middle ranks, and
  // per-document's pieces are long enough to run efficiently.
  const MicroBatch long_tail = batch_of({30000, 2000, 2000, 2000});
  for (int cp : {2, 4}) {
    for (const MicroBatch* mb : {&many_short, &long_tail}) {
      const CpShards seq = shard(*mb, cp, CpSharding::per_sequence);
      const CpShards doc = shard(*mb, cp, CpSharding::per_document);
      const auto slowest = [&](const CpShards& s) {
        const auto latency = cp_predicted_latency(*mb, s, &eff);
        return *std::max_element(latency.begin(), latency.end());
      };
      const CpShards chosen = shard(*mb, cp, CpSharding::adaptive, &eff);
      const double best = std::min(slowest(seq), slowest(doc));
      EXPECT_DOUBLE_EQ(slowest(chosen), best);
    }
    EXPECT_LT(slowest_of(many_short, cp, CpSharding::per_sequence, eff),
              slowest_of(many_short, cp, CpSharding::per_document, eff));
    EXPECT_GT(slowest_of(long_tail, cp, CpSharding::per_sequence, eff),
              slowest_of(long_tail, cp, CpSharding::per_document, eff));
  }
}

TEST(Sharding, EmptyMicroBatchHasNothingToShard) {
  for (CpSharding sharding :
       {CpSharding::per_sequence, CpSharding::per_document, CpSharding::adaptive}) {
    const CpShards shards = shard(MicroBatch{}, 3, sharding);
    ASSERT_EQ(shards.size(), 3u);
    for (const auto& ranges : shards) EXPECT_TRUE(ranges.empty());
    EXPECT_EQ(cp_attention_pairs(MicroBatch{}, shards), (std::vector<double>{0, 0, 0}));
  }
}

TEST(Sharding, BadInput) {
  const MicroBatch mb = batch_of({10});
  EXPECT_THROW(shard(mb, 0, CpSharding::per_sequence), UsageError);
  CpShards outside = {{TokenRange{0, 11}}};
  EXPECT_THROW(cp_attention_pairs(mb, outside), UsageError);
}

}  // namespace
}  // namespace paralab::packing
