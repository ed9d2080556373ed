// comm_bench's expected values, checked against a host-side model of each
// collective built from the layouts alone. This keeps --check honest: a
// wrong expectation would otherwise pass or fail together with the backend.
#include <gtest/gtest.h>

#include <vector>

#include "comm_bench/collectives.hpp"

using namespace paralab::comm_bench;
using paralab::DType;

namespace {

using Rows = std::vector<std::vector<double>>;  // [rank][element]

Rows send_buffers(std::string_view op, size_t bytes, int n) {
  Rows send(n);
  for (int r = 0; r < n; ++r) {
    Layout l = find_collective(op).layout(bytes, 4, r, n);
    for (size_t i = 0; i < l.send_count; ++i) send[r].push_back(send_value(r, i));
  }
  return send;
}

// What each rank receives, computed the slow and obvious way.
Rows model(std::string_view op, size_t bytes, int n) {
  const Rows send = send_buffers(op, bytes, n);
  Rows recv(n);
  for (int r = 0; r < n; ++r) {
    const Layout l = find_collective(op).layout(bytes, 4, r, n);
    recv[r].assign(l.recv_count, 0);
    for (size_t i = 0; i < l.recv_count; ++i) {
      if (op == "sendrecv") recv[r][i] = send[(r + n - 1) % n][i];
      if (op == "allreduce")
        for (int s = 0; s < n; ++s) recv[r][i] += send[s][i];
      if (op == "alltoall") recv[r][i] = send[i / l.block][r * l.block + i % l.block];
      if (op == "allgather") recv[r][i] = send[i / l.block][i % l.block];
      if (op == "reducescatter")
        for (int s = 0; s < n; ++s) recv[r][i] += send[s][r * l.block + i];
    }
    if (op == "alltoallv") {
      for (int s = 0; s < n; ++s) {
        const Layout ls = find_collective(op).layout(bytes, 4, s, n);
        for (size_t j = 0; j < l.recv_counts[s]; ++j)
          recv[r][l.recv_displs[s] + j] = send[s][ls.send_displs[r] + j];
      }
    }
  }
  return recv;
}

}  // namespace

class CollectiveExpectations
    : public ::testing::TestWithParam<std::tuple<std::string, int, size_t>> {};

TEST_P(CollectiveExpectations, MatchAHostModel) {
  const auto& [op, n, bytes] = GetParam();
  const Rows want = model(op, bytes, n);
  for (int r = 0; r < n; ++r) {
    const Layout l = find_collective(op).layout(bytes, 4, r, n);
    ASSERT_EQ(want[r].size(), l.recv_count);
    for (size_t i = 0; i < l.recv_count; ++i)
      ASSERT_EQ(find_collective(op).expected(l, r, n, i, DType::f32), want[r][i])
          << op << " rank " << r << " element " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(AllOps, CollectiveExpectations,
                         ::testing::Combine(::testing::Values("sendrecv", "alltoall", "alltoallv",
                                                              "allreduce", "allgather",
                                                              "reducescatter"),
                                            ::testing::Values(1, 2, 3, 5),
                                            ::testing::Values(4u, 100u, 1000u)));

TEST(Layouts, RoundDownToWholeElementsAndEqualBlocks) {
  // 1000 bytes of f32 over 3 ranks: 250 elements -> blocks of 83.
  auto a2a = find_collective("alltoall").layout(1000, 4, 0, 3);
  EXPECT_EQ(a2a.block, 83u);
  EXPECT_EQ(a2a.bytes, 83u * 3 * 4);
  auto ag = find_collective("allgather").layout(1000, 4, 1, 3);
  EXPECT_EQ(ag.send_count, 83u);
  EXPECT_EQ(ag.recv_count, 249u);
  auto rs = find_collective("reducescatter").layout(1000, 4, 2, 3);
  EXPECT_EQ(rs.send_count, 249u);
  EXPECT_EQ(rs.recv_count, 83u);
  auto ar = find_collective("allreduce").layout(1001, 4, 0, 3);
  EXPECT_EQ(ar.send_count, 250u);
  EXPECT_EQ(ar.bytes, 1000u);
  // Fewer elements than ranks: nothing to move, the point is skipped.
  EXPECT_EQ(find_collective("alltoall").layout(8, 4, 0, 3).bytes, 0u);
}

TEST(Layouts, AlltoallvIsUnevenButConsistent) {
  const int n = 4;
  size_t sent = 0, received = 0;
  bool uneven = false;
  for (int r = 0; r < n; ++r) {
    auto l = find_collective("alltoallv").layout(4096, 4, r, n);
    for (int p = 0; p < n; ++p) {
      auto lp = find_collective("alltoallv").layout(4096, 4, p, n);
      EXPECT_EQ(l.send_counts[p], lp.recv_counts[r]) << "rank " << r << " to " << p;
      uneven |= l.send_counts[p] != l.send_counts[0];
    }
    sent += l.send_count;
    received += l.recv_count;
  }
  EXPECT_TRUE(uneven);
  EXPECT_EQ(sent, received);
}

TEST(BusFactors, MatchNcclTests) {
  EXPECT_DOUBLE_EQ(find_collective("allreduce").bus_factor(4), 1.5);
  EXPECT_DOUBLE_EQ(find_collective("allgather").bus_factor(4), 0.75);
  EXPECT_DOUBLE_EQ(find_collective("reducescatter").bus_factor(8), 0.875);
  EXPECT_DOUBLE_EQ(find_collective("alltoall").bus_factor(2), 0.5);
  EXPECT_DOUBLE_EQ(find_collective("sendrecv").bus_factor(8), 1.0);
  EXPECT_DOUBLE_EQ(find_collective("allreduce").bus_factor(1), 0.0);
}

TEST(Representable, WrapsAndRounds) {
  EXPECT_EQ(representable(300, DType::u8), 44);
  EXPECT_EQ(representable(257, DType::bf16), 256);  // 8 significant bits, tie to even
  EXPECT_EQ(representable(259, DType::bf16), 260);
  EXPECT_EQ(representable(16777217, DType::f32), 16777216);
  EXPECT_EQ(representable(16777217, DType::f64), 16777217);
}

TEST(ElementAccess, StoreLoadEveryType) {
  for (DType t : {DType::f32, DType::f64, DType::bf16, DType::i32, DType::i64, DType::u8}) {
    std::vector<unsigned char> buffer(8 * 4);
    store(t, buffer.data(), 3, 13);
    EXPECT_EQ(load(t, buffer.data(), 3), 13) << paralab::dtype_name(t);
  }
}
