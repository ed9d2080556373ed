// Token sharding for context parallelism; see sharding.hpp.
#include "ring/sharding.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "core/bf16.hpp"
#include "core/errors.hpp"

namespace paralab::ring {

std::string_view sharding_name(Sharding sharding) {
  return sharding == Sharding::load_balanced ? "load_balanced" : "contiguous";
}

int64_t shard_tokens(const Shard& shard) {
  int64_t tokens = 0;
  for (const Piece& piece : shard) tokens += piece.length;
  return tokens;
}

std::vector<Piece> split_even(int64_t first, int64_t count, int chunks) {
  std::vector<Piece> pieces;
  const int64_t base = count / chunks, longer = count % chunks;
  int64_t start = first;
  for (int c = 0; c < chunks; ++c) {
    const int64_t length = base + (c < longer ? 1 : 0);
    pieces.push_back({start, length});
    start += length;
  }
  return pieces;
}

namespace {
// Drops empty pieces, so that no kernel is ever called on zero tokens.
Shard non_empty(std::initializer_list<Piece> pieces) {
  Shard shard;
  for (const Piece& piece : pieces)
    if (piece.length > 0) shard.push_back(piece);
  return shard;
}
}  // namespace

Shard shard_of(Sharding sharding, int64_t first, int64_t T, int ranks, int rank) {
  if (T < ranks)
    throw UsageError("context parallelism needs at least one token per rank: " + std::to_string(T) +
                     " tokens over " + std::to_string(ranks) + " ranks");
  if (sharding == Sharding::contiguous) return non_empty({split_even(first, T, ranks)[rank]});
  const auto chunks = split_even(first, T, 2 * ranks);
  return non_empty({chunks[rank], chunks[2 * ranks - 1 - rank]});
}

Shard cache_shard_of(int64_t P, int ranks, int rank) {
  return non_empty({split_even(0, P, ranks)[rank]});
}

template <class E>
std::vector<E> take_rows(std::span<const E> full, size_t row_elems, const Shard& shard,
                         int64_t first) {
  std::vector<E> rows;
  rows.reserve(static_cast<size_t>(shard_tokens(shard)) * row_elems);
  for (const Piece& piece : shard) {
    const auto begin = full.begin() + (piece.start - first) * static_cast<int64_t>(row_elems);
    rows.insert(rows.end(), begin, begin + piece.length * static_cast<int64_t>(row_elems));
  }
  return rows;
}
template std::vector<float> take_rows(std::span<const float>, size_t, const Shard&, int64_t);
template std::vector<bf16> take_rows(std::span<const bf16>, size_t, const Shard&, int64_t);

std::vector<float> gather_rows(comm::Communicator& comm, std::span<const float> local,
                               size_t row_elems, std::span<const Shard> shards, int64_t first,
                               int64_t T) {
  // allgather moves equal blocks: pad every rank's rows to the largest shard.
  int64_t max_tokens = 0;
  for (const Shard& shard : shards) max_tokens = std::max(max_tokens, shard_tokens(shard));
  const size_t block = static_cast<size_t>(max_tokens) * row_elems;
  std::vector<float> send(block, 0.0f), all(block * shards.size());
  std::copy(local.begin(), local.end(), send.begin());
  comm.allgather(send.data(), all.data(), block, DType::f32);

  std::vector<float> full(static_cast<size_t>(T) * row_elems);
  for (size_t r = 0; r < shards.size(); ++r) {
    const float* rows = all.data() + r * block;
    for (const Piece& piece : shards[r]) {
      const size_t count = static_cast<size_t>(piece.length) * row_elems;
      std::memcpy(full.data() + static_cast<size_t>(piece.start - first) * row_elems, rows,
                  count * sizeof(float));
      rows += count;
    }
  }
  return full;
}

}  // namespace paralab::ring
