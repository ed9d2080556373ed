// The CUDA kernels on the GPU (only when the CUDA backend is built): attention forward
// (BF16 and FP32 inputs, causal, D = 128, 32 query heads over 8 key/value heads, GQA 4:1,
// T = S = 1k..32k), attention backward (FP32, 1k..8k), cuBLAS GEMM (BF16 and FP32, 8192^3
// and the three products of the 4096 x 4096 and 11008 x 4096 linear layers over 4096 tokens,
// named as in bench_gemm.cpp) and the BF16 conversions (round to nearest even, stochastic)
// at 256M elements. Every name starts with BM_cuda_, so --benchmark_filter=cuda selects them.
//
// Timing: CUDA events around one call per iteration (manual time). Before each call a
// 256 MiB memset on the same stream evicts the L2 cache (50 MiB on H100) and keeps the GPU
// busy while the host queues the start event and the kernel, so launch latency stays out of
// the interval; scripts/sdpa_peer.py times PyTorch's SDPA the same way. Inputs are random,
// made and uploaded once per shape (Google Benchmark calls a benchmark several times while it
// settles the iteration count) and warmed up by one untimed call.
//
// Limits, measured once when the first CUDA benchmark runs and printed to stderr:
//   cublas_bf16_tflops  cuBLAS BF16 GEMM (FP32 accumulation) at 8192^3, best of 5 batches
//   memory_GBps         cudaMemcpy device to device of 1 GiB, bytes read + written, best of 5
// Counters: TFLOPs and of_cublas (TFLOPs / cublas_bf16_tflops) for GEMM and attention
// (the backward counts 2.5 x attention_forward_flops, as bench_attention_backward.cpp);
// GBps and of_memory for the conversions and the copy itself.
//
// Without a GPU each case reports "no CUDA GPU" and is skipped; a CUDA error skips the case
// with the error's text rather than ending the run.
#ifdef PARALAB_HAVE_CUDA

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "core/bf16.hpp"
#include "core/cuda/check.cuh"
#include "core/cuda/event_timer.hpp"
#include "core/cuda_api.hpp"
#include "core/device.hpp"
#include "kernels/attention.hpp"
#include "kernels/bf16.hpp"
#include "kernels/gemm.hpp"
#include "support.hpp"

namespace paralab::kernels_bench {
namespace {

using kernels::GemmShape;
using kernels::Rounding;
using kernels::Trans;
using paralab::cuda::EventTimer;

// Everything runs on the legacy default stream, which Buffer's uploads also order after.
constexpr cudaStream_t kStream = nullptr;
constexpr size_t kFlushBytes = size_t{256} << 20;

// --- limits -----------------------------------------------------------------------------

struct GpuLimits {
  double cublas_bf16_tflops = 0;
  double memory_GBps = 0;
};

// Random values in [-1, 1) from the counter-based hash the BF16 kernels use for stochastic
// rounding: reproducible from the seed, and quick to make in parallel for 256M elements.
std::vector<float> host_random(size_t n, unsigned seed) {
  std::vector<float> values(n);
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i)
    values[i] = static_cast<float>(kernels::stochastic_bits(seed, i) >> 8) * 0x1p-23f - 1.0f;
  return values;
}

// A device array of n random values of type T (float or bf16, rounded to nearest even).
template <class T>
Buffer device_random(size_t n, unsigned seed) {
  const std::vector<float> values = host_random(n, seed);
  Buffer buffer(Device::cuda, n * sizeof(T));
  if constexpr (std::is_same_v<T, float>) {
    buffer.upload(values.data(), n * sizeof(float));
  } else {
    std::vector<bf16> rounded(n);
    kernels::cpu::convert(values.data(), rounded.data(), n, Rounding::nearest_even);
    buffer.upload(rounded.data(), n * sizeof(bf16));
  }
  return buffer;
}

// A device array of `bytes` zero bytes (outputs: never timed uninitialised).
Buffer device_zeros(size_t bytes) {
  Buffer buffer(Device::cuda, bytes);
  PARALAB_CUDA_CHECK(cudaMemset(buffer.data(), 0, bytes));
  return buffer;
}

// Best rate of `batches` intervals of `calls` back-to-back calls, after `calls` warm-up calls:
// units per second of one call's `units`.
template <class Body>
double best_rate(double units, int batches, int calls, Body&& body) {
  for (int i = 0; i < calls; ++i) body();
  EventTimer timer;
  double best = 0;
  for (int batch = 0; batch < batches; ++batch) {
    timer.start(kStream);
    for (int i = 0; i < calls; ++i) body();
    timer.stop(kStream);
    best = std::max(best, units * calls / timer.seconds());
  }
  return best;
}

GpuLimits measure_gpu_limits() {
  GpuLimits limits;
  {
    const int n = 8192;
    const GemmShape shape{Trans::no, Trans::no, n, n, n};
    const size_t elements = size_t{n} * n;
    Buffer a = device_random<bf16>(elements, 11), b = device_random<bf16>(elements, 12);
    Buffer c = device_zeros(elements * sizeof(float));
    limits.cublas_bf16_tflops = best_rate(kernels::gemm_flops(shape) / 1e12, 5, 4, [&] {
      kernels::cuda::gemm(shape, a.as<bf16>(), b.as<bf16>(), c.as<float>(), kStream);
    });
  }
  {
    const size_t bytes = size_t{1} << 30;
    Buffer source = device_zeros(bytes), target = device_zeros(bytes);
    limits.memory_GBps = best_rate(2.0 * bytes / 1e9, 5, 2, [&] {
      PARALAB_CUDA_CHECK(
          cudaMemcpyAsync(target.data(), source.data(), bytes, cudaMemcpyDeviceToDevice, kStream));
    });
  }
  std::fprintf(stderr,
               "kernels_bench: CUDA limits on %s: cuBLAS BF16 GEMM 8192^3 %.1f TFLOP/s, "
               "device copy %.1f GB/s\n",
               paralab::cuda::device_name().c_str(), limits.cublas_bf16_tflops, limits.memory_GBps);
  return limits;
}

// Measured on the first call; a failed measurement throws and is tried again next time.
const GpuLimits& gpu_limits() {
  static const GpuLimits limits = measure_gpu_limits();
  return limits;
}

// --- running and reporting ------------------------------------------------------------

// Runs `body` when a GPU is there (limits measured first); otherwise, or when it throws,
// the case is skipped with the reason.
template <class Body>
void on_gpu(benchmark::State& state, Body&& body) {
  if (paralab::cuda::device_count() == 0) {
    state.SkipWithError("no CUDA GPU");
    return;
  }
  try {
    gpu_limits();
    body();
  } catch (const std::exception& error) {
    state.SkipWithError(error.what());
  }
}

Buffer& flush_buffer() {
  static Buffer buffer(Device::cuda, kFlushBytes);
  return buffer;
}

// Times one call of `body` per iteration with CUDA events after an L2-evicting memset (see
// the top of the file); `warm_up` adds one untimed call first. Returns the summed seconds.
template <class Body>
double time_iterations(benchmark::State& state, bool warm_up, Body&& body) {
  Buffer& flush = flush_buffer();
  if (warm_up) {
    body();
    PARALAB_CUDA_CHECK(cudaStreamSynchronize(kStream));
  }
  EventTimer timer;
  double total = 0;
  for (auto _ : state) {
    PARALAB_CUDA_CHECK(cudaMemsetAsync(flush.data(), 0, kFlushBytes, kStream));
    timer.start(kStream);
    body();
    timer.stop(kStream);
    const double seconds = timer.seconds();
    state.SetIterationTime(seconds);
    total += seconds;
  }
  return total;
}

void report_compute(benchmark::State& state, double flops_per_iteration, double seconds) {
  const double tflops =
      flops_per_iteration * static_cast<double>(state.iterations()) / seconds / 1e12;
  state.counters["TFLOPs"] = tflops;
  state.counters["of_cublas"] = tflops / gpu_limits().cublas_bf16_tflops;
}

void report_memory(benchmark::State& state, double bytes_per_iteration, double seconds) {
  const double gbps = bytes_per_iteration * static_cast<double>(state.iterations()) / seconds / 1e9;
  state.counters["GBps"] = gbps;
  state.counters["of_memory"] = gbps / gpu_limits().memory_GBps;
}

// The inputs of one shape, kept between the calls Google Benchmark makes for that shape: one
// slot per Inputs type, so device memory holds one shape of each kind at a time.
template <class Inputs>
struct Slot {
  std::string key;
  std::unique_ptr<Inputs> inputs;
};

// The inputs for `key`, made as Inputs(args...) when the slot holds another key (then
// `fresh` is true: the caller warms the kernel up).
template <class Inputs, class... Args>
Inputs& cached(const std::string& key, bool& fresh, const Args&... args) {
  static Slot<Inputs> slot;
  fresh = !slot.inputs || slot.key != key;
  if (fresh) {
    slot.inputs.reset();  // the previous shape's memory goes first
    slot.key.clear();
    slot.inputs = std::make_unique<Inputs>(args...);
    slot.key = key;
  }
  return *slot.inputs;
}

// --- attention ----------------------------------------------------------------------------

constexpr int kHeads = 32, kKvHeads = 8, kHeadDim = 128;

kernels::AttentionArgs causal_args(int n) {
  kernels::AttentionArgs args;
  args.shape = {n, n, kHeads, kKvHeads, kHeadDim};
  args.mask.causal = true;
  return args;
}

size_t q_elements(int n) {
  return size_t(n) * kHeads * kHeadDim;
}
size_t kv_elements(int n) {
  return size_t(n) * kKvHeads * kHeadDim;
}

template <class T>
struct ForwardInputs {
  explicit ForwardInputs(int n)
      : q(device_random<T>(q_elements(n), 1)),
        k(device_random<T>(kv_elements(n), 2)),
        v(device_random<T>(kv_elements(n), 3)),
        o(device_zeros(q_elements(n) * sizeof(float))),
        lse(device_zeros(size_t(n) * kHeads * sizeof(float))) {}
  Buffer q, k, v, o, lse;
};

// T = S = state.range(0).
template <class T>
void attention_forward(benchmark::State& state) {
  on_gpu(state, [&] {
    const int n = static_cast<int>(state.range(0));
    const kernels::AttentionArgs args = causal_args(n);
    bool fresh = false;
    ForwardInputs<T>& in = cached<ForwardInputs<T>>(std::to_string(n), fresh, n);
    const double seconds = time_iterations(state, fresh, [&] {
      kernels::cuda::attention_forward(args, in.q.template as<T>(), in.k.template as<T>(),
                                       in.v.template as<T>(), in.o.template as<float>(),
                                       in.lse.template as<float>(), kStream);
    });
    report_compute(state, kernels::attention_forward_flops(args), seconds);
  });
}

void BM_cuda_attention_causal_bf16(benchmark::State& state) {
  attention_forward<bf16>(state);
}
void BM_cuda_attention_causal_f32(benchmark::State& state) {
  attention_forward<float>(state);
}

#define PARALAB_CUDA_ATTENTION_BENCHMARK(name, from, to)                       \
  BENCHMARK(name)->RangeMultiplier(2)->Range(from, to)->UseManualTime()->Unit( \
      benchmark::kMillisecond)

PARALAB_CUDA_ATTENTION_BENCHMARK(BM_cuda_attention_causal_bf16, 1 << 10, 32 << 10);
PARALAB_CUDA_ATTENTION_BENCHMARK(BM_cuda_attention_causal_f32, 1 << 10, 32 << 10);

// As in bench_attention_backward.cpp: random O and dO, and LSE = log(visible keys), which
// keeps P at its true size for random Q and K, so no overflow or denormal path is timed.
struct BackwardInputs {
  explicit BackwardInputs(int n)
      : q(device_random<float>(q_elements(n), 1)),
        k(device_random<float>(kv_elements(n), 2)),
        v(device_random<float>(kv_elements(n), 3)),
        o(device_random<float>(q_elements(n), 4)),
        d_o(device_random<float>(q_elements(n), 5)),
        lse(Device::cuda, size_t(n) * kHeads * sizeof(float)),
        dq(device_zeros(q_elements(n) * sizeof(float))),
        dk(device_zeros(kv_elements(n) * sizeof(float))),
        dv(device_zeros(kv_elements(n) * sizeof(float))) {
    std::vector<float> host(size_t(n) * kHeads);
    for (int i = 0; i < n; ++i)
      for (int h = 0; h < kHeads; ++h) host[size_t(i) * kHeads + h] = std::log(float(i + 1));
    lse.upload(host.data(), host.size() * sizeof(float));
  }
  Buffer q, k, v, o, d_o, lse, dq, dk, dv;
};

void BM_cuda_attention_backward_causal_f32(benchmark::State& state) {
  on_gpu(state, [&] {
    const int n = static_cast<int>(state.range(0));
    const kernels::AttentionArgs args = causal_args(n);
    bool fresh = false;
    BackwardInputs& in = cached<BackwardInputs>(std::to_string(n), fresh, n);
    const double seconds = time_iterations(state, fresh, [&] {
      kernels::cuda::attention_backward(args, in.q.as<float>(), in.k.as<float>(), in.v.as<float>(),
                                        in.o.as<float>(), in.lse.as<float>(), in.d_o.as<float>(),
                                        in.dq.as<float>(), in.dk.as<float>(), in.dv.as<float>(),
                                        kStream);
    });
    report_compute(state, 2.5 * kernels::attention_forward_flops(args), seconds);
  });
}
PARALAB_CUDA_ATTENTION_BENCHMARK(BM_cuda_attention_backward_causal_f32, 1 << 10, 8 << 10);

// --- GEMM ---------------------------------------------------------------------------------

std::vector<GemmProduct> products() {
  std::vector<GemmProduct> all = {{"square_8192", {Trans::no, Trans::no, 8192, 8192, 8192}}};
  for (const auto& [n, k] : {std::pair{4096, 4096}, {11008, 4096}})
    for (GemmProduct& p : linear_layer_products(4096, n, k)) all.push_back(std::move(p));
  return all;
}

template <class T>
struct GemmInputs {
  explicit GemmInputs(const GemmShape& s)
      : a(device_random<T>(size_t(s.M) * s.K, 1)),
        b(device_random<T>(size_t(s.K) * s.N, 2)),
        c(device_zeros(size_t(s.M) * s.N * sizeof(float))) {}
  Buffer a, b, c;
};

template <class T>
void run_gemm(benchmark::State& state, const GemmProduct& product) {
  on_gpu(state, [&] {
    bool fresh = false;
    GemmInputs<T>& in = cached<GemmInputs<T>>(product.name, fresh, product.shape);
    const double seconds = time_iterations(state, fresh, [&] {
      kernels::cuda::gemm(product.shape, in.a.template as<T>(), in.b.template as<T>(),
                          in.c.template as<float>(), kStream);
    });
    report_compute(state, kernels::gemm_flops(product.shape), seconds);
  });
}

const bool gemm_registered = [] {
  for (const GemmProduct& p : products()) {
    benchmark::RegisterBenchmark(("BM_cuda_gemm_bf16/" + p.name).c_str(), run_gemm<bf16>, p)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("BM_cuda_gemm_f32/" + p.name).c_str(), run_gemm<float>, p)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
  }
  return true;
}();

// --- memory bound: BF16 conversion and the copy limit --------------------------------------

constexpr size_t kConvertElements = size_t{256} << 20;

struct ConvertInputs {
  ConvertInputs()
      : in(device_random<float>(kConvertElements, 1)),
        out(device_zeros(kConvertElements * sizeof(bf16))) {}
  Buffer in, out;
};

// FP32 -> BF16: reads 4 bytes and writes 2 per element; stochastic rounding draws new bits
// each call (a new seed).
void BM_cuda_bf16_convert_from_f32(benchmark::State& state, Rounding rounding) {
  on_gpu(state, [&] {
    bool fresh = false;
    ConvertInputs& in = cached<ConvertInputs>("convert", fresh);
    uint64_t seed = 0;
    const double seconds = time_iterations(state, fresh, [&] {
      kernels::cuda::convert(in.in.as<float>(), in.out.as<bf16>(), kConvertElements, rounding,
                             ++seed, 0, kStream);
    });
    report_memory(state, 6.0 * kConvertElements, seconds);
  });
}
BENCHMARK_CAPTURE(BM_cuda_bf16_convert_from_f32, nearest_even, Rounding::nearest_even)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_cuda_bf16_convert_from_f32, stochastic, Rounding::stochastic)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// The memory limit itself as a case (of_memory ~ 1 by construction): 1 GiB device to device.
struct CopyInputs {
  CopyInputs() : source(device_zeros(kBytes)), target(device_zeros(kBytes)) {}
  static constexpr size_t kBytes = size_t{1} << 30;
  Buffer source, target;
};

void BM_cuda_memcpy_d2d(benchmark::State& state) {
  on_gpu(state, [&] {
    bool fresh = false;
    CopyInputs& in = cached<CopyInputs>("copy", fresh);
    const double seconds = time_iterations(state, fresh, [&] {
      PARALAB_CUDA_CHECK(cudaMemcpyAsync(in.target.data(), in.source.data(), CopyInputs::kBytes,
                                         cudaMemcpyDeviceToDevice, kStream));
    });
    report_memory(state, 2.0 * CopyInputs::kBytes, seconds);
  });
}
BENCHMARK(BM_cuda_memcpy_d2d)->UseManualTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace paralab::kernels_bench

#endif  // PARALAB_HAVE_CUDA
