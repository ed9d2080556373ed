#include "comm/comm.hpp"

#include "core/errors.hpp"

namespace paralab::comm {

Request& Request::operator=(Request&& other) noexcept {
  if (this != &other) {
    if (impl_) impl_->wait();
    impl_ = std::move(other.impl_);
  }
  return *this;
}

Request::~Request() {
  if (impl_) impl_->wait();
}

void Request::wait() {
  if (!impl_) return;
  impl_->wait();
  impl_.reset();
}

Request Communicator::start_ring_step(const void* send_buffer, void* recv_buffer, size_t count,
                                      DType type, int shift) {
  const int n = size();
  const int dest = ((rank() + shift) % n + n) % n;
  const int source = ((rank() - shift) % n + n) % n;
  return start_sendrecv(send_buffer, count, dest, recv_buffer, count, source, type);
}

std::unique_ptr<Communicator> make_communicator(Device device, MPI_Comm comm) {
  return device == Device::cpu ? make_mpi_communicator(comm) : make_nccl_communicator(comm);
}

#ifndef PARALAB_HAVE_CUDA
std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm) {
  throw UsageError("the NCCL backend needs a CUDA build (configure with nvcc present)");
}
#endif

}  // namespace paralab::comm
