// cuda_api.hpp: the few CUDA runtime calls lib/core needs, behind plain C++
// declarations so that CPU-only translation units need no CUDA headers.
// Implemented in cuda/runtime.cu; only linked when the CUDA backend is built.
#pragma once

#include <cstddef>
#include <string>

namespace paralab::cuda {

int device_count();  // 0 when no GPU or no driver
void set_device(int index);
std::string device_name();  // of the current device
void* malloc_device(size_t bytes);
void free_device(void* pointer);
void copy_to_device(void* device, const void* host, size_t bytes);
void copy_to_host(void* host, const void* device, size_t bytes);
void synchronize();

}  // namespace paralab::cuda
