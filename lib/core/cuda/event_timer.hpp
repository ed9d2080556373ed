// event_timer.hpp: EventTimer, which times the work queued on a CUDA stream
// between start() and stop() with a pair of CUDA events, so that a
// measurement covers the GPU's execution rather than the host's launches.
// Only CUDA-aware translation units include this header.
#pragma once

#include <cuda_runtime.h>

namespace paralab::cuda {

// Move-only; owns its two events. Reusable: start() again for a new interval.
class EventTimer {
 public:
  EventTimer();  // needs a bound device; throws RuntimeError on failure
  ~EventTimer();
  EventTimer(EventTimer&& other) noexcept;
  EventTimer& operator=(EventTimer&& other) noexcept;
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;

  void start(cudaStream_t stream);
  void stop(cudaStream_t stream);
  // Waits for the stop event, then returns the interval in seconds (about
  // half a microsecond resolution). Throws RuntimeError unless start() and
  // stop() were both called.
  double seconds() const;

 private:
  void release() noexcept;
  cudaEvent_t start_ = nullptr;
  cudaEvent_t stop_ = nullptr;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace paralab::cuda
