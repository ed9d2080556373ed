#include "collectives.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/bf16.hpp"
#include "core/errors.hpp"

namespace paralab::comm_bench {

namespace {

// Layouts --------------------------------------------------------------------

Layout whole_buffer(size_t bytes, size_t type_size, int, int) {
  Layout l;
  l.send_count = l.recv_count = bytes / type_size;
  l.bytes = l.send_count * type_size;
  return l;
}

// Equal blocks per rank; `gathered_side` says which buffer holds all blocks.
Layout blocked(size_t bytes, size_t type_size, int ranks, bool send_holds_all,
               bool recv_holds_all) {
  Layout l;
  l.block = bytes / type_size / static_cast<size_t>(ranks);
  const size_t all = l.block * static_cast<size_t>(ranks);
  l.send_count = send_holds_all ? all : l.block;
  l.recv_count = recv_holds_all ? all : l.block;
  l.bytes = all * type_size;
  return l;
}

Layout alltoall_layout(size_t bytes, size_t ts, int, int ranks) {
  return blocked(bytes, ts, ranks, true, true);
}
Layout allgather_layout(size_t bytes, size_t ts, int, int ranks) {
  return blocked(bytes, ts, ranks, false, true);
}
Layout reducescatter_layout(size_t bytes, size_t ts, int, int ranks) {
  return blocked(bytes, ts, ranks, true, false);
}

// alltoallv: block sizes vary by sender and receiver (a half, one or one and
// a half base blocks), as embedding exchanges do; the mean equals alltoall's.
size_t alltoallv_count(size_t base, int source, int dest) {
  static constexpr size_t halves[] = {1, 2, 3};
  return base * halves[static_cast<size_t>(source + 2 * dest) % 3] / 2;
}

Layout alltoallv_layout(size_t bytes, size_t type_size, int rank, int ranks) {
  Layout l;
  l.block = bytes / type_size / static_cast<size_t>(ranks);
  size_t total_sent = 0;  // over all ranks, for the mean reported as size
  for (int peer = 0; peer < ranks; ++peer) {
    l.send_counts.push_back(alltoallv_count(l.block, rank, peer));
    l.recv_counts.push_back(alltoallv_count(l.block, peer, rank));
    l.send_displs.push_back(l.send_count);
    l.recv_displs.push_back(l.recv_count);
    l.send_count += l.send_counts.back();
    l.recv_count += l.recv_counts.back();
    for (int dest = 0; dest < ranks; ++dest) total_sent += alltoallv_count(l.block, peer, dest);
  }
  l.bytes = total_sent / static_cast<size_t>(ranks) * type_size;
  return l;
}

// Bus bandwidth factors -------------------------------------------------------

double factor_one(int) {
  return 1.0;
}
double factor_allreduce(int n) {
  return 2.0 * (n - 1) / n;
}
double factor_spread(int n) {
  return static_cast<double>(n - 1) / n;
}

// Runs ----------------------------------------------------------------------

void run_sendrecv(comm::Communicator& c, Buffers& b, const Layout& l, DType t) {
  c.ring_step(b.send.data(), b.recv.data(), l.send_count, t);
}
void run_alltoall(comm::Communicator& c, Buffers& b, const Layout& l, DType t) {
  c.alltoall(b.send.data(), b.recv.data(), l.block, t);
}
void run_alltoallv(comm::Communicator& c, Buffers& b, const Layout& l, DType t) {
  c.alltoallv(b.send.data(), l.send_counts, l.send_displs, b.recv.data(), l.recv_counts,
              l.recv_displs, t);
}
void run_allreduce(comm::Communicator& c, Buffers& b, const Layout& l, DType t) {
  c.allreduce(b.send.data(), b.recv.data(), l.send_count, t, comm::ReduceOp::sum);
}
void run_allgather(comm::Communicator& c, Buffers& b, const Layout& l, DType t) {
  c.allgather(b.send.data(), b.recv.data(), l.block, t);
}
void run_reducescatter(comm::Communicator& c, Buffers& b, const Layout& l, DType t) {
  c.reduce_scatter(b.send.data(), b.recv.data(), l.block, t, comm::ReduceOp::sum);
}

// Expected values ---------------------------------------------------------------

double sum_over_ranks(int ranks, size_t index, DType type) {
  double sum = 0;
  for (int r = 0; r < ranks; ++r) sum += send_value(r, index);
  return representable(sum, type);
}

double expect_sendrecv(const Layout&, int rank, int ranks, size_t i, DType) {
  return send_value((rank - 1 + ranks) % ranks, i);
}
double expect_alltoall(const Layout& l, int rank, int, size_t i, DType) {
  // Block `source` of my receive buffer is block `rank` of source's send buffer.
  const size_t source = i / l.block;
  return send_value(static_cast<int>(source), static_cast<size_t>(rank) * l.block + i % l.block);
}
double expect_alltoallv(const Layout& l, int rank, int ranks, size_t i, DType) {
  int source = ranks - 1;
  while (l.recv_displs[source] > i) --source;
  // Where my block sits in source's send buffer.
  size_t offset = 0;
  for (int dest = 0; dest < rank; ++dest) offset += alltoallv_count(l.block, source, dest);
  return send_value(source, offset + (i - l.recv_displs[source]));
}
double expect_allreduce(const Layout&, int, int ranks, size_t i, DType t) {
  return sum_over_ranks(ranks, i, t);
}
double expect_allgather(const Layout& l, int, int, size_t i, DType) {
  return send_value(static_cast<int>(i / l.block), i % l.block);
}
double expect_reducescatter(const Layout& l, int rank, int ranks, size_t i, DType t) {
  return sum_over_ranks(ranks, static_cast<size_t>(rank) * l.block + i, t);
}

constexpr Collective kCollectives[] = {
    {"sendrecv", whole_buffer, factor_one, run_sendrecv, expect_sendrecv},
    {"alltoall", alltoall_layout, factor_spread, run_alltoall, expect_alltoall},
    {"alltoallv", alltoallv_layout, factor_spread, run_alltoallv, expect_alltoallv},
    {"allreduce", whole_buffer, factor_allreduce, run_allreduce, expect_allreduce},
    {"allgather", allgather_layout, factor_spread, run_allgather, expect_allgather},
    {"reducescatter", reducescatter_layout, factor_spread, run_reducescatter, expect_reducescatter},
};

}  // namespace

std::span<const Collective> collectives() {
  return kCollectives;
}

const Collective& find_collective(std::string_view name) {
  for (const auto& c : kCollectives)
    if (c.name == name) return c;
  throw UsageError("unknown operation '" + std::string(name) + "'");
}

double send_value(int rank, size_t index) {
  return static_cast<double>((static_cast<size_t>(rank) * 37 + index * 11) % 17);
}

double representable(double value, DType type) {
  switch (type) {
    case DType::u8:
      return std::fmod(value, 256.0);
    case DType::bf16:
      return bf16_to_float(float_to_bf16_rne(static_cast<float>(value)));
    case DType::f32:
      return static_cast<float>(value);
    default:
      return value;
  }
}

void store(DType type, void* data, size_t i, double value) {
  switch (type) {
    case DType::f32:
      static_cast<float*>(data)[i] = static_cast<float>(value);
      return;
    case DType::f64:
      static_cast<double*>(data)[i] = value;
      return;
    case DType::bf16:
      static_cast<bf16*>(data)[i] = float_to_bf16_rne(static_cast<float>(value));
      return;
    case DType::i32:
      static_cast<int32_t*>(data)[i] = static_cast<int32_t>(value);
      return;
    case DType::i64:
      static_cast<int64_t*>(data)[i] = static_cast<int64_t>(value);
      return;
    case DType::u8:
      static_cast<uint8_t*>(data)[i] = static_cast<uint8_t>(static_cast<int64_t>(value));
      return;
  }
}

double load(DType type, const void* data, size_t i) {
  switch (type) {
    case DType::f32:
      return static_cast<const float*>(data)[i];
    case DType::f64:
      return static_cast<const double*>(data)[i];
    case DType::bf16:
      return bf16_to_float(static_cast<const bf16*>(data)[i]);
    case DType::i32:
      return static_cast<const int32_t*>(data)[i];
    case DType::i64:
      return static_cast<double>(static_cast<const int64_t*>(data)[i]);
    case DType::u8:
      return static_cast<const uint8_t*>(data)[i];
  }
  return 0;
}

}  // namespace paralab::comm_bench
