// make_seed_corpus.cpp: writes the seed corpus of fuzz_decompress: valid
// streams of every codec (both predictors for the quantising ones), on small
// embedding-like inputs with repeated rows, NaN, inf, -0 and an outlier, so
// the fuzzer starts past the header and the checksum. Each file is one mode
// byte (fuzz_decompress.cpp: bit 0 set: checksum not checked; bit 1 set: two
// threads) and one stream.
//
//   make_seed_corpus DIR     writes DIR/seed-<codec>-<case>-<mode> and
//                            prints how many files it wrote
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/compress.hpp"

namespace {

namespace kc = paralab::kernels::compress;

struct Input {
  std::string name;
  size_t rows = 0, dim = 0;
  std::vector<float> values;
};

// Rows of N(0, 0.05) with every third row a copy of an earlier one (what
// Zipf-popular lookups send), plus the special values in the last row.
Input embedding_like(const std::string& name, size_t rows, size_t dim, bool special) {
  Input in{name, rows, dim, std::vector<float>(rows * dim)};
  std::mt19937 rng(static_cast<uint32_t>(rows * 131 + dim));
  std::normal_distribution<float> normal(0.0f, 0.05f);
  for (size_t r = 0; r < rows; ++r)
    for (size_t c = 0; c < dim; ++c)
      in.values[r * dim + c] = (r % 3 == 2) ? in.values[(r / 2) * dim + c] : normal(rng);
  if (special && rows > 0 && dim >= 4) {
    float* last = in.values.data() + (rows - 1) * dim;
    last[0] = std::numeric_limits<float>::quiet_NaN();
    last[1] = -std::numeric_limits<float>::infinity();
    last[2] = -0.0f;
    last[3] = 3e7f;  // far outside the quantiser's range: an outlier
  }
  return in;
}

void write_seed(const std::filesystem::path& dir, const std::string& name, uint8_t mode,
                const std::vector<std::byte>& stream) {
  std::ofstream file(dir / name, std::ios::binary);
  file.put(static_cast<char>(mode));
  file.write(reinterpret_cast<const char*>(stream.data()),
             static_cast<std::streamsize>(stream.size()));
  if (!file) throw std::runtime_error("cannot write " + (dir / name).string());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seed_corpus DIR\n");
    return 1;
  }
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir);
  const std::vector<Input> inputs = {
      embedding_like("small", 7, 5, true), embedding_like("block", 40, 16, true),
      embedding_like("wide", 3, 70, false), embedding_like("empty", 0, 8, false),
      embedding_like("blocks", 300, 32, true)};  // several blocks of about 4096 values
  int files = 0;
  for (const Input& in : inputs) {
    for (const kc::Codec codec : kc::kAllCodecs) {
      const bool quantizing =
          codec == kc::Codec::quantize_huffman || codec == kc::Codec::dedup_quantize_huffman;
      for (const kc::Predictor predictor : {kc::Predictor::none, kc::Predictor::lorenzo_row}) {
        if (!quantizing && predictor != kc::Predictor::none) continue;
        // A coarse and a fine bound (more distinct codes), and lossless.
        for (const double bound : {1e-2, 1e-4, 0.0}) {
          if (!quantizing && bound != 1e-2) continue;
          kc::Params params;
          params.codec = codec;
          params.bound = {kc::ErrorBound::absolute, bound};
          params.predictor = predictor;
          std::vector<std::byte> stream;
          kc::compress(in.values.data(), in.rows, in.dim, params, stream);
          char name[160];
          std::snprintf(name, sizeof name, "seed-%s-%s-p%d-eb%g", kc::codec_name(codec),
                        in.name.c_str(), static_cast<int>(predictor), bound);
          for (const uint8_t mode : {0, 1, 3}) {
            write_seed(dir, std::string(name) + "-m" + std::to_string(mode), mode, stream);
            ++files;
          }
        }
      }
    }
  }
  std::printf("make_seed_corpus: %d seed streams in %s\n", files, dir.c_str());
  return 0;
}
