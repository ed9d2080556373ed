// kernel_test_support.hpp: helpers the kernel tests share.
#pragma once

#include <gtest/gtest.h>
#include <omp.h>

#include <functional>

#include "kernels/cpu/dispatch.hpp"

namespace paralab::kernels::test {

// Runs `check` on every CPU path this machine has, naming the path in failures.
inline void for_each_path(const std::function<void()>& check) {
  cpu::detail::force_portable(false);
  if (cpu::detail::has_avx512_bf16()) {
    SCOPED_TRACE("path: avx512");
    check();
  }
  cpu::detail::force_portable(true);
  {
    SCOPED_TRACE("path: portable");
    check();
  }
  cpu::detail::force_portable(false);
}

// Sets the OpenMP thread count for a scope.
class ThreadCount {
 public:
  explicit ThreadCount(int threads) : saved_(omp_get_max_threads()) {
    omp_set_num_threads(threads);
  }
  ~ThreadCount() { omp_set_num_threads(saved_); }
  ThreadCount(const ThreadCount&) = delete;
  ThreadCount& operator=(const ThreadCount&) = delete;

 private:
  int saved_;
};

}  // namespace paralab::kernels::test
