// device.hpp: where a run computes (CPU or a CUDA GPU), device selection per
// rank, and Buffer, an owning allocation on either device.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace paralab {

enum class Device { cpu, cuda };

std::string_view device_label(Device device);  // "cpu" | "cuda"
Device parse_device(std::string_view text);    // throws UsageError
bool cuda_built();                             // compiled with the CUDA backend

// Makes `device` usable by this rank: for CUDA, GPU number local_rank.
// Throws UsageError if CUDA was not built, RuntimeError if this host has
// fewer visible GPUs than ranks (NCCL needs one GPU per rank).
void bind_device(Device device, int local_rank, int local_size);
// "AMD EPYC 9654 96-Core Processor" or "NVIDIA H100 80GB HBM3".
std::string device_name(Device device);
// Waits for all work queued on the device (no-op on the CPU).
void synchronize_device(Device device);

// An owning byte buffer on the CPU (64-byte aligned) or on the bound GPU.
class Buffer {
 public:
  Buffer() = default;
  Buffer(Device device, size_t bytes);
  ~Buffer();
  Buffer(Buffer&& other) noexcept;
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  void* data() { return data_; }
  const void* data() const { return data_; }
  template <class T>
  T* as() {
    return static_cast<T*>(data_);
  }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

  // Copies between host memory and this buffer (synchronous).
  void upload(const void* host, size_t bytes, size_t offset = 0);
  void download(void* host, size_t bytes, size_t offset = 0) const;

 private:
  void release();
  Device device_ = Device::cpu;
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace paralab
