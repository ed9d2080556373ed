// comm.hpp: the communication interface every app uses, with an MPI backend
// (host buffers) and an NCCL backend (GPU buffers, bootstrapped through MPI).
//
// Ordering: operations run in the order they are issued. On the MPI backend a
// blocking call has finished when it returns. On NCCL, collectives are queued
// on the communicator's CUDA stream (call synchronize() before the host reads
// the result or stops a timer); blocking point-to-point calls synchronise.
// NCCL also runs non-blocking point-to-point calls in issue order and ignores
// tags: two ranks that each irecv then isend to the other deadlock there, so
// exchanges in both directions use start_sendrecv(). Counts are in elements
// of the given DType.
#pragma once

#include <mpi.h>

#include <cstddef>
#include <memory>
#include <span>
#include <string_view>

#include "core/device.hpp"
#include "core/dtype.hpp"

namespace paralab::comm {

enum class ReduceOp { sum, max, min };

// A started non-blocking operation; wait() completes it. Move-only; waits in
// its destructor so that no operation outlives its buffers unnoticed.
class Request {
 public:
  class Impl {
   public:
    virtual ~Impl() = default;
    virtual void wait() = 0;
  };
  Request() = default;
  explicit Request(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
  Request(Request&&) noexcept = default;
  Request& operator=(Request&& other) noexcept;
  ~Request();
  void wait();
  bool active() const { return impl_ != nullptr; }

 private:
  std::unique_ptr<Impl> impl_;
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual std::string_view backend() const = 0;  // "mpi" | "nccl"
  virtual Device device() const = 0;             // where buffers must live
  int rank() const { return rank_; }
  int size() const { return size_; }

  // Point to point.
  virtual void send(const void* buffer, size_t count, DType type, int peer, int tag = 0) = 0;
  virtual void recv(void* buffer, size_t count, DType type, int peer, int tag = 0) = 0;
  virtual Request isend(const void* buffer, size_t count, DType type, int peer, int tag = 0) = 0;
  virtual Request irecv(void* buffer, size_t count, DType type, int peer, int tag = 0) = 0;
  // Sends to `dest` while receiving from `source`, without deadlock.
  virtual Request start_sendrecv(const void* send_buffer, size_t send_count, int dest,
                                 void* recv_buffer, size_t recv_count, int source, DType type) = 0;
  void sendrecv(const void* send_buffer, size_t send_count, int dest, void* recv_buffer,
                size_t recv_count, int source, DType type) {
    start_sendrecv(send_buffer, send_count, dest, recv_buffer, recv_count, source, type).wait();
  }
  // One step of a ring: send to rank+shift, receive from rank-shift (mod size).
  Request start_ring_step(const void* send_buffer, void* recv_buffer, size_t count, DType type,
                          int shift = 1);
  void ring_step(const void* send_buffer, void* recv_buffer, size_t count, DType type,
                 int shift = 1) {
    start_ring_step(send_buffer, recv_buffer, count, type, shift).wait();
  }

  // Collectives. In place when send and receive buffers are the same pointer
  // (allreduce only). count_per_rank / count_per_peer is the block size each
  // rank contributes or receives.
  virtual void alltoall(const void* send, void* recv, size_t count_per_peer, DType type) = 0;
  // Counts and displacements in elements, one per peer.
  virtual void alltoallv(const void* send, std::span<const size_t> send_counts,
                         std::span<const size_t> send_displs, void* recv,
                         std::span<const size_t> recv_counts, std::span<const size_t> recv_displs,
                         DType type) = 0;
  virtual void allreduce(const void* send, void* recv, size_t count, DType type, ReduceOp op) = 0;
  virtual void allgather(const void* send, void* recv, size_t count_per_rank, DType type) = 0;
  virtual void reduce_scatter(const void* send, void* recv, size_t count_per_rank, DType type,
                              ReduceOp op) = 0;
  // Variable blocks, one count per rank. allgatherv: rank r's `send_count`
  // elements land at recv + displs[r]; in place when send is already there.
  // reduce_scatter_v: `send` holds the blocks back to back (rank 0's first);
  // rank r gets the reduction of block r, counts[r] elements.
  virtual void allgatherv(const void* send, size_t send_count, void* recv,
                          std::span<const size_t> counts, std::span<const size_t> displs,
                          DType type) = 0;
  virtual void reduce_scatter_v(const void* send, void* recv, std::span<const size_t> counts,
                                DType type, ReduceOp op) = 0;
  virtual void barrier() = 0;
  // Waits for every queued operation (no-op on MPI).
  virtual void synchronize() = 0;

 protected:
  Communicator(int rank, int size) : rank_(rank), size_(size) {}

 private:
  int rank_;
  int size_;
};

// MPI over `comm` (duplicated, so the communicator's traffic is its own).
std::unique_ptr<Communicator> make_mpi_communicator(MPI_Comm comm);
// NCCL over the ranks of `comm` on the bound GPU; UsageError without CUDA.
std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm comm);
// MPI for Device::cpu, NCCL for Device::cuda.
std::unique_ptr<Communicator> make_communicator(Device device, MPI_Comm comm);

}  // namespace paralab::comm
