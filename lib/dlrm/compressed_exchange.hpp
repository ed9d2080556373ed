// compressed_exchange.hpp: the embedding all-to-all of DistributedDlrm with
// error-bounded lossy compression (issue 5, Feng et al., SC'24), plugged in
// through EmbeddingExchange (distributed.hpp).
//
// One direction (forward: pooled embeddings; backward: their gradients), on
// every rank:
//   1. compress: for each peer in rank order, each non-empty block of the
//      send layout (one shard's columns for the peer's samples, [rows, cols])
//      becomes one kernels::compress stream, appended to the peer's bytes.
//      Codec: the configured one, or (auto) per block the least predicted
//      time of kernels::compress::choose_codec from estimate(), the link
//      rate and the throughputs. Bound: BoundPolicy::bound(table, iteration,
//      direction) (error_bounds.hpp); ignored by the unbounded codecs
//      (fp16, bf16, int8) and by raw and dedup, which are lossless.
//   2. one alltoall of the byte counts (u64 as i64), then one alltoallv of
//      the bytes (u8).
//   3. decompress: each peer's bytes are split into streams with inspect()
//      and decoded straight into the receive layout's blocks; each stream
//      must have its block's shape and the streams must use all the bytes.
//
// Errors: a stream that fails to decode (StreamError: corruption, a shape
// that does not match, ...) would leave the failing rank out of the next
// collective and hang the others. So after decoding, the ranks agree (one
// allreduce of a flag) and, if any rank failed, EVERY rank throws
// RuntimeError(Scope::all_ranks) naming the lowest failing rank (that rank's
// message carries the StreamError's text). A failure while compressing (a
// bad bound) is sent as a sentinel byte count in step 2, so every rank learns
// of it without another collective and throws the same way. The exchange
// itself always completes, so no rank is left waiting.
//
// Statistics (per call, and summed since reset_totals()): raw and compressed
// bytes (this rank's sends, its own block included), seconds in compression,
// in the two collectives and in decompression, per table too, and with
// measure_error the largest |decoded - original| per table, computed on the
// sender by decoding its own streams (costs a decompression).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dlrm/distributed.hpp"
#include "dlrm/error_bounds.hpp"
#include "kernels/compress.hpp"

namespace paralab::dlrm {

// A codec of kernels::compress, or automatic choice per block.
struct CodecChoice {
  bool automatic = false;
  kernels::compress::Codec codec = kernels::compress::Codec::quantize_huffman;
  std::string name() const;  // codec_name or "auto"
};
// "auto" or a codec name (raw, fp16, bf16, int8, quantize_huffman, dedup,
// dedup_quantize_huffman); UsageError otherwise.
CodecChoice parse_codec_choice(std::string_view name);

struct CompressedExchangeConfig {
  CodecChoice codec{};
  BoundPolicy policy{};
  // Auto choice: the link rate (bytes/s) and the codecs' rates.
  double link_bytes_per_s = 10e9;
  kernels::compress::Throughputs throughputs = kernels::compress::default_throughputs();
  std::vector<kernels::compress::Codec> candidates{kernels::compress::kBoundedCodecs.begin(),
                                                   kernels::compress::kBoundedCodecs.end()};
  // Auto: a table's codec is decided on its first block, from a sampled
  // estimate, and kept for this many calls per direction (the estimate costs
  // about as much as compressing a small block, so deciding every call would
  // eat the saving).
  int decide_every = 50;
  bool measure_error = false;  // max |error| per table on the sender (costs a decode)
  int threads = 1;             // compress/decompress threads
  // Test hook: called with each peer's compressed bytes before they are sent.
  std::function<void(int peer, std::vector<std::byte>& bytes)> tamper;
  void validate() const;  // UsageError
};

struct TableExchangeStats {
  size_t blocks = 0;
  size_t raw_bytes = 0, compressed_bytes = 0;
  double compress_s = 0, decompress_s = 0;
  double max_error = 0;  // with measure_error
  double bound = 0;      // the largest absolute bound of its streams (0: lossless or unbounded)
  std::array<size_t, kernels::compress::kCodecs> codec_blocks{};  // blocks per codec
  double ratio() const {
    return compressed_bytes ? static_cast<double>(raw_bytes) / compressed_bytes : 1.0;
  }
  void add(const TableExchangeStats& o);
};

struct ExchangeStats {
  int64_t calls = 0;
  size_t raw_bytes = 0, compressed_bytes = 0;  // sent by this rank
  double compress_s = 0, exchange_s = 0, decompress_s = 0, total_s = 0;
  double max_error = 0;                    // with measure_error
  std::vector<TableExchangeStats> tables;  // per table of the model
  double ratio() const {
    return compressed_bytes ? static_cast<double>(raw_bytes) / compressed_bytes : 1.0;
  }
  void clear(int tables);
  void add(const ExchangeStats& o);
};

class CompressedExchange : public EmbeddingExchange {
 public:
  CompressedExchange(int tables, CompressedExchangeConfig config);

  const CompressedExchangeConfig& config() const { return config_; }
  BoundPolicy& policy() { return config_.policy; }  // e.g. to set classes later

  void forward(comm::Communicator& comm, const ExchangeLayout& layout, std::span<const float> send,
               std::span<float> recv, int64_t iteration) override;
  void backward(comm::Communicator& comm, const ExchangeLayout& layout, std::span<const float> send,
                std::span<float> recv, int64_t iteration) override;
  bool compresses() const override { return true; }

  const ExchangeStats& last(Direction d) const {
    return d == Direction::forward ? last_forward_ : last_backward_;
  }
  const ExchangeStats& total(Direction d) const {
    return d == Direction::forward ? total_forward_ : total_backward_;
  }
  void reset_totals();

 private:
  void run(comm::Communicator& comm, const ExchangeLayout& layout, std::span<const float> send,
           std::span<float> recv, int64_t iteration, Direction direction);

  int tables_;
  CompressedExchangeConfig config_;
  ExchangeStats last_forward_, last_backward_, total_forward_, total_backward_;
  std::vector<std::vector<std::byte>> peer_bytes_;
  std::vector<std::byte> send_bytes_, recv_bytes_;
  std::vector<float> check_;
  // Auto: the codec each table uses per direction (-1: not decided), and the
  // calls made per direction.
  std::array<std::vector<int>, 2> chosen_;
  std::array<int64_t, 2> calls_{};
};

}  // namespace paralab::dlrm
