// The MPI backend: host buffers, MPI-3 calls, int-count checked.
#include <climits>
#include <string>
#include <vector>

#include "comm/comm.hpp"
#include "core/bf16.hpp"
#include "core/errors.hpp"

namespace paralab::comm {

namespace {

int checked_int(size_t value, const char* what) {
  if (value > static_cast<size_t>(INT_MAX))
    throw RuntimeError(std::string("MPI backend: ") + what + " of " + std::to_string(value) +
                       " elements exceeds MPI's int count limit");
  return static_cast<int>(value);
}

// bf16 travels as a 2-byte type of its own so that reductions can convert to
// FP32, combine, and round back to nearest-even.
void bf16_reduce(void* in, void* inout, int* length, MPI_Datatype*, ReduceOp op) {
  const auto* a = static_cast<const bf16*>(in);
  auto* b = static_cast<bf16*>(inout);
  for (int i = 0; i < *length; ++i) {
    const float x = bf16_to_float(a[i]);
    const float y = bf16_to_float(b[i]);
    const float r = op == ReduceOp::sum   ? x + y
                    : op == ReduceOp::max ? (x > y ? x : y)
                                          : (x < y ? x : y);
    b[i] = float_to_bf16_rne(r);
  }
}
void bf16_sum(void* in, void* inout, int* n, MPI_Datatype* t) {
  bf16_reduce(in, inout, n, t, ReduceOp::sum);
}
void bf16_max(void* in, void* inout, int* n, MPI_Datatype* t) {
  bf16_reduce(in, inout, n, t, ReduceOp::max);
}
void bf16_min(void* in, void* inout, int* n, MPI_Datatype* t) {
  bf16_reduce(in, inout, n, t, ReduceOp::min);
}

struct Bf16Types {
  MPI_Datatype type = MPI_DATATYPE_NULL;
  MPI_Op sum = MPI_OP_NULL, max = MPI_OP_NULL, min = MPI_OP_NULL;
};

// Created once, on first use, and left for MPI_Finalize to release.
const Bf16Types& bf16_types() {
  static const Bf16Types types = [] {
    Bf16Types t;
    MPI_Type_contiguous(2, MPI_BYTE, &t.type);
    MPI_Type_commit(&t.type);
    MPI_Op_create(&bf16_sum, 1, &t.sum);
    MPI_Op_create(&bf16_max, 1, &t.max);
    MPI_Op_create(&bf16_min, 1, &t.min);
    return t;
  }();
  return types;
}

MPI_Datatype mpi_type(DType type) {
  switch (type) {
    case DType::f32:
      return MPI_FLOAT;
    case DType::f64:
      return MPI_DOUBLE;
    case DType::bf16:
      return bf16_types().type;
    case DType::i32:
      return MPI_INT32_T;
    case DType::i64:
      return MPI_INT64_T;
    case DType::u8:
      return MPI_UINT8_T;
  }
  throw RuntimeError("MPI backend: unknown DType");
}

MPI_Op mpi_op(ReduceOp op, DType type) {
  if (type == DType::bf16) {
    const auto& t = bf16_types();
    return op == ReduceOp::sum ? t.sum : op == ReduceOp::max ? t.max : t.min;
  }
  return op == ReduceOp::sum ? MPI_SUM : op == ReduceOp::max ? MPI_MAX : MPI_MIN;
}

class MpiRequests : public Request::Impl {
 public:
  explicit MpiRequests(std::vector<MPI_Request> requests) : requests_(std::move(requests)) {}
  void wait() override {
    MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE);
  }

 private:
  std::vector<MPI_Request> requests_;
};

std::vector<int> to_ints(std::span<const size_t> values, const char* what) {
  std::vector<int> out(values.size());
  for (size_t i = 0; i < values.size(); ++i) out[i] = checked_int(values[i], what);
  return out;
}

class MpiCommunicator : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, int rank, int size) : Communicator(rank, size), comm_(comm) {}
  ~MpiCommunicator() override {
    int finalised = 0;
    MPI_Finalized(&finalised);
    if (!finalised) MPI_Comm_free(&comm_);
  }

  std::string_view backend() const override { return "mpi"; }
  Device device() const override { return Device::cpu; }

  void send(const void* buffer, size_t count, DType type, int peer, int tag) override {
    MPI_Send(buffer, checked_int(count, "send"), mpi_type(type), peer, tag, comm_);
  }
  void recv(void* buffer, size_t count, DType type, int peer, int tag) override {
    MPI_Recv(buffer, checked_int(count, "recv"), mpi_type(type), peer, tag, comm_,
             MPI_STATUS_IGNORE);
  }
  Request isend(const void* buffer, size_t count, DType type, int peer, int tag) override {
    std::vector<MPI_Request> r(1);
    MPI_Isend(buffer, checked_int(count, "isend"), mpi_type(type), peer, tag, comm_, &r[0]);
    return Request(std::make_unique<MpiRequests>(std::move(r)));
  }
  Request irecv(void* buffer, size_t count, DType type, int peer, int tag) override {
    std::vector<MPI_Request> r(1);
    MPI_Irecv(buffer, checked_int(count, "irecv"), mpi_type(type), peer, tag, comm_, &r[0]);
    return Request(std::make_unique<MpiRequests>(std::move(r)));
  }
  Request start_sendrecv(const void* send_buffer, size_t send_count, int dest, void* recv_buffer,
                         size_t recv_count, int source, DType type) override {
    // The receive is posted first so an eager send always finds it waiting.
    constexpr int kRingTag = 7001;
    std::vector<MPI_Request> r(2);
    MPI_Irecv(recv_buffer, checked_int(recv_count, "sendrecv"), mpi_type(type), source, kRingTag,
              comm_, &r[0]);
    MPI_Isend(send_buffer, checked_int(send_count, "sendrecv"), mpi_type(type), dest, kRingTag,
              comm_, &r[1]);
    return Request(std::make_unique<MpiRequests>(std::move(r)));
  }

  void alltoall(const void* send, void* recv, size_t count_per_peer, DType type) override {
    const int count = checked_int(count_per_peer, "alltoall");
    MPI_Alltoall(send, count, mpi_type(type), recv, count, mpi_type(type), comm_);
  }
  void alltoallv(const void* send, std::span<const size_t> send_counts,
                 std::span<const size_t> send_displs, void* recv,
                 std::span<const size_t> recv_counts, std::span<const size_t> recv_displs,
                 DType type) override {
    check_per_peer(send_counts.size(), send_displs.size(), recv_counts.size(), recv_displs.size());
    auto sc = to_ints(send_counts, "alltoallv count");
    auto sd = to_ints(send_displs, "alltoallv displacement");
    auto rc = to_ints(recv_counts, "alltoallv count");
    auto rd = to_ints(recv_displs, "alltoallv displacement");
    MPI_Alltoallv(send, sc.data(), sd.data(), mpi_type(type), recv, rc.data(), rd.data(),
                  mpi_type(type), comm_);
  }
  void allreduce(const void* send, void* recv, size_t count, DType type, ReduceOp op) override {
    MPI_Allreduce(send == recv ? MPI_IN_PLACE : send, recv, checked_int(count, "allreduce"),
                  mpi_type(type), mpi_op(op, type), comm_);
  }
  void allgather(const void* send, void* recv, size_t count_per_rank, DType type) override {
    const int count = checked_int(count_per_rank, "allgather");
    MPI_Allgather(send, count, mpi_type(type), recv, count, mpi_type(type), comm_);
  }
  void reduce_scatter(const void* send, void* recv, size_t count_per_rank, DType type,
                      ReduceOp op) override {
    MPI_Reduce_scatter_block(send, recv, checked_int(count_per_rank, "reduce_scatter"),
                             mpi_type(type), mpi_op(op, type), comm_);
  }
  void allgatherv(const void* send, size_t send_count, void* recv, std::span<const size_t> counts,
                  std::span<const size_t> displs, DType type) override {
    check_per_peer(counts.size(), displs.size(), counts.size(), displs.size());
    const auto c = to_ints(counts, "allgatherv count");
    const auto d = to_ints(displs, "allgatherv displacement");
    const auto me = static_cast<size_t>(rank());
    if (send_count != counts[me])
      throw RuntimeError("allgatherv: this rank sends " + std::to_string(send_count) +
                         " elements, its count says " + std::to_string(counts[me]));
    const bool in_place = send == static_cast<const char*>(recv) + displs[me] * dtype_size(type);
    MPI_Allgatherv(in_place ? MPI_IN_PLACE : send, c[me], mpi_type(type), recv, c.data(), d.data(),
                   mpi_type(type), comm_);
  }
  void reduce_scatter_v(const void* send, void* recv, std::span<const size_t> counts, DType type,
                        ReduceOp op) override {
    check_per_peer(counts.size(), counts.size(), counts.size(), counts.size());
    const auto c = to_ints(counts, "reduce_scatter_v count");
    MPI_Reduce_scatter(send, recv, c.data(), mpi_type(type), mpi_op(op, type), comm_);
  }
  void barrier() override { MPI_Barrier(comm_); }
  void synchronize() override {}

 private:
  void check_per_peer(size_t a, size_t b, size_t c, size_t d) const {
    const auto n = static_cast<size_t>(size());
    if (a != n || b != n || c != n || d != n)
      throw RuntimeError("alltoallv: counts and displacements need one entry per rank");
  }

  MPI_Comm comm_;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(MPI_Comm comm) {
  MPI_Comm own;
  MPI_Comm_dup(comm, &own);
  int rank = 0;
  int size = 1;
  MPI_Comm_rank(own, &rank);
  MPI_Comm_size(own, &size);
  return std::make_unique<MpiCommunicator>(own, rank, size);
}

}  // namespace paralab::comm
