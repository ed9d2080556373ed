// cuda_kernel_tests: every CUDA kernel of kernels/cuda against the reference
// implementations (kernels/reference), one file per kernel family beside
// this main. Without a GPU the whole program is skipped: it exits with 77,
// ctest's skip code, before GoogleTest runs.
#include <gtest/gtest.h>

#include <cstdio>
#include <exception>

#include "core/cuda_api.hpp"
#include "core/device.hpp"

int main(int argc, char** argv) {
  constexpr int kSkipped = 77;
  if (paralab::cuda::device_count() == 0) {
    std::printf("cuda_kernel_tests: no CUDA GPU visible, skipped\n");
    return kSkipped;
  }
  try {
    paralab::cuda::set_device(0);
    std::printf("cuda_kernel_tests on %s\n", paralab::device_name(paralab::Device::cuda).c_str());
  } catch (const std::exception& error) {
    std::fprintf(stderr, "cuda_kernel_tests: %s\n", error.what());
    return 1;
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
