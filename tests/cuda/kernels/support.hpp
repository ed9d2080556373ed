// support.hpp: what the CUDA kernel tests share: device arrays filled from
// and read back into host vectors, random inputs, and comparisons that name
// the first mismatching element.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/bf16.hpp"
#include "core/cuda_api.hpp"
#include "core/device.hpp"

namespace paralab::cuda_test {

// A device copy of a host vector (never zero bytes, so empty inputs still get
// a valid pointer).
template <class T>
class DeviceArray {
 public:
  explicit DeviceArray(size_t count)
      : buffer_(Device::cuda, std::max<size_t>(count, 1) * sizeof(T)), count_(count) {}
  explicit DeviceArray(const std::vector<T>& host) : DeviceArray(host.size()) {
    buffer_.upload(host.data(), host.size() * sizeof(T));
  }
  T* data() { return buffer_.as<T>(); }
  std::vector<T> read() const {
    std::vector<T> host(count_);
    buffer_.download(host.data(), count_ * sizeof(T));
    return host;
  }

 private:
  Buffer buffer_;
  size_t count_;
};

// Waits for the queued kernels and surfaces their errors.
inline void sync() {
  paralab::cuda::synchronize();
}

inline std::vector<float> random_floats(size_t n, unsigned seed, float low = -1.0f,
                                        float high = 1.0f) {
  std::mt19937 generator(seed);
  std::uniform_real_distribution<float> uniform(low, high);
  std::vector<float> values(n);
  for (auto& v : values) v = uniform(generator);
  return values;
}

inline std::vector<bf16> to_bf16(const std::vector<float>& values) {
  std::vector<bf16> out(values.size());
  for (size_t i = 0; i < values.size(); ++i) out[i] = float_to_bf16_rne(values[i]);
  return out;
}

// Expects |actual - expected| <= atol + rtol * |expected| everywhere (and
// no NaN unless expected); reports the count, the worst and the first failure.
inline void expect_close(const std::vector<float>& actual, const std::vector<float>& expected,
                         double atol, double rtol, const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  size_t bad = 0, first = 0, worst = 0;
  double worst_excess = -1;
  for (size_t i = 0; i < actual.size(); ++i) {
    const double a = actual[i], e = expected[i];
    const double error = std::fabs(a - e);
    const double limit = atol + rtol * std::fabs(e);
    const bool same_special = (std::isnan(a) && std::isnan(e)) || (std::isinf(e) && a == e);
    if (same_special) continue;
    if (!(error <= limit)) {
      if (bad++ == 0) first = i;
      const double excess = std::isnan(error) ? 1e300 : error - limit;
      if (excess > worst_excess) worst_excess = excess, worst = i;
    }
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << actual.size() << " elements outside atol "
                     << atol << " + rtol " << rtol << "; first [" << first << "] "
                     << (bad ? actual[first] : 0.0f) << " vs " << (bad ? expected[first] : 0.0f)
                     << "; worst [" << worst << "] " << (bad ? actual[worst] : 0.0f) << " vs "
                     << (bad ? expected[worst] : 0.0f);
}

// Expects the same bits everywhere.
template <class T>
void expect_same_bits(const std::vector<T>& actual, const std::vector<T>& expected,
                      const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < actual.size(); ++i) {
    if (std::memcmp(&actual[i], &expected[i], sizeof(T)) != 0 && bad++ == 0) first = i;
  }
  if (bad == 0) return;
  auto bits = [](const T& value) {
    uint64_t word = 0;
    std::memcpy(&word, &value, sizeof(T));
    std::ostringstream text;
    text << "0x" << std::hex << word;
    return text.str();
  };
  ADD_FAILURE() << what << ": " << bad << " of " << actual.size() << " elements differ; first ["
                << first << "] " << bits(actual[first]) << " vs " << bits(expected[first]);
}

}  // namespace paralab::cuda_test
