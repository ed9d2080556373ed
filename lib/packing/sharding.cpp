// sharding.cpp: context-parallel sharding of one packed micro-batch
// (per-sequence, per-document, adaptive), the attention pairs each CP rank
// computes under the causal document mask, and the kernel-efficiency curve
// the adaptive choice predicts latency with.
#include <algorithm>
#include <cmath>
#include <string>

#include "core/errors.hpp"
#include "packing/packing.hpp"

namespace paralab::packing {
namespace {

// Appends [begin, end) to a rank's ranges, merging with the previous range
// when they touch and `merge` allows it; empty ranges are dropped.
void append_range(std::vector<TokenRange>& ranges, int64_t begin, int64_t end, bool merge) {
  if (begin >= end) return;
  if (merge && !ranges.empty() && ranges.back().end == begin)
    ranges.back().end = end;
  else
    ranges.push_back(TokenRange{begin, end});
}

// Chunk i of `pieces` equal chunks of [0, length): the first length % pieces
// chunks one token longer would also do; floor boundaries keep it simple.
int64_t chunk_bound(int64_t length, int64_t pieces, int64_t i) {
  return length * i / pieces;
}

CpShards shard_per_sequence(const MicroBatch& mb, int cp) {
  const int64_t total = mb.tokens(), pieces = 2 * int64_t(cp);
  CpShards shards(static_cast<size_t>(cp));
  for (int c = 0; c < cp; ++c) {
    const int64_t front = c, back = pieces - 1 - c;
    auto& ranges = shards[size_t(c)];
    append_range(ranges, chunk_bound(total, pieces, front), chunk_bound(total, pieces, front + 1),
                 true);
    append_range(ranges, chunk_bound(total, pieces, back), chunk_bound(total, pieces, back + 1),
                 true);
  }
  return shards;
}

// Every document in 2cp chunks of floor(l / 2cp) tokens, rank c taking chunks
// c and 2cp-1-c; the l mod 2cp tokens at the document's end go one each to
// the ranks in turn, the turn carried over from document to document so no
// rank collects more than its share of them.
CpShards shard_per_document(const MicroBatch& mb, int cp) {
  const int64_t pieces = 2 * int64_t(cp);
  CpShards shards(static_cast<size_t>(cp));
  int next_rank = 0;
  int64_t start = 0;
  for (const Document& doc : mb.docs) {
    const int64_t base = doc.length / pieces, remainder = doc.length % pieces;
    std::vector<std::vector<TokenRange>> pieces_of(static_cast<size_t>(cp));
    for (int c = 0; c < cp; ++c) {
      const int64_t front = start + c * base, back = start + (pieces - 1 - c) * base;
      append_range(pieces_of[size_t(c)], front, front + base, true);
      append_range(pieces_of[size_t(c)], back, back + base, true);
    }
    for (int64_t k = 0; k < remainder; ++k) {
      const int64_t position = start + pieces * base + k;
      append_range(pieces_of[size_t(next_rank)], position, position + 1, true);
      next_rank = (next_rank + 1) % cp;
    }
    // Pieces of one document merge; pieces of different documents stay apart
    // (each is its own kernel call in cp_predicted_latency).
    for (int c = 0; c < cp; ++c)
      for (const TokenRange& range : pieces_of[size_t(c)]) shards[size_t(c)].push_back(range);
    start += doc.length;
  }
  return shards;
}

// Sum over positions p in [begin, end) of (p - doc_start + 1): the keys the
// queries of one document piece see under the causal mask.
double pairs_in_piece(int64_t doc_start, int64_t begin, int64_t end) {
  const double first = double(begin - doc_start + 1), last = double(end - doc_start);
  return (first + last) * double(end - begin) / 2.0;
}

// Pairs of a range that may cross documents (a per-sequence chunk).
double pairs_in_range(const std::vector<int64_t>& starts, int64_t total, TokenRange range) {
  double pairs = 0;
  // The document holding `range.begin`: the last start <= begin.
  auto it = std::upper_bound(starts.begin(), starts.end(), range.begin);
  size_t doc = size_t(it - starts.begin()) - 1;
  int64_t position = range.begin;
  while (position < range.end) {
    const int64_t doc_end = doc + 1 < starts.size() ? starts[doc + 1] : total;
    const int64_t piece_end = std::min(range.end, doc_end);
    pairs += pairs_in_piece(starts[doc], position, piece_end);
    position = piece_end;
    ++doc;
  }
  return pairs;
}

void check_shards(const MicroBatch& mb, const CpShards& shards) {
  const int64_t total = mb.tokens();
  for (const auto& ranges : shards)
    for (const TokenRange& range : ranges)
      if (range.begin < 0 || range.end > total || range.begin > range.end)
        throw UsageError("CP shard range [" + std::to_string(range.begin) + ", " +
                         std::to_string(range.end) + ") is outside the micro-batch's " +
                         std::to_string(total) + " tokens");
}

}  // namespace

double KernelEfficiency::at(double query_length) const {
  if (points.empty()) return 1.0;
  if (query_length <= points.front().first) return points.front().second;
  if (query_length >= points.back().first) return points.back().second;
  auto upper = std::upper_bound(
      points.begin(), points.end(), query_length,
      [](double length, const std::pair<double, double>& point) { return length < point.first; });
  auto lower = upper - 1;
  const double t = (std::log(query_length) - std::log(lower->first)) /
                   (std::log(upper->first) - std::log(lower->first));
  return lower->second + t * (upper->second - lower->second);
}

std::vector<double> cp_attention_pairs(const MicroBatch& mb, const CpShards& shards) {
  check_shards(mb, shards);
  const std::vector<int64_t> starts = mb.doc_starts();
  const int64_t total = mb.tokens();
  std::vector<double> pairs(shards.size(), 0.0);
  for (size_t c = 0; c < shards.size(); ++c)
    for (const TokenRange& range : shards[c])
      if (range.begin < range.end) pairs[c] += pairs_in_range(starts, total, range);
  return pairs;
}

std::vector<double> cp_predicted_latency(const MicroBatch& mb, const CpShards& shards,
                                         const KernelEfficiency* efficiency) {
  check_shards(mb, shards);
  const std::vector<int64_t> starts = mb.doc_starts();
  const int64_t total = mb.tokens();
  std::vector<double> latency(shards.size(), 0.0);
  for (size_t c = 0; c < shards.size(); ++c)
    for (const TokenRange& range : shards[c]) {
      if (range.begin >= range.end) continue;
      const double rate = efficiency ? efficiency->at(double(range.end - range.begin)) : 1.0;
      if (!(rate > 0))
        throw UsageError("kernel efficiency at " + std::to_string(range.end - range.begin) +
                         " queries is not positive");
      latency[c] += pairs_in_range(starts, total, range) / rate;
    }
  return latency;
}

CpShards shard(const MicroBatch& mb, int cp, CpSharding sharding,
               const KernelEfficiency* efficiency) {
  if (cp < 1) throw UsageError("CP sharding needs cp >= 1, got " + std::to_string(cp));
  switch (sharding) {
    case CpSharding::per_sequence:
      return shard_per_sequence(mb, cp);
    case CpSharding::per_document:
      return shard_per_document(mb, cp);
    case CpSharding::adaptive: {
      CpShards by_sequence = shard_per_sequence(mb, cp);
      CpShards by_document = shard_per_document(mb, cp);
      const auto slowest = [&](const CpShards& shards) {
        const std::vector<double> latency = cp_predicted_latency(mb, shards, efficiency);
        return latency.empty() ? 0.0 : *std::max_element(latency.begin(), latency.end());
      };
      // Ties go to per-sequence: fewer, longer kernel calls.
      return slowest(by_document) < slowest(by_sequence) ? std::move(by_document)
                                                         : std::move(by_sequence);
    }
  }
  throw UsageError("unknown CP sharding");
}

}  // namespace paralab::packing
