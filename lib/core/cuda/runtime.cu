#include "core/cuda/check.cuh"
#include "core/cuda_api.hpp"

namespace paralab::cuda {

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return count;
}

void set_device(int index) {
  PARALAB_CUDA_CHECK(cudaSetDevice(index));
}

std::string device_name() {
  int index = 0;
  PARALAB_CUDA_CHECK(cudaGetDevice(&index));
  cudaDeviceProp properties{};
  PARALAB_CUDA_CHECK(cudaGetDeviceProperties(&properties, index));
  return properties.name;
}

void* malloc_device(size_t bytes) {
  void* pointer = nullptr;
  PARALAB_CUDA_CHECK(cudaMalloc(&pointer, bytes));
  return pointer;
}

void free_device(void* pointer) {
  cudaFree(pointer);
}

void copy_to_device(void* device, const void* host, size_t bytes) {
  PARALAB_CUDA_CHECK(cudaMemcpy(device, host, bytes, cudaMemcpyHostToDevice));
  // From pageable memory cudaMemcpy may return before the DMA lands, and the
  // non-blocking streams NCCL and kernels use do not order after it.
  PARALAB_CUDA_CHECK(cudaDeviceSynchronize());
}

void copy_to_host(void* host, const void* device, size_t bytes) {
  PARALAB_CUDA_CHECK(cudaMemcpy(host, device, bytes, cudaMemcpyDeviceToHost));
}

void synchronize() {
  PARALAB_CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace paralab::cuda
