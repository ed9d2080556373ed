// collectives.hpp: comm_bench's table of operations, one entry each (the
// nccl-tests pattern): how a requested size maps to buffer layouts, the bus
// bandwidth factor, how to run the operation, and what every rank must
// receive, for --check.
#pragma once

#include <span>
#include <string_view>
#include <vector>

#include "comm/comm.hpp"
#include "core/device.hpp"
#include "core/dtype.hpp"

namespace paralab::comm_bench {

// Element counts of one sweep point on one rank.
struct Layout {
  size_t send_count = 0;  // elements in the send buffer
  size_t recv_count = 0;  // elements in the receive buffer
  size_t block = 0;       // per-peer or per-rank block, where one applies
  std::vector<size_t> send_counts, send_displs, recv_counts, recv_displs;  // alltoallv
  size_t bytes = 0;  // the "size" nccl-tests reports for this op
};

struct Buffers {
  Buffer send;
  Buffer recv;
};

struct Collective {
  std::string_view name;
  // Elements are rounded down so that every rank moves equal blocks where the
  // operation needs them; a layout with bytes == 0 is skipped.
  Layout (*layout)(size_t bytes, size_t type_size, int rank, int ranks);
  // busbw = algbw * factor (nccl-tests' definitions, see docs/comm_bench.md).
  double (*bus_factor)(int ranks);
  void (*run)(comm::Communicator& comm, Buffers& buffers, const Layout& layout, DType type);
  // The value of receive element `index` on `rank`, given the pattern every
  // rank's send buffer was filled with (see send_value()).
  double (*expected)(const Layout& layout, int rank, int ranks, size_t index, DType type);
};

// All operations, in the order `--op all` runs them.
std::span<const Collective> collectives();
// Throws UsageError for an unknown name.
const Collective& find_collective(std::string_view name);

// The check pattern: small non-negative integers, exact in every DType and
// in sums over up to 16 ranks even in bf16.
double send_value(int rank, size_t index);
// The value a DType holds after storing `value` (u8 wraps, bf16 rounds).
double representable(double value, DType type);

// Host-side element access for filling and checking buffers of any DType.
void store(DType type, void* data, size_t index, double value);
double load(DType type, const void* data, size_t index);

}  // namespace paralab::comm_bench
