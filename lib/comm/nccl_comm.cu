// The NCCL backend: GPU buffers on the bound device, one NCCL communicator and
// one CUDA stream per Communicator, bootstrapped over a duplicate of the MPI
// communicator.
//
// NCCL has no tags: messages between two ranks match in the order they are
// issued, so the tag arguments are accepted and ignored. All operations of a
// communicator run in issue order on its one stream, so an isend and an irecv
// issued separately do not overlap: two ranks that both irecv before they
// isend wait for each other forever. Exchanges in both directions belong in
// start_sendrecv, which is one NCCL group.
#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>

#include <exception>
#include <memory>
#include <string>
#include <type_traits>

#include "comm/comm.hpp"
#include "core/cuda/check.cuh"
#include "core/errors.hpp"
#include "core/world.hpp"

namespace paralab::comm {

namespace {

std::string nccl_failure(const char* call, const char* file, int line, ncclResult_t status) {
  std::string message = std::string(call) + " failed at " + file + ":" + std::to_string(line) +
                        ": " + ncclGetErrorString(status);
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 13, 0)
  // The result code alone is vague ("invalid usage"); the last error names the cause.
  const char* detail = ncclGetLastError(nullptr);
  if (detail != nullptr && detail[0] != '\0') message += " (" + std::string(detail) + ")";
#endif
  return message;
}

}  // namespace

#define PARALAB_NCCL_CHECK(call)                                                           \
  do {                                                                                     \
    ncclResult_t paralab_nccl_status_ = (call);                                            \
    if (paralab_nccl_status_ != ncclSuccess)                                               \
      throw ::paralab::RuntimeError(                                                       \
          ::paralab::comm::nccl_failure(#call, __FILE__, __LINE__, paralab_nccl_status_)); \
  } while (0)

namespace {

ncclDataType_t nccl_type(DType type) {
  switch (type) {
    case DType::f32:
      return ncclFloat32;
    case DType::f64:
      return ncclFloat64;
    case DType::bf16:
      return ncclBfloat16;
    case DType::i32:
      return ncclInt32;
    case DType::i64:
      return ncclInt64;
    case DType::u8:
      return ncclUint8;
  }
  throw RuntimeError("NCCL backend: unknown DType");
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum:
      return ncclSum;
    case ReduceOp::max:
      return ncclMax;
    case ReduceOp::min:
      return ncclMin;
  }
  throw RuntimeError("NCCL backend: unknown ReduceOp");
}

const void* offset(const void* base, size_t elements, DType type) {
  return static_cast<const char*>(base) + elements * dtype_size(type);
}
void* offset(void* base, size_t elements, DType type) {
  return static_cast<char*>(base) + elements * dtype_size(type);
}

int comm_rank(MPI_Comm comm) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  return rank;
}

int comm_size(MPI_Comm comm) {
  int size = 1;
  MPI_Comm_size(comm, &size);
  return size;
}

// Owns a duplicate of the caller's communicator so that the bootstrap and the
// barrier never match messages of the application.
class DuplicateComm {
 public:
  explicit DuplicateComm(MPI_Comm comm) { MPI_Comm_dup(comm, &comm_); }
  ~DuplicateComm() {
    int finalised = 0;
    MPI_Finalized(&finalised);
    if (!finalised) MPI_Comm_free(&comm_);
  }
  DuplicateComm(const DuplicateComm&) = delete;
  DuplicateComm& operator=(const DuplicateComm&) = delete;
  MPI_Comm get() const { return comm_; }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
};

// While an exception unwinds, peers may never match the queued work, so
// waiting for it (ncclCommDestroy) could hang; abort it instead.
struct NcclRelease {
  void operator()(ncclComm_t comm) const noexcept {
    if (std::uncaught_exceptions() > 0)
      ncclCommAbort(comm);
    else
      ncclCommDestroy(comm);
  }
};
using NcclHandle = std::unique_ptr<std::remove_pointer_t<ncclComm_t>, NcclRelease>;

struct StreamRelease {
  void operator()(cudaStream_t stream) const noexcept { cudaStreamDestroy(stream); }
};
using StreamHandle = std::unique_ptr<std::remove_pointer_t<cudaStream_t>, StreamRelease>;

// Non-blocking, so that the communicator's work never serialises with kernels
// that other code launches on the legacy default stream.
StreamHandle make_stream() {
  cudaStream_t stream = nullptr;
  PARALAB_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  return StreamHandle(stream);
}

// Rank 0's failure is agreed on first, so no rank waits for an id that never comes.
ncclUniqueId shared_unique_id(MPI_Comm comm, int rank) {
  ncclUniqueId id{};
  agree_on(comm, [&] {
    if (rank == 0) PARALAB_NCCL_CHECK(ncclGetUniqueId(&id));
  });
  MPI_Bcast(&id, static_cast<int>(sizeof id), MPI_BYTE, 0, comm);
  return id;
}

NcclHandle init_rank(int size, const ncclUniqueId& id, int rank) {
  ncclComm_t comm = nullptr;
  PARALAB_NCCL_CHECK(ncclCommInitRank(&comm, size, id, rank));
  return NcclHandle(comm);
}

// Makes the NCCL calls of `body` one group, so that sends and receives that
// depend on each other progress together. The group is closed even when a
// call fails, which leaves NCCL usable for the next operation.
template <class Body>
void grouped(Body&& body) {
  PARALAB_NCCL_CHECK(ncclGroupStart());
  try {
    body();
  } catch (...) {
    ncclGroupEnd();
    throw;
  }
  PARALAB_NCCL_CHECK(ncclGroupEnd());
}

// The event follows the group on the stream, so waiting for it also waits for
// everything queued before.
class NcclRequest final : public Request::Impl {
 public:
  explicit NcclRequest(cudaStream_t stream) {
    PARALAB_CUDA_CHECK(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming));
    const cudaError_t recorded = cudaEventRecord(event_, stream);
    if (recorded != cudaSuccess) {
      cudaEventDestroy(event_);
      PARALAB_CUDA_CHECK(recorded);
    }
  }
  ~NcclRequest() override { cudaEventDestroy(event_); }
  NcclRequest(const NcclRequest&) = delete;
  NcclRequest& operator=(const NcclRequest&) = delete;
  void wait() override { PARALAB_CUDA_CHECK(cudaEventSynchronize(event_)); }

 private:
  cudaEvent_t event_ = nullptr;
};

class NcclCommunicator final : public Communicator {
 public:
  explicit NcclCommunicator(MPI_Comm comm)
      : Communicator(comm_rank(comm), comm_size(comm)), mpi_(comm) {
    const ncclUniqueId id = shared_unique_id(mpi_.get(), rank());
    // Agreed on before ncclCommInitRank, which would wait forever for a rank
    // that failed here; its own failures (two ranks on one GPU) are seen by all.
    agree_on(mpi_.get(), [&] { stream_ = make_stream(); });
    agree_on(mpi_.get(), [&] { nccl_ = init_rank(size(), id, rank()); });
  }
  ~NcclCommunicator() override {
    // ncclCommDestroy expects no queued operation; the members release the rest.
    if (std::uncaught_exceptions() == 0) cudaStreamSynchronize(stream_.get());
  }

  std::string_view backend() const override { return "nccl"; }
  Device device() const override { return Device::cuda; }

  void send(const void* buffer, size_t count, DType type, int peer, int) override {
    start_send(buffer, count, type, peer);
    synchronize();
  }
  void recv(void* buffer, size_t count, DType type, int peer, int) override {
    start_recv(buffer, count, type, peer);
    synchronize();
  }
  Request isend(const void* buffer, size_t count, DType type, int peer, int) override {
    start_send(buffer, count, type, peer);
    return started();
  }
  Request irecv(void* buffer, size_t count, DType type, int peer, int) override {
    start_recv(buffer, count, type, peer);
    return started();
  }
  Request start_sendrecv(const void* send_buffer, size_t send_count, int dest, void* recv_buffer,
                         size_t recv_count, int source, DType type) override {
    check_peer(dest);
    check_peer(source);
    grouped([&] {
      enqueue_send(send_buffer, send_count, type, dest);
      enqueue_recv(recv_buffer, recv_count, type, source);
    });
    return started();
  }

  void alltoall(const void* send, void* recv, size_t count_per_peer, DType type) override {
    grouped([&] {
      for (int peer = 0; peer < size(); ++peer) {
        const size_t at = static_cast<size_t>(peer) * count_per_peer;
        enqueue_send(offset(send, at, type), count_per_peer, type, peer);
        enqueue_recv(offset(recv, at, type), count_per_peer, type, peer);
      }
    });
  }
  void alltoallv(const void* send, std::span<const size_t> send_counts,
                 std::span<const size_t> send_displs, void* recv,
                 std::span<const size_t> recv_counts, std::span<const size_t> recv_displs,
                 DType type) override {
    check_per_peer(send_counts.size(), send_displs.size(), recv_counts.size(), recv_displs.size());
    grouped([&] {
      for (int peer = 0; peer < size(); ++peer) {
        const auto p = static_cast<size_t>(peer);
        // Both sides skip empty blocks alike, since a send count is its peer's receive count.
        if (send_counts[p] > 0)
          enqueue_send(offset(send, send_displs[p], type), send_counts[p], type, peer);
        if (recv_counts[p] > 0)
          enqueue_recv(offset(recv, recv_displs[p], type), recv_counts[p], type, peer);
      }
    });
  }
  void allreduce(const void* send, void* recv, size_t count, DType type, ReduceOp op) override {
    // NCCL works in place by itself when send == recv.
    PARALAB_NCCL_CHECK(
        ncclAllReduce(send, recv, count, nccl_type(type), nccl_op(op), comm(), stream()));
  }
  void allgather(const void* send, void* recv, size_t count_per_rank, DType type) override {
    PARALAB_NCCL_CHECK(
        ncclAllGather(send, recv, count_per_rank, nccl_type(type), comm(), stream()));
  }
  void reduce_scatter(const void* send, void* recv, size_t count_per_rank, DType type,
                      ReduceOp op) override {
    PARALAB_NCCL_CHECK(ncclReduceScatter(send, recv, count_per_rank, nccl_type(type), nccl_op(op),
                                         comm(), stream()));
  }
  // NCCL has no variable-count collectives: one grouped broadcast per rank's
  // block (allgatherv) and one grouped reduce to each rank (reduce_scatter_v),
  // as NCCL's documentation suggests for irregular patterns.
  void allgatherv(const void* send, size_t send_count, void* recv, std::span<const size_t> counts,
                  std::span<const size_t> displs, DType type) override {
    check_per_peer(counts.size(), displs.size(), counts.size(), displs.size());
    if (send_count != counts[static_cast<size_t>(rank())])
      throw RuntimeError("allgatherv: this rank's send count does not match its count");
    grouped([&] {
      for (int root = 0; root < size(); ++root) {
        const auto r = static_cast<size_t>(root);
        if (counts[r] == 0) continue;
        void* block = offset(recv, displs[r], type);
        PARALAB_NCCL_CHECK(ncclBroadcast(root == rank() ? send : block, block, counts[r],
                                         nccl_type(type), root, comm(), stream()));
      }
    });
  }
  void reduce_scatter_v(const void* send, void* recv, std::span<const size_t> counts, DType type,
                        ReduceOp op) override {
    check_per_peer(counts.size(), counts.size(), counts.size(), counts.size());
    grouped([&] {
      size_t at = 0;
      for (int root = 0; root < size(); ++root) {
        const auto r = static_cast<size_t>(root);
        if (counts[r] > 0)
          PARALAB_NCCL_CHECK(ncclReduce(offset(send, at, type), recv, counts[r], nccl_type(type),
                                        nccl_op(op), root, comm(), stream()));
        at += counts[r];
      }
    });
  }
  void barrier() override {
    // A rank passes the barrier only once its own queued work has finished.
    synchronize();
    MPI_Barrier(mpi_.get());
  }
  void synchronize() override { PARALAB_CUDA_CHECK(cudaStreamSynchronize(stream())); }

 private:
  ncclComm_t comm() const { return nccl_.get(); }
  cudaStream_t stream() const { return stream_.get(); }

  Request started() { return Request(std::make_unique<NcclRequest>(stream())); }

  // NCCL would also reject a bad peer, but only as "invalid argument".
  void check_peer(int peer) const {
    if (peer < 0 || peer >= size())
      throw RuntimeError("NCCL backend: peer " + std::to_string(peer) + " is not a rank of a " +
                         std::to_string(size()) + "-rank communicator");
  }
  void check_per_peer(size_t a, size_t b, size_t c, size_t d) const {
    const auto n = static_cast<size_t>(size());
    if (a != n || b != n || c != n || d != n)
      throw RuntimeError("alltoallv: counts and displacements need one entry per rank");
  }

  void enqueue_send(const void* buffer, size_t count, DType type, int peer) {
    PARALAB_NCCL_CHECK(ncclSend(buffer, count, nccl_type(type), peer, comm(), stream()));
  }
  void enqueue_recv(void* buffer, size_t count, DType type, int peer) {
    PARALAB_NCCL_CHECK(ncclRecv(buffer, count, nccl_type(type), peer, comm(), stream()));
  }
  void start_send(const void* buffer, size_t count, DType type, int peer) {
    check_peer(peer);
    grouped([&] { enqueue_send(buffer, count, type, peer); });
  }
  void start_recv(void* buffer, size_t count, DType type, int peer) {
    check_peer(peer);
    grouped([&] { enqueue_recv(buffer, count, type, peer); });
  }

  // Declared in release order reversed: NCCL goes first, then its stream,
  // then the MPI communicator that bootstrapped it.
  DuplicateComm mpi_;
  StreamHandle stream_;
  NcclHandle nccl_;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm comm) {
  return std::make_unique<NcclCommunicator>(comm);
}

}  // namespace paralab::comm
