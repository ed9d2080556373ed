// kernels_bench: Google Benchmark over the kernel library. Before the
// benchmarks run, it measures the limits their rates are compared with, on
// the same cores and thread count: OpenBLAS SGEMM GFLOP/s and STREAM-style
// memory bandwidth (best of copies and a read-only sum). Threads: --threads N
// (default: every core of the host). --isa TIER (or PARALAB_ISA) runs the
// kernels on a lower instruction-set tier (kernels/cpu/isa.hpp).
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "bench/results.hpp"
#include "core/errors.hpp"
#include "kernels/cpu/isa.hpp"
#include "kernels/threads.hpp"
#include "support.hpp"

namespace paralab::kernels_bench {

namespace {

Limits measured;

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Best of a few runs: the limit is what the cores can do, not an average.
double measure_sgemm_gflops() {
  const int n = 4096;
  std::vector<float> a = random_floats(size_t{n} * n, 1), b = random_floats(size_t{n} * n, 2);
  std::vector<float> c(size_t{n} * n);
  double best = 0;
  for (int run = 0; run < 4; ++run) {
    const auto start = std::chrono::steady_clock::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n,
                0.0f, c.data(), n);
    best = std::max(best, 2.0 * n * n * n / seconds_since(start) / 1e9);
  }
  return best;
}

// Bytes moved per second over 256 MiB buffers split over the threads: the
// best of a copy loop, glibc's memcpy and a read-only sum. A copy without
// non-temporal stores also reads its target (write-allocate), which the
// bytes-read-plus-written count does not see, so kernels with streaming
// stores can beat it; reading alone has no such hidden traffic.
double measure_memory_GBps() {
  const size_t n = size_t{64} << 20;  // floats
  std::vector<float> source(n, 1.0f), target(n, 0.0f);
  auto copy_loop = [&] {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; ++i) target[i] = source[i];
  };
  auto copy_memcpy = [&] {
#pragma omp parallel
    {
      const size_t parts = static_cast<size_t>(omp_get_num_threads());
      const size_t part = static_cast<size_t>(omp_get_thread_num());
      const size_t begin = n * part / parts, end = n * (part + 1) / parts;
      std::memcpy(target.data() + begin, source.data() + begin, (end - begin) * sizeof(float));
    }
  };
  uint64_t checksum = 0;
  auto read_only = [&] {
    const auto* words = reinterpret_cast<const uint64_t*>(source.data());
    uint64_t sum = 0;
#pragma omp parallel for schedule(static) reduction(+ : sum)
    for (size_t i = 0; i < n / 2; ++i) sum += words[i];
    checksum += sum;
  };
  double best = 0;
  for (int run = 0; run < 5; ++run) {
    auto start = std::chrono::steady_clock::now();
    read_only();
    best = std::max(best, 1.0 * n * sizeof(float) / seconds_since(start) / 1e9);
    start = std::chrono::steady_clock::now();
    copy_loop();
    best = std::max(best, 2.0 * n * sizeof(float) / seconds_since(start) / 1e9);
    start = std::chrono::steady_clock::now();
    copy_memcpy();
    best = std::max(best, 2.0 * n * sizeof(float) / seconds_since(start) / 1e9);
  }
  benchmark::DoNotOptimize(target.data());
  benchmark::DoNotOptimize(checksum);
  return best;
}

// Removes `--name VALUE` / `--name=VALUE` from argv (Google Benchmark rejects options it does
// not know) and returns the last value given, if any.
std::optional<std::string> take_option(int& argc, char** argv, const std::string& name) {
  std::optional<std::string> value;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    int used = 0;
    if (arg == name && i + 1 < argc) value = argv[i + 1], used = 2;
    if (arg.rfind(name + "=", 0) == 0) value = arg.substr(name.size() + 1), used = 1;
    if (used == 0) continue;
    std::memmove(argv + i, argv + i + used, sizeof(char*) * (argc - i - used + 1));
    argc -= used;
    --i;
  }
  return value;
}

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "kernels_bench: error: %s\n", message.c_str());
  std::exit(1);
}

// --threads N (default: the cores this process owns).
int take_threads_option(int& argc, char** argv) {
  const auto value = take_option(argc, argv, "--threads");
  if (!value) return kernels::default_threads(1);
  char* end = nullptr;
  const long threads = std::strtol(value->c_str(), &end, 10);
  if (value->empty() || *end != '\0' || threads < 1 || threads > 4096)
    usage_error("--threads " + *value + ": needs an integer from 1 to 4096");
  return static_cast<int>(threads);
}

// --isa TIER: run the kernels on a lower instruction-set tier than the best (isa.hpp), to
// measure what a smaller CPU would run; PARALAB_ISA does the same.
void take_isa_option(int& argc, char** argv) {
  namespace cpu = kernels::cpu;
  std::optional<cpu::Isa> tier;
  try {
    tier = cpu::isa_from_environment();
  } catch (const std::invalid_argument& e) {
    usage_error(e.what());
  }
  if (const auto value = take_option(argc, argv, "--isa")) {
    tier = cpu::isa_from_name(*value);
    const auto& available = cpu::available_isas();
    if (!tier || std::find(available.begin(), available.end(), *tier) == available.end()) {
      std::string names;
      for (const cpu::Isa isa : available)
        names += std::string(names.empty() ? "" : ", ") + cpu::isa_name(isa);
      usage_error("--isa " + *value + ": " + (tier ? "this CPU cannot run it" : "no such tier") +
                  " (this CPU: " + names + ")");
    }
  }
  if (tier) cpu::force_isa(*tier);
}

}  // namespace

const Limits& limits() {
  return measured;
}

std::vector<GemmProduct> linear_layer_products(int M, int N, int K) {
  using kernels::Trans;
  const std::string layer = "_N" + std::to_string(N) + "_K" + std::to_string(K);
  return {
      {"forward_XWt" + layer, {Trans::no, Trans::yes, M, N, K}},
      {"backward_dYW" + layer, {Trans::no, Trans::no, M, K, N}},
      {"backward_dYtX" + layer, {Trans::yes, Trans::no, N, K, M}},
  };
}

std::vector<float> random_floats(size_t n, unsigned seed) {
  std::mt19937 generator(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> values(n);
  for (auto& v : values) v = uniform(generator);
  return values;
}

void report(benchmark::State& state, double units, double seconds, double limit, const char* rate,
            const char* ratio) {
  state.counters[rate] = units / seconds;
  state.counters[ratio] = units / seconds / limit;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace paralab::kernels_bench

int main(int argc, char** argv) {
  using namespace paralab;
  std::string command_line;
  for (int i = 0; i < argc; ++i) {
    if (i > 0) command_line += ' ';
    command_line += argv[i];
  }
  const std::string out = bench::take_out_option(argc, argv, "kernels_bench");
  const int threads = kernels_bench::take_threads_option(argc, argv);
  bool listing = false;  // --benchmark_list_tests runs nothing: no limits to measure, no file
  for (int i = 1; i < argc; ++i)
    listing |= std::string(argv[i]).rfind("--benchmark_list_tests", 0) == 0 &&
               std::string(argv[i]) != "--benchmark_list_tests=false";
  // Every run also lands in the suite's HDF5 schema (-o FILE; default results/...); the path
  // is claimed before anything is measured.
  std::unique_ptr<bench::BenchmarkResults> results;
  try {
    if (!listing)
      results = std::make_unique<bench::BenchmarkResults>("kernels_bench", out, command_line);
  } catch (const Error& e) {
    std::fprintf(stderr, "kernels_bench: error: %s\n", e.what());
    return static_cast<int>(e.code());
  }
  kernels_bench::take_isa_option(argc, argv);
  kernels::set_threads(threads);
  kernels_bench::measured.threads = threads;
  if (!listing) {
    kernels_bench::measured.sgemm_gflops = kernels_bench::measure_sgemm_gflops();
    kernels_bench::measured.memory_GBps = kernels_bench::measure_memory_GBps();
  }
  benchmark::AddCustomContext("threads", std::to_string(threads));
  benchmark::AddCustomContext("limit_sgemm_GFLOPs",
                              std::to_string(kernels_bench::measured.sgemm_gflops));
  benchmark::AddCustomContext("limit_memory_GBps",
                              std::to_string(kernels_bench::measured.memory_GBps));
  benchmark::AddCustomContext("isa", kernels::cpu::isa_description());
  std::printf("limits on %d thread(s): OpenBLAS SGEMM %.1f GFLOP/s, memory %.1f GB/s\n", threads,
              kernels_bench::measured.sgemm_gflops, kernels_bench::measured.memory_GBps);
  std::printf("kernels on instruction-set tier %s\n", kernels::cpu::isa_description().c_str());
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  if (listing) {
    benchmark::RunSpecifiedBenchmarks();
    return 0;
  }
  results->add_config("threads", std::to_string(threads));
  results->add_config("isa", kernels::cpu::isa_description());
  results->add_limit("sgemm_GFLOPs", kernels_bench::measured.sgemm_gflops);
  results->add_limit("memory_GBps", kernels_bench::measured.memory_GBps);
  int errors = 0;
  try {
    errors = results->run();
  } catch (const Error& e) {
    std::fprintf(stderr, "kernels_bench: error: %s\n", e.what());
    return static_cast<int>(e.code());
  }
  // A run that reports an error (a CUDA benchmark without a GPU, a tier this CPU lacks) is a
  // skip, as Google Benchmark treats it: recorded with its message, not a failed program.
  if (errors > 0) std::printf("# %d run(s) skipped with an error (recorded as 'error')\n", errors);
  benchmark::Shutdown();
  return 0;
}
