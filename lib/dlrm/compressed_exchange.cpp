// compressed_exchange.cpp: the compressed embedding all-to-all
// (compressed_exchange.hpp).
#include "dlrm/compressed_exchange.hpp"

#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>

#include "core/errors.hpp"
#include "core/timer.hpp"

namespace paralab::dlrm {

namespace compress = kernels::compress;

std::string CodecChoice::name() const {
  return automatic ? "auto" : compress::codec_name(codec);
}

CodecChoice parse_codec_choice(std::string_view name) {
  if (name == "auto") return {true, compress::Codec::quantize_huffman};
  for (compress::Codec c : compress::kAllCodecs)
    if (name == compress::codec_name(c)) return {false, c};
  throw UsageError("unknown codec '" + std::string(name) +
                   "' (auto, raw, fp16, bf16, int8, quantize_huffman, dedup, "
                   "dedup_quantize_huffman)");
}

void CompressedExchangeConfig::validate() const {
  policy.validate();
  if (!(link_bytes_per_s > 0) || !std::isfinite(link_bytes_per_s))
    throw UsageError("compressed exchange: the link rate must be positive");
  if (threads < 1) throw UsageError("compressed exchange: threads must be >= 1");
  if (decide_every < 1) throw UsageError("compressed exchange: decide_every must be >= 1");
  if (codec.automatic && candidates.empty())
    throw UsageError("compressed exchange: auto needs at least one candidate codec");
}

void TableExchangeStats::add(const TableExchangeStats& o) {
  blocks += o.blocks;
  raw_bytes += o.raw_bytes;
  compressed_bytes += o.compressed_bytes;
  compress_s += o.compress_s;
  decompress_s += o.decompress_s;
  max_error = std::max(max_error, o.max_error);
  bound = std::max(bound, o.bound);
  for (size_t i = 0; i < codec_blocks.size(); ++i) codec_blocks[i] += o.codec_blocks[i];
}

void ExchangeStats::clear(int table_count) {
  *this = ExchangeStats{};
  tables.assign(static_cast<size_t>(table_count), TableExchangeStats{});
}

void ExchangeStats::add(const ExchangeStats& o) {
  calls += o.calls;
  raw_bytes += o.raw_bytes;
  compressed_bytes += o.compressed_bytes;
  compress_s += o.compress_s;
  exchange_s += o.exchange_s;
  decompress_s += o.decompress_s;
  total_s += o.total_s;
  max_error = std::max(max_error, o.max_error);
  if (tables.size() < o.tables.size()) tables.resize(o.tables.size());
  for (size_t t = 0; t < o.tables.size(); ++t) tables[t].add(o.tables[t]);
}

CompressedExchange::CompressedExchange(int tables, CompressedExchangeConfig config)
    : tables_(tables), config_(std::move(config)) {
  if (tables < 0) throw UsageError("compressed exchange: negative table count");
  config_.validate();
  last_forward_.clear(tables_);
  last_backward_.clear(tables_);
  reset_totals();
}

void CompressedExchange::reset_totals() {
  total_forward_.clear(tables_);
  total_backward_.clear(tables_);
}

void CompressedExchange::forward(comm::Communicator& comm, const ExchangeLayout& layout,
                                 std::span<const float> send, std::span<float> recv,
                                 int64_t iteration) {
  run(comm, layout, send, recv, iteration, Direction::forward);
}

void CompressedExchange::backward(comm::Communicator& comm, const ExchangeLayout& layout,
                                  std::span<const float> send, std::span<float> recv,
                                  int64_t iteration) {
  run(comm, layout, send, recv, iteration, Direction::backward);
}

namespace {

// Byte count sent in place of a peer's size when this rank failed to compress.
constexpr int64_t kFailed = -1;

TableExchangeStats& table_stats(ExchangeStats& s, int table) {
  if (table < 0) throw std::logic_error("compressed exchange: negative table id");
  if (static_cast<size_t>(table) >= s.tables.size())
    s.tables.resize(static_cast<size_t>(table) + 1);
  return s.tables[static_cast<size_t>(table)];
}

}  // namespace

void CompressedExchange::run(comm::Communicator& comm, const ExchangeLayout& layout,
                             std::span<const float> send, std::span<float> recv, int64_t iteration,
                             Direction direction) {
  const Stopwatch total_clock;
  const auto n = static_cast<size_t>(comm.size());
  const int rank = comm.rank();
  ExchangeStats& st = direction == Direction::forward ? last_forward_ : last_backward_;
  st.clear(tables_);
  st.calls = 1;
  if (send.size() < layout.send_total || recv.size() < layout.recv_total ||
      layout.send_blocks.size() != n || layout.recv_blocks.size() != n)
    throw std::invalid_argument("compressed exchange: buffers or layout do not match");

  // Auto decides afresh on the first call and every decide_every calls.
  const size_t dir = direction == Direction::forward ? 0 : 1;
  if (calls_[dir]++ % config_.decide_every == 0)
    chosen_[dir].assign(static_cast<size_t>(tables_), -1);

  // 1. Compress every block, peer by peer.
  peer_bytes_.resize(n);
  std::string failure;
  try {
    for (size_t p = 0; p < n; ++p) {
      std::vector<std::byte>& bytes = peer_bytes_[p];
      bytes.clear();
      for (const ExchangeBlock& b : layout.send_blocks[p]) {
        if (b.floats() == 0) continue;
        TableExchangeStats& ts = table_stats(st, b.table);
        const float* in = send.data() + b.offset;
        const auto rows = static_cast<size_t>(b.rows), cols = static_cast<size_t>(b.cols);
        compress::Params params;
        params.bound = config_.policy.bound(b.table, iteration, direction);
        params.threads = config_.threads;
        const Stopwatch clock;
        if (config_.codec.automatic) {
          int& chosen = chosen_[dir][static_cast<size_t>(b.table)];
          if (chosen < 0) {
            const compress::Estimate e = compress::estimate(in, rows, cols, params.bound);
            chosen =
                static_cast<int>(compress::choose_codec(e, config_.link_bytes_per_s,
                                                        config_.throughputs, config_.candidates)
                                     .codec);
          }
          params.codec = static_cast<compress::Codec>(chosen);
        } else {
          params.codec = config_.codec.codec;
        }
        const size_t start = bytes.size();
        const size_t size = compress::compress(in, rows, cols, params, bytes);
        ts.compress_s += clock.seconds();
        ts.blocks += 1;
        ts.raw_bytes += 4 * b.floats();
        ts.compressed_bytes += size;
        ts.codec_blocks[static_cast<size_t>(params.codec)] += 1;
        const std::span<const std::byte> stream(bytes.data() + start, size);
        if (compress::is_error_bounded(params.codec))
          ts.bound = std::max(ts.bound, compress::inspect(stream).absolute_bound);
        if (config_.measure_error) {
          check_.resize(b.floats());
          compress::decompress(stream, check_.data(), rows, cols);
          double err = 0;
          for (size_t i = 0; i < check_.size(); ++i) {
            const double e = std::abs(double{check_[i]} - double{in[i]});
            if (e > err) err = e;  // NaN == NaN comes back bit-exact: skipped
          }
          ts.max_error = std::max(ts.max_error, err);
        }
      }
      if (config_.tamper) config_.tamper(static_cast<int>(p), bytes);
    }
  } catch (const std::exception& e) {
    failure = e.what();
  }
  for (const TableExchangeStats& ts : st.tables) {
    st.raw_bytes += ts.raw_bytes;
    st.compressed_bytes += ts.compressed_bytes;
    st.compress_s += ts.compress_s;
    st.max_error = std::max(st.max_error, ts.max_error);
  }

  // 2. Sizes, then bytes.
  const Stopwatch exchange_clock;
  std::vector<int64_t> send_counts(n), recv_counts(n);
  for (size_t p = 0; p < n; ++p)
    send_counts[p] = failure.empty() ? static_cast<int64_t>(peer_bytes_[p].size()) : kFailed;
  comm.alltoall(send_counts.data(), recv_counts.data(), 1, DType::i64);
  int failed_sender = -1;
  for (size_t p = 0; p < n; ++p)
    if (recv_counts[p] == kFailed && failed_sender < 0) failed_sender = static_cast<int>(p);
  if (failed_sender >= 0)
    throw RuntimeError("compressed exchange: rank " + std::to_string(failed_sender) +
                           " failed to compress" + (failure.empty() ? "" : ": " + failure),
                       Scope::all_ranks);
  std::vector<size_t> sc(n), sd(n), rc(n), rd(n);
  size_t send_total = 0, recv_total = 0;
  for (size_t p = 0; p < n; ++p) {
    sc[p] = peer_bytes_[p].size();
    sd[p] = send_total;
    send_total += sc[p];
    rc[p] = static_cast<size_t>(recv_counts[p]);
    rd[p] = recv_total;
    recv_total += rc[p];
  }
  send_bytes_.resize(send_total);
  for (size_t p = 0; p < n; ++p)
    std::copy(peer_bytes_[p].begin(), peer_bytes_[p].end(),
              send_bytes_.begin() + static_cast<std::ptrdiff_t>(sd[p]));
  recv_bytes_.resize(recv_total);
  comm.alltoallv(send_bytes_.data(), sc, sd, recv_bytes_.data(), rc, rd, DType::u8);
  st.exchange_s = exchange_clock.seconds();

  // 3. Decompress into the receive layout.
  const Stopwatch decompress_clock;
  try {
    for (size_t q = 0; q < n; ++q) {
      std::span<const std::byte> bytes(recv_bytes_.data() + rd[q], rc[q]);
      size_t used = 0;
      for (const ExchangeBlock& b : layout.recv_blocks[q]) {
        if (b.floats() == 0) continue;
        const Stopwatch clock;
        const compress::StreamInfo info = compress::inspect(bytes.subspan(used));
        compress::decompress(bytes.subspan(used, info.stream_bytes), recv.data() + b.offset,
                             static_cast<size_t>(b.rows), static_cast<size_t>(b.cols),
                             {.verify_checksum = true, .threads = config_.threads});
        used += info.stream_bytes;
        table_stats(st, b.table).decompress_s += clock.seconds();
      }
      if (used != bytes.size())
        throw compress::StreamError(compress::StreamError::Problem::trailing_bytes,
                                    "compress: " + std::to_string(bytes.size() - used) +
                                        " bytes from rank " + std::to_string(q) +
                                        " beyond its blocks' streams");
    }
  } catch (const std::exception& e) {
    failure = "from a peer's data: " + std::string(e.what());
  }
  // Agree: the lowest failing rank, or none.
  int mine = failure.empty() ? std::numeric_limits<int>::max() : rank;
  int lowest = mine;
  comm.allreduce(&mine, &lowest, 1, DType::i32, comm::ReduceOp::min);
  if (lowest != std::numeric_limits<int>::max())
    throw RuntimeError("compressed exchange (" +
                           std::string(direction == Direction::forward ? "forward" : "backward") +
                           ", iteration " + std::to_string(iteration) + "): rank " +
                           std::to_string(lowest) + " could not decode" +
                           (failure.empty() ? "" : "; here: " + failure),
                       Scope::all_ranks);
  st.decompress_s = decompress_clock.seconds();
  st.total_s = total_clock.seconds();
  (direction == Direction::forward ? total_forward_ : total_backward_).add(st);
}

}  // namespace paralab::dlrm
