// kernel_test_support.hpp: helpers the kernel tests share.
#pragma once

#include <gtest/gtest.h>
#include <omp.h>

#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/bf16.hpp"

#include "kernels/cpu/isa.hpp"

namespace paralab::kernels::test {

// Runs `check` on every instruction-set tier this CPU has (isa.hpp), naming the tier in
// failures, then restores the tier in force.
inline void for_each_isa(const std::function<void()>& check) {
  for (const cpu::Isa isa : cpu::available_isas()) {
    SCOPED_TRACE(std::string("isa: ") + cpu::isa_name(isa));
    cpu::ScopedIsa scope(isa);
    check();
  }
}

// Random values in [-1, 1), reproducible from the seed.
inline std::vector<float> random_values(size_t n, unsigned seed) {
  std::mt19937 generator(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> values(n);
  for (auto& x : values) x = uniform(generator);
  return values;
}

// Each value rounded to BF16 (nearest even).
inline std::vector<bf16> to_bf16(const std::vector<float>& values) {
  std::vector<bf16> out(values.size());
  for (size_t i = 0; i < values.size(); ++i) out[i] = float_to_bf16_rne(values[i]);
  return out;
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
