// support.hpp: what every kernels_bench file shares: the limits measured
// once at start-up on the same cores, and the counters each benchmark reports
// (achieved rate and its ratio to the limit).
#pragma once

#include <benchmark/benchmark.h>

#include "kernels/gemm.hpp"

#include <cstddef>
#include <random>
#include <string>
#include <vector>

namespace paralab::kernels_bench {

struct Limits {
  int threads = 1;
  double sgemm_gflops = 0;  // OpenBLAS SGEMM, 4096^3, all threads
  double memory_GBps = 0;   // best of copies (bytes read + written) and a read-only sum
};
const Limits& limits();

// Times the loop of `state` (wall clock, all iterations) and reports
// GFLOP/s and "of_sgemm" (GFLOP/s / SGEMM GFLOP/s) for compute-bound kernels.
template <class Body>
void run_compute_bound(benchmark::State& state, double flops_per_iteration, Body&& body);
// Reports GB/s (bytes read + written) and "of_memory" for memory-bound kernels.
template <class Body>
void run_memory_bound(benchmark::State& state, double bytes_per_iteration, Body&& body);

// A GEMM of the model layers, named for the report.
struct GemmProduct {
  std::string name;
  kernels::GemmShape shape;
};
// The forward (X W^T) and the two backward products (dY W, dY^T X) of a
// linear layer with K inputs and N outputs over M tokens.
std::vector<GemmProduct> linear_layer_products(int M, int N, int K);

// Random FP32 values in [-1, 1), reproducible from the seed.
std::vector<float> random_floats(size_t n, unsigned seed);

// --- implementation -----------------------------------------------------------

// Sets `rate` = units per second of the loop's wall time and `ratio` = rate / limit.
void report(benchmark::State& state, double units, double seconds, double limit, const char* rate,
            const char* ratio);
double now_seconds();

template <class Body>
void run_compute_bound(benchmark::State& state, double flops_per_iteration, Body&& body) {
  const double start = now_seconds();
  for (auto _ : state) body();
  report(state, flops_per_iteration / 1e9 * state.iterations(), now_seconds() - start,
         limits().sgemm_gflops, "GFLOPs", "of_sgemm");
}

template <class Body>
void run_memory_bound(benchmark::State& state, double bytes_per_iteration, Body&& body) {
  const double start = now_seconds();
  for (auto _ : state) body();
  report(state, bytes_per_iteration / 1e9 * state.iterations(), now_seconds() - start,
         limits().memory_GBps, "GBps", "of_memory");
}

}  // namespace paralab::kernels_bench
