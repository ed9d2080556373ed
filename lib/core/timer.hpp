// timer.hpp: wall-clock timing on the steady clock. GPU work is timed with
// CUDA events (core/cuda/event_timer.hpp) or by synchronising first.
#pragma once

#include <chrono>

namespace paralab {

class Stopwatch {
 public:
  Stopwatch() : start_(Clock::now()) {}
  void restart() { start_ = Clock::now(); }
  double seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

 private:
  using Clock = std::chrono::steady_clock;
  Clock::time_point start_;
};

}  // namespace paralab
