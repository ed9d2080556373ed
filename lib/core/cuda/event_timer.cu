#include "core/cuda/event_timer.hpp"

#include <utility>

#include "core/cuda/check.cuh"
#include "core/errors.hpp"

namespace paralab::cuda {

EventTimer::EventTimer() {
  PARALAB_CUDA_CHECK(cudaEventCreate(&start_));
  const cudaError_t created = cudaEventCreate(&stop_);
  if (created != cudaSuccess) release();  // the destructor will not run for a failed constructor
  PARALAB_CUDA_CHECK(created);
}

EventTimer::~EventTimer() {
  release();
}

EventTimer::EventTimer(EventTimer&& other) noexcept
    : start_(std::exchange(other.start_, nullptr)),
      stop_(std::exchange(other.stop_, nullptr)),
      started_(std::exchange(other.started_, false)),
      stopped_(std::exchange(other.stopped_, false)) {}

EventTimer& EventTimer::operator=(EventTimer&& other) noexcept {
  if (this != &other) {
    release();
    start_ = std::exchange(other.start_, nullptr);
    stop_ = std::exchange(other.stop_, nullptr);
    started_ = std::exchange(other.started_, false);
    stopped_ = std::exchange(other.stopped_, false);
  }
  return *this;
}

void EventTimer::release() noexcept {
  if (start_ != nullptr) cudaEventDestroy(start_);
  if (stop_ != nullptr) cudaEventDestroy(stop_);
  start_ = stop_ = nullptr;
}

void EventTimer::start(cudaStream_t stream) {
  if (start_ == nullptr) throw RuntimeError("EventTimer::start on a moved-from timer");
  PARALAB_CUDA_CHECK(cudaEventRecord(start_, stream));
  started_ = true;
  stopped_ = false;
}

void EventTimer::stop(cudaStream_t stream) {
  if (!started_) throw RuntimeError("EventTimer::stop before start");
  PARALAB_CUDA_CHECK(cudaEventRecord(stop_, stream));
  stopped_ = true;
}

double EventTimer::seconds() const {
  if (!stopped_) throw RuntimeError("EventTimer::seconds before start and stop");
  PARALAB_CUDA_CHECK(cudaEventSynchronize(stop_));
  float milliseconds = 0.0f;
  PARALAB_CUDA_CHECK(cudaEventElapsedTime(&milliseconds, start_, stop_));
  return static_cast<double>(milliseconds) * 1e-3;
}

}  // namespace paralab::cuda
