// sharding.hpp: how a sequence's tokens are split over the ranks of a
// context-parallel group (Yang et al., "Context Parallelism for Scalable
// Million-Token Inference", MLSys'25, section 3), and helpers that move whole
// [T, ...] tensors to and from the shards (for tests and --check).
//
// A rank's shard is a list of pieces, each a contiguous range of global token
// positions; the rank stores the pieces' rows back to back, in list order.
// Because every piece is a contiguous position range, attention between two
// pieces keeps an exact causal/document mask through the kernel's
// q_offset/k_offset.
//
//   load_balanced: 2N chunks as equal as possible (sizes differ by at most 1,
//                  the larger ones first); rank i holds chunks i and 2N-1-i,
//                  so under a causal mask every rank does the same work.
//   contiguous:    N chunks; rank i holds chunk i.
//
// The KV cache of persistent-KV prefill (the P tokens before the new ones) is
// sharded contiguously: rank i keeps chunk i of positions [0, P). A cache
// that stays where earlier turns computed it would be a list of pieces too;
// contiguous is the simplest layout that spreads the cache evenly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "comm/comm.hpp"

namespace paralab::ring {

enum class Sharding { load_balanced, contiguous };
std::string_view sharding_name(Sharding sharding);  // "load_balanced" | "contiguous"

struct Piece {
  int64_t start = 0;   // global position of the first token
  int64_t length = 0;  // tokens; never 0 in a Shard
  int64_t end() const { return start + length; }
  bool operator==(const Piece&) const = default;
};
using Shard = std::vector<Piece>;

int64_t shard_tokens(const Shard& shard);

// `count` tokens from position `first` in `chunks` chunks as equal as possible
// (the first count % chunks chunks are one longer); empty chunks included.
std::vector<Piece> split_even(int64_t first, int64_t count, int chunks);

// Rank `rank`'s share of the T tokens at positions first..first+T-1. Throws
// UsageError when T < ranks (some rank would hold no token).
Shard shard_of(Sharding sharding, int64_t first, int64_t T, int ranks, int rank);
// Rank `rank`'s share of a KV cache of P tokens at positions 0..P-1
// (contiguous; a rank may hold nothing when P < ranks).
Shard cache_shard_of(int64_t P, int ranks, int rank);

// The rows of `shard` taken from `full`, whose row 0 sits at position `first`;
// each row has row_elems elements.
template <class E>
std::vector<E> take_rows(std::span<const E> full, size_t row_elems, const Shard& shard,
                         int64_t first);

// Collective: every rank passes its own rows (`local`, laid out as its shard)
// and the shards of all ranks; every rank gets the full [T, row_elems] tensor
// for positions first..first+T-1.
std::vector<float> gather_rows(comm::Communicator& comm, std::span<const float> local,
                               size_t row_elems, std::span<const Shard> shards, int64_t first,
                               int64_t T);

}  // namespace paralab::ring
