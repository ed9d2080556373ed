#include "comm/comm.hpp"

#include "core/errors.hpp"
#include "core/world.hpp"

namespace paralab::comm {

Request& Request::operator=(Request&& other) noexcept {
  if (this != &other) {
    Request finished(std::move(impl_));  // waits as it goes out of scope
    impl_ = std::move(other.impl_);
  }
  return *this;
}

Request::~Request() {
  // A destructor must not throw: a failed wait here ends the whole job.
  try {
    if (impl_) impl_->wait();
  } catch (const std::exception& e) {
    abort_run(std::string("waiting for a request: ") + e.what());
  }
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
