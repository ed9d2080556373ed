// The embedding all-to-all compressor (kernels/compress.hpp) on
// embedding-like data: rows x 64 FP32 values, each row one of `rows`
// distinct N(0, 0.05) rows drawn with Zipf(1.05) popularity (about a third
// of the rows repeat an earlier one at 65536 rows), or all distinct
// ("unique"). Every codec compresses and decompresses on one thread
// (params.threads = 1: the per-core rate a rank gets) and, for the
// quantising codecs, on all threads (".../threads:N"). Counters: GBps = FP32
// input bytes per second (of_memory: that over the measured memory
// bandwidth), ratio = input / stream bytes, bits_per_value = stream bits per
// input value, distinct = distinct rows / rows.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <utility>

#include "kernels/compress.hpp"
#include "support.hpp"

namespace paralab::kernels_bench {
namespace {

namespace compress = kernels::compress;
using compress::Codec;

constexpr size_t kDim = 64;

struct Data {
  std::vector<float> values;
  double distinct = 1;
};

// rows x kDim rows; zipf: drawn from `rows` distinct rows with Zipf(1.05)
// popularity (a random permutation of ranks, so hot rows are spread out).
const Data& embeddings(size_t rows, bool zipf) {
  static std::map<std::pair<size_t, bool>, Data> cache;
  Data& data = cache[{rows, zipf}];
  if (!data.values.empty()) return data;
  std::mt19937 generator(static_cast<unsigned>(rows) + zipf);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::vector<float> table(rows * kDim);
  for (float& x : table) x = normal(generator);
  if (!zipf) {
    data.values = std::move(table);
    return data;
  }
  std::vector<double> cdf(rows);
  double sum = 0;
  for (size_t k = 0; k < rows; ++k)
    cdf[k] = sum += 1.0 / std::pow(static_cast<double>(k + 1), 1.05);
  std::uniform_real_distribution<double> uniform(0.0, sum);
  std::vector<char> seen(rows, 0);
  size_t distinct = 0;
  data.values.resize(rows * kDim);
  for (size_t r = 0; r < rows; ++r) {
    const size_t k = std::min<size_t>(
        rows - 1, static_cast<size_t>(std::lower_bound(cdf.begin(), cdf.end(), uniform(generator)) -
                                      cdf.begin()));
    distinct += !seen[k];
    seen[k] = 1;
    std::copy_n(table.begin() + static_cast<std::ptrdiff_t>(k * kDim), kDim,
                data.values.begin() + static_cast<std::ptrdiff_t>(r * kDim));
  }
  data.distinct = static_cast<double>(distinct) / static_cast<double>(rows);
  return data;
}

compress::Params params_for(Codec codec, compress::Predictor predictor, int threads) {
  compress::Params p;
  p.codec = codec;
  p.bound = {compress::ErrorBound::absolute, 1e-3};
  p.predictor = predictor;
  p.threads = threads;
  return p;
}

void report_stream(benchmark::State& state, const Data& data, size_t stream_bytes) {
  const double values = static_cast<double>(data.values.size());
  state.counters["ratio"] = 4.0 * values / static_cast<double>(stream_bytes);
  state.counters["bits_per_value"] = 8.0 * static_cast<double>(stream_bytes) / values;
  state.counters["distinct"] = data.distinct;
}

void BM_compress(benchmark::State& state, Codec codec, compress::Predictor predictor, size_t rows,
                 bool zipf, int threads) {
  const Data& data = embeddings(rows, zipf);
  const compress::Params params = params_for(codec, predictor, threads);
  std::vector<std::byte> stream;
  stream.reserve(compress::max_compressed_bytes(rows, kDim, params));
  run_memory_bound(state, 4.0 * static_cast<double>(data.values.size()), [&] {
    stream.clear();
    compress::compress(data.values.data(), rows, kDim, params, stream);
    benchmark::DoNotOptimize(stream.data());
  });
  report_stream(state, data, stream.size());
}

void BM_decompress(benchmark::State& state, Codec codec, compress::Predictor predictor, size_t rows,
                   bool zipf, int threads) {
  const Data& data = embeddings(rows, zipf);
  std::vector<std::byte> stream;
  compress::compress(data.values.data(), rows, kDim, params_for(codec, predictor, threads), stream);
  std::vector<float> out(data.values.size());
  compress::DecodeOptions options;
  options.threads = threads;
  run_memory_bound(state, 4.0 * static_cast<double>(data.values.size()), [&] {
    compress::decompress(stream, out.data(), rows, kDim, options);
    benchmark::DoNotOptimize(out.data());
  });
  report_stream(state, data, stream.size());
}

// estimate() on the same data (its cost, beside the compression it decides).
void BM_estimate(benchmark::State& state, size_t rows) {
  const Data& data = embeddings(rows, true);
  run_memory_bound(state, 4.0 * static_cast<double>(data.values.size()), [&] {
    const compress::Estimate e =
        compress::estimate(data.values.data(), rows, kDim, {compress::ErrorBound::absolute, 1e-3});
    benchmark::DoNotOptimize(e.bytes.data());
  });
}

void add(Codec codec, compress::Predictor predictor, size_t rows, bool zipf, int threads) {
  std::string name = std::string(compress::codec_name(codec));
  if (predictor == compress::Predictor::lorenzo_row) name += "_lorenzo";
  name += "/rows:" + std::to_string(rows) + (zipf ? "/zipf" : "/unique");
  if (threads > 1) name += "/threads:" + std::to_string(threads);
  benchmark::RegisterBenchmark(("BM_Compress_encode/" + name).c_str(), BM_compress, codec,
                               predictor, rows, zipf, threads)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark(("BM_Compress_decode/" + name).c_str(), BM_decompress, codec,
                               predictor, rows, zipf, threads)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
}

[[maybe_unused]] const bool registered = [] {
  using compress::Predictor;
  for (const size_t rows : {size_t{4096}, size_t{65536}})
    for (const Codec codec : compress::kAllCodecs) add(codec, Predictor::none, rows, true, 1);
  for (const size_t rows : {size_t{4096}, size_t{65536}})
    benchmark::RegisterBenchmark(("BM_Compress_estimate/rows:" + std::to_string(rows)).c_str(),
                                 BM_estimate, rows)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  // Small messages (one table's rows for one peer), where fixed costs show.
  add(Codec::quantize_huffman, Predictor::none, 256, true, 1);
  add(Codec::dedup_quantize_huffman, Predictor::none, 256, true, 1);
  // The predictor choice, and the quantiser without duplicates to help it.
  add(Codec::quantize_huffman, Predictor::lorenzo_row, 65536, true, 1);
  add(Codec::quantize_huffman, Predictor::none, 65536, false, 1);
  add(Codec::quantize_huffman, Predictor::lorenzo_row, 65536, false, 1);
  // All threads (kernels_bench --threads N sets how many OpenMP may start).
  const int threads = omp_get_max_threads();
  if (threads > 1) {
    add(Codec::quantize_huffman, Predictor::none, 65536, true, threads);
    add(Codec::dedup_quantize_huffman, Predictor::none, 65536, true, threads);
  }
  return true;
}();

}  // namespace
}  // namespace paralab::kernels_bench
