#include "core/device.hpp"

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <new>
#include <utility>

#include "core/errors.hpp"

#ifdef PARALAB_HAVE_CUDA
#include "core/cuda_api.hpp"
#endif

namespace paralab {

namespace {

[[noreturn, maybe_unused]] void no_cuda() {
  throw UsageError("--device cuda: this build has no CUDA backend (configure with nvcc present)");
}

std::string cpu_model_name() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(" \t", colon + 1));
    }
  }
  return "unknown CPU";
}

}  // namespace

std::string_view device_label(Device device) {
  return device == Device::cpu ? "cpu" : "cuda";
}

Device parse_device(std::string_view text) {
  if (text == "cpu") return Device::cpu;
  if (text == "cuda") return Device::cuda;
  throw UsageError("unknown device '" + std::string(text) + "' (use cpu or cuda)");
}

bool cuda_built() {
#ifdef PARALAB_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

void bind_device(Device device, int local_rank, int local_size) {
  if (device == Device::cpu) return;
#ifdef PARALAB_HAVE_CUDA
  const int count = cuda::device_count();
  if (count == 0) throw RuntimeError("--device cuda: no CUDA GPU is visible to this process");
  if (count < local_size)
    throw RuntimeError("--device cuda: " + std::to_string(local_size) +
                       " ranks on this host but only " + std::to_string(count) +
                       " GPU(s) visible; run one rank per GPU");
  cuda::set_device(local_rank);
#else
  (void)local_rank;
  (void)local_size;
  no_cuda();
#endif
}

std::string device_name(Device device) {
  if (device == Device::cpu) return cpu_model_name();
#ifdef PARALAB_HAVE_CUDA
  return cuda::device_name();
#else
  no_cuda();
#endif
}

void synchronize_device(Device device) {
  if (device == Device::cpu) return;
#ifdef PARALAB_HAVE_CUDA
  cuda::synchronize();
#else
  no_cuda();
#endif
}

Buffer::Buffer(Device device, size_t bytes) : device_(device), bytes_(bytes) {
  if (bytes == 0) return;
  if (device == Device::cpu) {
    constexpr size_t alignment = 64;
    data_ = std::aligned_alloc(alignment, (bytes + alignment - 1) / alignment * alignment);
    if (data_ == nullptr) throw std::bad_alloc();
    return;
  }
#ifdef PARALAB_HAVE_CUDA
  data_ = cuda::malloc_device(bytes);
#else
  no_cuda();
#endif
}

Buffer::~Buffer() {
  release();
}

Buffer::Buffer(Buffer&& other) noexcept
    : device_(other.device_),
      data_(std::exchange(other.data_, nullptr)),
      bytes_(std::exchange(other.bytes_, 0)) {}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    release();
    device_ = other.device_;
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void Buffer::release() {
  if (data_ == nullptr) return;
  if (device_ == Device::cpu) {
    std::free(data_);
  } else {
#ifdef PARALAB_HAVE_CUDA
    cuda::free_device(data_);
#endif
  }
  data_ = nullptr;
}

void Buffer::upload(const void* host, size_t bytes, size_t offset) {
  if (offset + bytes > bytes_) throw RuntimeError("Buffer::upload past the end of the buffer");
  if (bytes == 0) return;
  char* target = static_cast<char*>(data_) + offset;
  if (device_ == Device::cpu) {
    std::memcpy(target, host, bytes);
    return;
  }
#ifdef PARALAB_HAVE_CUDA
  cuda::copy_to_device(target, host, bytes);
#endif
}

void Buffer::download(void* host, size_t bytes, size_t offset) const {
  if (offset + bytes > bytes_) throw RuntimeError("Buffer::download past the end of the buffer");
  if (bytes == 0) return;
  const char* source = static_cast<const char*>(data_) + offset;
  if (device_ == Device::cpu) {
    std::memcpy(host, source, bytes);
    return;
  }
#ifdef PARALAB_HAVE_CUDA
  cuda::copy_to_host(host, source, bytes);
#endif
}

}  // namespace paralab
