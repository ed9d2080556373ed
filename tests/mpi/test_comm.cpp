// The MPI backend of comm::Communicator against hand-computed results, at
// counts that do not divide by the rank count.
#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "comm/comm.hpp"
#include "core/bf16.hpp"
#include "core/errors.hpp"

using paralab::DType;
using paralab::comm::ReduceOp;

namespace {
std::unique_ptr<paralab::comm::Communicator> world_comm() {
  return paralab::comm::make_mpi_communicator(MPI_COMM_WORLD);
}
}  // namespace

TEST(MpiComm, RingStepBothDirections) {
  auto c = world_comm();
  const int n = c->size(), me = c->rank();
  for (int shift : {1, -1, 2}) {
    std::vector<int32_t> send(7, me), recv(7, -1);
    c->ring_step(send.data(), recv.data(), send.size(), DType::i32, shift);
    const int source = ((me - shift) % n + n) % n;
    EXPECT_EQ(recv, std::vector<int32_t>(7, source)) << "shift " << shift;
  }
}

TEST(MpiComm, NonBlockingPointToPointOverlapsAPairExchange) {
  auto c = world_comm();
  const int n = c->size(), me = c->rank();
  const int peer = n - 1 - me;  // pairs (0,n-1), (1,n-2)...; the middle rank talks to itself
  std::vector<double> send(1001), recv(1001, -1);
  std::iota(send.begin(), send.end(), me * 10000.0);
  auto r = c->irecv(recv.data(), recv.size(), DType::f64, peer, 3);
  auto s = c->isend(send.data(), send.size(), DType::f64, peer, 3);
  s.wait();
  r.wait();
  EXPECT_FALSE(r.active());
  EXPECT_EQ(recv[0], peer * 10000.0);
  EXPECT_EQ(recv[1000], peer * 10000.0 + 1000);
}

TEST(MpiComm, BlockingSendRecvAlongAChain) {
  auto c = world_comm();
  const int n = c->size(), me = c->rank();
  int64_t token = 0;
  if (me > 0) c->recv(&token, 1, DType::i64, me - 1);
  token += me + 1;
  if (me < n - 1) c->send(&token, 1, DType::i64, me + 1);
  if (me == n - 1) {
    EXPECT_EQ(token, int64_t{n} * (n + 1) / 2);
  }
}

TEST(MpiComm, AllreduceSumMaxMinAndInPlace) {
  auto c = world_comm();
  const int n = c->size(), me = c->rank();
  std::vector<float> v(13, static_cast<float>(me + 1)), out(13);
  c->allreduce(v.data(), out.data(), v.size(), DType::f32, ReduceOp::sum);
  EXPECT_EQ(out[12], n * (n + 1) / 2.0f);
  c->allreduce(v.data(), out.data(), v.size(), DType::f32, ReduceOp::max);
  EXPECT_EQ(out[0], static_cast<float>(n));
  c->allreduce(v.data(), v.data(), v.size(), DType::f32, ReduceOp::min);
  EXPECT_EQ(v[5], 1.0f);
}

TEST(MpiComm, Bf16AllreduceRoundsToNearestEven) {
  auto c = world_comm();
  const int n = c->size(), me = c->rank();
  // Each rank adds 1 to 256: in bf16, 256 + 1 = 257 ties to even and stays 256,
  // so rounding after every step gives 256, not 256 + n - 1.
  std::vector<paralab::bf16> v(5, paralab::float_to_bf16_rne(me == 0 ? 256.0f : 1.0f));
  c->allreduce(v.data(), v.data(), v.size(), DType::bf16, ReduceOp::sum);
  const float got = paralab::bf16_to_float(v[0]);
  if (n <= 2) {
    EXPECT_EQ(got, 256.0f);
  }
  EXPECT_GE(got, 256.0f);
  EXPECT_LE(got, 256.0f + 2 * (n - 1));
  std::vector<paralab::bf16> small(3, paralab::float_to_bf16_rne(0.5f * (me + 1)));
  c->allreduce(small.data(), small.data(), small.size(), DType::bf16, ReduceOp::max);
  EXPECT_EQ(paralab::bf16_to_float(small[2]), 0.5f * n);
}

TEST(MpiComm, AllgatherAndReduceScatterOddBlocks) {
  auto c = world_comm();
  const int n = c->size(), me = c->rank();
  const size_t block = 5;
  std::vector<int32_t> mine(block, me), all(block * n, -1);
  c->allgather(mine.data(), all.data(), block, DType::i32);
  for (int r = 0; r < n; ++r) EXPECT_EQ(all[r * block + block - 1], r);

  std::vector<int32_t> contrib(block * n), piece(block, -1);
  for (size_t i = 0; i < contrib.size(); ++i) contrib[i] = static_cast<int32_t>(i) * (me + 1);
  c->reduce_scatter(contrib.data(), piece.data(), block, DType::i32, ReduceOp::sum);
  const int32_t factor = n * (n + 1) / 2;
  for (size_t j = 0; j < block; ++j)
    EXPECT_EQ(piece[j], static_cast<int32_t>(me * block + j) * factor);
}

TEST(MpiComm, AlltoallvUnevenCounts) {
  auto c = world_comm();
  const int n = c->size(), me = c->rank();
  // Rank s sends s + d + 1 elements to rank d, each equal to 100 * s + d.
  std::vector<size_t> sc(n), sd(n), rc(n), rd(n);
  size_t sent = 0, received = 0;
  for (int p = 0; p < n; ++p) {
    sc[p] = me + p + 1, sd[p] = sent, sent += sc[p];
    rc[p] = p + me + 1, rd[p] = received, received += rc[p];
  }
  std::vector<int32_t> send(sent), recv(received, -1);
  for (int p = 0; p < n; ++p) std::fill_n(send.begin() + sd[p], sc[p], 100 * me + p);
  c->alltoallv(send.data(), sc, sd, recv.data(), rc, rd, DType::i32);
  for (int p = 0; p < n; ++p)
    for (size_t j = 0; j < rc[p]; ++j) EXPECT_EQ(recv[rd[p] + j], 100 * p + me);
  std::vector<size_t> wrong(n + 1);
  EXPECT_THROW(c->alltoallv(send.data(), wrong, sd, recv.data(), rc, rd, DType::i32),
               paralab::RuntimeError);
}

TEST(MpiComm, AllgathervAndReduceScatterVUnevenCounts) {
  auto c = world_comm();
  const int n = c->size(), me = c->rank();
  // Rank r owns 2r + 1 elements (rank 0 one, rank 3 seven), blocks back to back.
  std::vector<size_t> counts, displs;
  size_t total = 0;
  for (int r = 0; r < n; ++r) {
    counts.push_back(2 * r + 1);
    displs.push_back(total);
    total += counts.back();
  }
  std::vector<float> mine(counts[me]);
  for (size_t i = 0; i < mine.size(); ++i) mine[i] = 100.0f * me + i;
  std::vector<float> gathered(total, -1), expected;
  for (int r = 0; r < n; ++r)
    for (size_t i = 0; i < counts[r]; ++i) expected.push_back(100.0f * r + i);
  c->allgatherv(mine.data(), mine.size(), gathered.data(), counts, displs, DType::f32);
  EXPECT_EQ(gathered, expected);
  // In place: this rank's block already sits in the receive buffer.
  std::vector<float> in_place(total, -1);
  std::copy(mine.begin(), mine.end(), in_place.begin() + displs[me]);
  c->allgatherv(in_place.data() + displs[me], mine.size(), in_place.data(), counts, displs,
                DType::f32);
  EXPECT_EQ(in_place, expected);
  // Every rank contributes (rank + 1) * position; rank r gets block r summed.
  std::vector<float> contribution(total);
  for (size_t i = 0; i < total; ++i) contribution[i] = float((me + 1) * i);
  std::vector<float> share(counts[me], -1), expected_share;
  const float ranks_sum = float(n * (n + 1) / 2);
  for (size_t i = 0; i < counts[me]; ++i) expected_share.push_back(ranks_sum * (displs[me] + i));
  c->reduce_scatter_v(contribution.data(), share.data(), counts, DType::f32, ReduceOp::sum);
  EXPECT_EQ(share, expected_share);
  EXPECT_THROW(
      c->allgatherv(mine.data(), mine.size() + 1, gathered.data(), counts, displs, DType::f32),
      paralab::RuntimeError);
}

TEST(MpiComm, AlltoallBlocks) {
  auto c = world_comm();
  const int n = c->size(), me = c->rank();
  const size_t block = 3;
  std::vector<int64_t> send(block * n), recv(block * n, -1);
  for (int d = 0; d < n; ++d)
    for (size_t j = 0; j < block; ++j) send[d * block + j] = 1000 * me + 10 * d + j;
  c->alltoall(send.data(), recv.data(), block, DType::i64);
  for (int s = 0; s < n; ++s)
    for (size_t j = 0; j < block; ++j) EXPECT_EQ(recv[s * block + j], 1000 * s + 10 * me + j);
}

TEST(MpiComm, CountsBeyondIntAreRefusedClearly) {
  auto c = world_comm();
  char byte = 0;
  EXPECT_THROW(c->allreduce(&byte, &byte, size_t{1} << 31, DType::u8, ReduceOp::sum),
               paralab::RuntimeError);
}
