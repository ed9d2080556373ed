// test_nccl_comm.cpp: the NCCL backend checked against the MPI backend. Every
// operation runs on both with the same input, for f32 and bf16, and the
// results must match exactly: the inputs are multiples of 1/2 in [-4, 4], so
// every partial sum of up to four ranks is exact in both types and the
// reduction order of either library cannot change a bit.
//
// Run under mpirun at 1..4 ranks. NCCL refuses two ranks on one GPU, so unless
// every rank has a GPU of its own, every rank exits with 77 (ctest's skip
// code) before NCCL is touched.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "comm/comm.hpp"
#include "core/bf16.hpp"
#include "core/cuda_api.hpp"
#include "core/device.hpp"
#include "core/dtype.hpp"
#include "core/errors.hpp"
#include "core/world.hpp"

namespace paralab {
namespace {

using comm::Communicator;
using comm::ReduceOp;

constexpr int kSkipped = 77;
// Outside the range of every result, and exact in bf16.
constexpr float kUntouched = -100.0f;

struct Backends {
  std::unique_ptr<Communicator> mpi;
  std::unique_ptr<Communicator> nccl;
};
Backends* backends = nullptr;  // set by main() around RUN_ALL_TESTS

Communicator& mpi() {
  return *backends->mpi;
}
Communicator& nccl() {
  return *backends->nccl;
}

// Multiples of 1/2 in [-4, 4] that differ between ranks and neighbouring
// indices, so a block from the wrong rank or at the wrong offset shows.
std::vector<float> values(int rank, size_t count) {
  std::vector<float> out(count);
  for (size_t i = 0; i < count; ++i) {
    const auto k = static_cast<int>((7 * static_cast<size_t>(rank) + 3 * i) % 17);
    out[i] = static_cast<float>(k - 8) * 0.5f;
  }
  return out;
}

std::vector<unsigned char> encode(DType type, const std::vector<float>& in) {
  const size_t width = dtype_size(type);
  std::vector<unsigned char> bytes(in.size() * width);
  for (size_t i = 0; i < in.size(); ++i) {
    if (type == DType::bf16) {
      const bf16 b = float_to_bf16_rne(in[i]);
      std::memcpy(&bytes[i * width], &b, width);
    } else {
      std::memcpy(&bytes[i * width], &in[i], width);
    }
  }
  return bytes;
}

std::vector<float> decode(DType type, const std::vector<unsigned char>& bytes) {
  const size_t width = dtype_size(type);
  std::vector<float> out(bytes.size() / width);
  for (size_t i = 0; i < out.size(); ++i) {
    if (type == DType::bf16) {
      bf16 b;
      std::memcpy(&b, &bytes[i * width], width);
      out[i] = bf16_to_float(b);
    } else {
      std::memcpy(&out[i], &bytes[i * width], width);
    }
  }
  return out;
}

struct Case {
  std::vector<float> input;  // this rank's send buffer, or the in-place buffer
  size_t output_count = 0;   // elements of the receive buffer (= input size in place)
  bool in_place = false;
  // False when the operation must itself leave the result readable (a
  // waited request, a barrier), so that no synchronize() hides a missing one.
  bool synchronize = true;
};

using Operation = std::function<void(Communicator&, const void* send, void* recv)>;

// Runs `op` with buffers on the communicator's device; returns the receive buffer.
std::vector<float> run_on(Communicator& c, DType type, const Case& k, const Operation& op) {
  const auto input = encode(type, k.input);
  const auto initial =
      k.in_place ? input : encode(type, std::vector<float>(k.output_count, kUntouched));
  Buffer send(c.device(), input.size());
  Buffer recv(c.device(), initial.size());
  send.upload(input.data(), input.size());
  recv.upload(initial.data(), initial.size());
  // An upload from pageable memory may still be in flight on the legacy
  // stream, which NCCL's non-blocking stream does not wait for.
  synchronize_device(c.device());
  op(c, k.in_place ? recv.data() : send.data(), recv.data());
  if (k.synchronize) c.synchronize();
  std::vector<unsigned char> out(initial.size());
  recv.download(out.data(), out.size());
  return decode(type, out);
}

// The MPI result is the reference; it must have written something, or the
// comparison would prove nothing.
void expect_same(DType type, const Case& k, const Operation& op) {
  const auto expected = run_on(mpi(), type, k, op);
  const auto actual = run_on(nccl(), type, k, op);
  ASSERT_EQ(actual.size(), expected.size());
  if (!k.in_place && !expected.empty()) {
    bool written = false;
    for (float v : expected) written = written || v != kUntouched;
    EXPECT_TRUE(written) << "the MPI reference left the receive buffer untouched";
  }
  size_t mismatches = 0;
  size_t first = 0;
  for (size_t i = 0; i < actual.size(); ++i) {
    if (actual[i] == expected[i]) continue;
    if (mismatches++ == 0) first = i;
  }
  EXPECT_EQ(mismatches, 0u) << "rank " << nccl().rank() << ": " << mismatches << " of "
                            << actual.size() << " elements differ; first at " << first << ": nccl "
                            << actual[first] << ", mpi " << expected[first];
}

const char* op_name(ReduceOp op) {
  return op == ReduceOp::sum ? "sum" : op == ReduceOp::max ? "max" : "min";
}

class NcclVsMpi : public ::testing::TestWithParam<DType> {
 protected:
  DType type() const { return GetParam(); }
  int rank() const { return nccl().rank(); }
  int size() const { return nccl().size(); }
  int ring(int offset) const { return ((rank() + offset) % size() + size()) % size(); }
};

TEST(NcclComm, DescribesItself) {
  EXPECT_EQ(nccl().backend(), "nccl");
  EXPECT_EQ(nccl().device(), Device::cuda);
  EXPECT_EQ(nccl().rank(), mpi().rank());
  EXPECT_EQ(nccl().size(), mpi().size());
}

// Blocking send/recv between pairs (0,1), (2,3); with an odd rank count the
// last rank sits out. Each direction carries a different count.
TEST_P(NcclVsMpi, SendRecvInPairs) {
  if (size() < 2) GTEST_SKIP() << "needs two ranks";
  const int partner = rank() ^ 1;
  const bool paired = partner < size();
  const size_t mine = 1001 + static_cast<size_t>(rank());
  const size_t theirs = 1001 + static_cast<size_t>(partner);
  Case k{values(rank(), mine), paired ? theirs : 0};
  expect_same(type(), k, [&](Communicator& c, const void* send, void* recv) {
    if (!paired) return;
    if (rank() < partner) {
      c.send(send, mine, type(), partner);
      c.recv(recv, theirs, type(), partner);
    } else {
      c.recv(recv, theirs, type(), partner);
      c.send(send, mine, type(), partner);
    }
  });
}

// isend/irecv around the ring. NCCL runs them in issue order, so rank 0 sends
// first and every other rank receives first: the chain then always advances.
TEST_P(NcclVsMpi, IsendIrecvChain) {
  if (size() < 2) GTEST_SKIP() << "needs two ranks";
  const int next = ring(1);
  const int prev = ring(-1);
  const size_t mine = 999 + 2 * static_cast<size_t>(rank());
  const size_t theirs = 999 + 2 * static_cast<size_t>(prev);
  Case k{values(rank(), mine), theirs};
  expect_same(type(), k, [&](Communicator& c, const void* send, void* recv) {
    if (rank() == 0) {
      comm::Request s = c.isend(send, mine, type(), next);
      comm::Request r = c.irecv(recv, theirs, type(), prev);
      r.wait();
      s.wait();
    } else {
      comm::Request r = c.irecv(recv, theirs, type(), prev);
      comm::Request s = c.isend(send, mine, type(), next);
      s.wait();
      r.wait();
    }
  });
}

// start_sendrecv with a different count in each direction, for several
// shifts (at one rank, to itself).
TEST_P(NcclVsMpi, SendrecvUnequalCounts) {
  for (int shift : {1, -1, 2}) {
    SCOPED_TRACE("shift " + std::to_string(shift));
    const int dest = ring(shift);
    const int source = ring(-shift);
    const size_t mine = 500 + 3 * static_cast<size_t>(rank());
    const size_t theirs = 500 + 3 * static_cast<size_t>(source);
    Case k{values(rank(), mine), theirs};
    expect_same(type(), k, [&](Communicator& c, const void* send, void* recv) {
      c.sendrecv(send, mine, dest, recv, theirs, source, type());
    });
  }
}

// A waited request must leave the data readable without synchronize().
TEST_P(NcclVsMpi, RingStepRequestCompletesTransfer) {
  constexpr size_t count = 1001;
  Case k{values(rank(), count), count};
  k.synchronize = false;
  expect_same(type(), k, [&](Communicator& c, const void* send, void* recv) {
    comm::Request r = c.start_ring_step(send, recv, count, type());
    r.wait();
  });
}

TEST_P(NcclVsMpi, Alltoall) {
  constexpr size_t per_peer = 37;
  const size_t total = per_peer * static_cast<size_t>(size());
  Case k{values(rank(), total), total};
  expect_same(type(), k, [&](Communicator& c, const void* send, void* recv) {
    c.alltoall(send, recv, per_peer, type());
  });
}

// Block sizes 0..66 that differ per pair (zeros from three ranks up).
size_t block(int source, int dest) {
  return static_cast<size_t>((3 * source + 5 * dest + 1) % 7) * 11;
}

struct Layout {
  std::vector<size_t> counts;
  std::vector<size_t> displs;
  size_t total = 0;
};

// Blocks separated by `gap` elements, in peer order or reversed, so that
// displacements are exercised and not implied by the counts.
Layout layout(std::vector<size_t> counts, size_t gap, bool reversed) {
  Layout l{counts, std::vector<size_t>(counts.size()), 0};
  for (size_t k = 0; k < counts.size(); ++k) {
    const size_t p = reversed ? counts.size() - 1 - k : k;
    l.displs[p] = l.total;
    l.total += counts[p] + gap;
  }
  return l;
}

TEST_P(NcclVsMpi, AlltoallvUnevenWithGaps) {
  std::vector<size_t> send_counts, recv_counts;
  for (int p = 0; p < size(); ++p) {
    send_counts.push_back(block(rank(), p));
    recv_counts.push_back(block(p, rank()));
  }
  const Layout s = layout(send_counts, 3, false);
  const Layout r = layout(recv_counts, 2, true);  // gaps stay untouched on both backends
  Case k{values(rank(), s.total), r.total};
  expect_same(type(), k, [&](Communicator& c, const void* send, void* recv) {
    c.alltoallv(send, s.counts, s.displs, recv, r.counts, r.displs, type());
  });
}

TEST_P(NcclVsMpi, AllreduceOutOfPlaceAndInPlace) {
  constexpr size_t count = 1001;  // divisible by none of 2, 3, 4
  for (ReduceOp op : {ReduceOp::sum, ReduceOp::max, ReduceOp::min}) {
    for (bool in_place : {false, true}) {
      SCOPED_TRACE(std::string(op_name(op)) + (in_place ? ", in place" : ", out of place"));
      Case k{values(rank(), count), count, in_place};
      expect_same(type(), k, [&](Communicator& c, const void* send, void* recv) {
        c.allreduce(send, recv, count, type(), op);
      });
    }
  }
}

TEST_P(NcclVsMpi, Allgather) {
  constexpr size_t per_rank = 37;
  Case k{values(rank(), per_rank), per_rank * static_cast<size_t>(size())};
  expect_same(type(), k, [&](Communicator& c, const void* send, void* recv) {
    c.allgather(send, recv, per_rank, type());
  });
}

TEST_P(NcclVsMpi, ReduceScatter) {
  constexpr size_t per_rank = 37;
  for (ReduceOp op : {ReduceOp::sum, ReduceOp::max, ReduceOp::min}) {
    SCOPED_TRACE(op_name(op));
    Case k{values(rank(), per_rank * static_cast<size_t>(size())), per_rank};
    expect_same(type(), k, [&](Communicator& c, const void* send, void* recv) {
      c.reduce_scatter(send, recv, per_rank, type(), op);
    });
  }
}

// barrier() must first finish the rank's queued work.
TEST_P(NcclVsMpi, BarrierFinishesQueuedWork) {
  constexpr size_t count = 1 << 20;
  Case k{values(rank(), count), count};
  k.synchronize = false;
  expect_same(type(), k, [&](Communicator& c, const void* send, void* recv) {
    c.allreduce(send, recv, count, type(), ReduceOp::sum);
    c.barrier();
  });
}

// A bad peer is a clean error, and the communicator stays usable after it.
TEST_P(NcclVsMpi, RejectsPeerOutsideCommunicator) {
  Buffer buffer(Device::cuda, 4 * dtype_size(type()));
  EXPECT_THROW(nccl().send(buffer.data(), 4, type(), size()), RuntimeError);
  EXPECT_THROW(nccl().irecv(buffer.data(), 4, type(), -1), RuntimeError);
  constexpr size_t count = 5;
  Case k{values(rank(), count), count};
  expect_same(type(), k, [&](Communicator& c, const void* send, void* recv) {
    c.allreduce(send, recv, count, type(), ReduceOp::sum);
  });
}

INSTANTIATE_TEST_SUITE_P(Types, NcclVsMpi, ::testing::Values(DType::f32, DType::bf16),
                         [](const ::testing::TestParamInfo<DType>& param) {
                           return std::string(dtype_name(param.param));
                         });

// Non-root ranks print only their failures, each line marked with the rank.
class FailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit FailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stderr, "rank %d: %s:%d: failure\n%s\n", rank_,
                 result.file_name() ? result.file_name() : "?", result.line_number(),
                 result.summary());
  }

 private:
  int rank_;
};

// Agreed on by all ranks, so that all of them skip or none does.
bool every_rank_has_its_own_gpu(const World& world) {
  int ok = cuda::device_count() >= world.local_size() ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_LAND, world.comm());
  return ok != 0;
}

int run_tests(const World& world) {
  if (!world.is_root()) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new FailurePrinter(world.rank()));
  }
  bind_device(Device::cuda, world.local_rank(), world.local_size());
  Backends both{comm::make_mpi_communicator(world.comm()),
                comm::make_nccl_communicator(world.comm())};
  backends = &both;
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  backends = nullptr;
  MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_MAX, world.comm());
  return failed;
}

}  // namespace
}  // namespace paralab

int main(int argc, char** argv) {
  paralab::World world(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  if (!paralab::every_rank_has_its_own_gpu(world)) {
    world.printf(
        "test_nccl_comm: skipped: each of the %d ranks on a node needs a CUDA GPU of its "
        "own (%d visible to rank 0)\n",
        world.local_size(), paralab::cuda::device_count());
    return paralab::kSkipped;
  }
  try {
    return paralab::run_tests(world);
  } catch (const paralab::Error& e) {
    // Raised alike on every rank (NCCL setup failures are agreed on), so all return.
    if (e.scope() != paralab::Scope::all_ranks) paralab::abort_run(e.what());
    if (world.is_root()) std::fprintf(stderr, "test_nccl_comm: %s\n", e.what());
    return static_cast<int>(e.code());
  }
}
