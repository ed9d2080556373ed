// compress.hpp: compression of FP32 matrices [rows, dim] (the pooled
// embedding rows a DLRM training step sends through its all-to-all), after
// "Accelerating Communication in Deep Learning Recommendation Model Training
// with Dual-Level Adaptive Lossy Compression" (Feng et al., SC'24).
//
// Every codec writes one self-describing stream (docs/compress.md): an
// 80-byte header (magic, version, codec, dtype, shape, error bound, section
// sizes, CRC32C over header and payload) and up to three sections.
//
//   raw                     FP32 as is: lossless.
//   fp16, bf16              IEEE half / bfloat16, round to nearest even: NOT
//                           error bounded (relative error up to 2^-11 / 2^-8;
//                           beyond half's range a value becomes inf, as the
//                           cast does; tiny values lose precision or flush).
//   int8                    per-row symmetric scale max|x| / 127: NOT error
//                           bounded for non-finite rows (NaN becomes 0, inf
//                           the row's largest finite magnitude).
//   quantize_huffman        error bounded: SZ-style linear-scaling
//                           quantisation, code = round((x - pred) / (2 eb)),
//                           then canonical Huffman coding of the codes.
//   dedup                   lossless: each distinct row (bit equality) once,
//                           plus an index per row.
//   dedup_quantize_huffman  dedup, then the distinct rows quantised and
//                           Huffman coded: error bounded.
//
// The error-bounded codecs guarantee, for every element, |out - in| <= eb
// with eb = the absolute bound, or eb = value * (max - min) over the finite
// inputs for a relative bound. NaN (sign and payload), +-inf and -0 come
// back bit-exactly, and eb = 0 (or an eb below the smallest float) means
// lossless: every value comes back bit-exactly. The compressor reconstructs
// each value with the decompressor's own float arithmetic and stores any
// value that misses the bound verbatim (an "outlier"), so rounding can never
// break the bound; docs/compress.md gives the argument.
//
// Everything runs on the CPU (namespace compress; a CUDA version is future
// work); the quantiser and the FP16 conversion use AVX-512 where
// kernels/cpu/dispatch.hpp reports it, a portable path elsewhere, and both
// produce identical streams. Streams do not depend on the thread count.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace paralab::kernels::compress {

enum class Codec : uint8_t {
  raw = 0,
  fp16 = 1,
  bf16 = 2,
  int8 = 3,
  quantize_huffman = 4,
  dedup = 5,
  dedup_quantize_huffman = 6,
};
inline constexpr int kCodecs = 7;
inline constexpr std::array<Codec, kCodecs> kAllCodecs = {Codec::raw,
                                                          Codec::fp16,
                                                          Codec::bf16,
                                                          Codec::int8,
                                                          Codec::quantize_huffman,
                                                          Codec::dedup,
                                                          Codec::dedup_quantize_huffman};
// The codecs that keep every value within the requested bound (the lossless
// ones keep every value exactly).
inline constexpr std::array<Codec, 4> kBoundedCodecs = {
    Codec::raw, Codec::quantize_huffman, Codec::dedup, Codec::dedup_quantize_huffman};

const char* codec_name(Codec codec);
// raw, quantize_huffman, dedup, dedup_quantize_huffman.
bool is_error_bounded(Codec codec);

// What the quantiser predicts each value from. Embedding rows are close to
// independent values along the row, so the previous value predicts nothing
// and its residual has twice the variance: on N(0, 0.05) rows at eb = 1e-3
// Lorenzo costs about half a bit more per value than no prediction
// (bench_compress reports bits_per_value for both; docs/compress.md). none is
// the default and the only vectorised path; lorenzo_row is kept for smooth
// data (e.g. activations along a sequence).
enum class Predictor : uint8_t {
  none = 0,         // pred = 0
  lorenzo_row = 1,  // pred = the reconstructed previous value in the row (0 at its start)
};

struct ErrorBound {
  enum Mode : uint8_t { absolute = 1, relative = 2 };
  Mode mode = absolute;
  double value = 0;  // >= 0; 0 means lossless
};

struct Params {
  Codec codec = Codec::quantize_huffman;
  ErrorBound bound{};  // used by quantize_huffman and dedup_quantize_huffman
  Predictor predictor = Predictor::none;
  // OpenMP threads over blocks of about 4096 values; the stream does not
  // depend on it. 1 (a rank's own core) is what the all-to-all wants.
  int threads = 1;
};

// A stream that is not what it claims to be. problem() says which check
// failed; what() says it in words ("compress: truncated stream: ...").
class StreamError : public std::runtime_error {
 public:
  enum class Problem {
    truncated,            // fewer bytes than the header (or a section) needs
    trailing_bytes,       // more bytes than the header accounts for
    bad_magic,            // not a paralab compressed stream
    unsupported_version,  // a version this code does not read
    unknown_codec,        // a codec (or dtype, bound mode, predictor) id it does not know
    checksum_mismatch,    // CRC32C of header and payload differs
    corrupt,              // the checksum matched but the contents are inconsistent
    shape_mismatch,       // rows or dim differ from what the caller expects
  };
  StreamError(Problem problem, const std::string& message)
      : std::runtime_error(message), problem_(problem) {}
  Problem problem() const { return problem_; }

 private:
  Problem problem_;
};

// Appends the stream for in[rows * dim] (row-major) to out, so that several
// streams can share one send buffer, and returns its size in bytes. Throws
// std::invalid_argument for a negative, infinite or NaN bound, threads < 1, an unknown
// codec, or a shape whose byte size overflows (dedup: rows >= 2^32).
// Temporaries (a few bytes per value for the quantising codecs) stay
// allocated per thread between calls, so repeated calls do not page-fault.
size_t compress(const float* in, size_t rows, size_t dim, const Params& params,
                std::vector<std::byte>& out);

// An upper bound on compress()'s result for any input of this shape.
size_t max_compressed_bytes(size_t rows, size_t dim, const Params& params);

struct StreamInfo {
  Codec codec = Codec::raw;
  Predictor predictor = Predictor::none;
  size_t rows = 0, dim = 0;
  bool error_bounded = false;  // raw, dedup and the quantising codecs
  ErrorBound bound{};          // as requested (quantising codecs; absolute 0 for raw and dedup)
  double absolute_bound = 0;   // the bound every value meets when error_bounded; 0: exact
  float step = 0;              // quantisation step (2 eb rounded down to a float); 0: lossless
  size_t stream_bytes = 0;     // header and all sections
  size_t sections = 0;
  std::array<uint64_t, 3> section_bytes{};
};

// Reads and validates the header, and that the buffer holds the whole
// stream (it may hold more: the stream's size is stream_bytes, so
// concatenated streams can be split with it). Does not check the checksum;
// decompress() does. Throws StreamError.
StreamInfo inspect(std::span<const std::byte> stream);

struct DecodeOptions {
  // A fuzz target turns this off to reach the parsers behind the checksum;
  // they validate every size and offset before reading.
  bool verify_checksum = true;
  int threads = 1;
};

// Decodes one whole stream (exactly stream_bytes long) into out[rows * dim].
// Throws StreamError when the stream is truncated, longer than its header
// says, corrupted (checksum), of another shape than rows x dim, or
// inconsistent; never reads outside `stream` or writes outside out.
void decompress(std::span<const std::byte> stream, float* out, size_t rows, size_t dim,
                const DecodeOptions& options = {});

// CRC32C (Castagnoli, reflected, as iSCSI/ext4 use it): crc32c("123456789") =
// 0xe3069283; crc32c(b, crc32c(a)) = crc32c(a followed by b).
uint32_t crc32c(std::span<const std::byte> data, uint32_t crc = 0);

// The FP16 codec's scalar semantics (the vector path matches them bit for
// bit): round to nearest even; beyond the largest half (65504 and the tie
// above it) to inf; NaN stays NaN, quiet, with the top 9 payload bits.
uint16_t float_to_half(float value);
float half_to_float(uint16_t half);

// --- choosing a codec --------------------------------------------------------
//
// The model (a predicted time per table and iteration, from which a
// dual-level adaptive scheme picks codec and bound): a codec c moves B
// input bytes in
//
//   T(c) = B / compress_rate(c) + bytes(c) / link_rate + B / decompress_rate(c)
//
// with the dedup codecs' rates split in two: hashing and copying every row at
// the dedup rate, then quantising only the distinct rows (a fraction u of B):
//
//   T(dedup_quantize_huffman) = B / rate(dedup) + u B / rate(quantize_huffman)
//                               + bytes / link_rate + (same for decompression)
//
// bytes(c) comes from estimate(), the rates from measure_throughput() or
// default_throughputs(); choose_codec() picks the candidate with least T.

struct Estimate {
  size_t rows = 0, dim = 0;
  size_t sample_rows = 0;               // rows quantised for bits_per_value
  double distinct_fraction = 1;         // estimated distinct rows / rows
  double bits_per_value = 32;           // quantised and Huffman coded, outliers included
  double outlier_fraction = 0;          // of the sampled values
  double absolute_bound = 0;            // the bound the quantiser would use
  std::array<double, kCodecs> bytes{};  // predicted stream bytes, indexed by codec id
  double input_bytes() const { return 4.0 * static_cast<double>(rows) * static_cast<double>(dim); }
  double predicted_bytes(Codec codec) const { return bytes[static_cast<size_t>(codec)]; }
};

// Predicts each codec's stream size. Distinct rows: linear counting (Whang
// et al. 1990) over a fingerprint of every row (a hash of its first and
// last four values; about 1% error), so a few nanoseconds per row. Bits per
// value: the Huffman code lengths built from the histogram of the codes of
// sample_rows evenly spaced rows (all rows when there are fewer); for the
// dedup codec, of the sample's distinct rows. A relative bound is computed
// over all rows, as compress() does (one min/max pass). Sampling rows to
// estimate their distinct count instead is biased low for Zipf-repeated rows
// (GEE gave half the true count in the test), hence the fingerprints.
Estimate estimate(const float* in, size_t rows, size_t dim, const ErrorBound& bound,
                  Predictor predictor = Predictor::none, size_t sample_rows = 1024);

// Bytes of FP32 input per second.
struct Throughput {
  double compress = 1e9, decompress = 1e9;
};
using Throughputs = std::array<Throughput, kCodecs>;  // indexed by codec id

// Single-thread rates measured by bench_compress on the development machine
// (docs/compress.md); the app should measure its own with measure_throughput.
Throughputs default_throughputs();
// Times compress and decompress of the given data with params (best of
// `repeats`) and returns the input bytes per second of each.
Throughput measure_throughput(const float* in, size_t rows, size_t dim, const Params& params,
                              int repeats = 3);

struct Choice {
  Codec codec = Codec::raw;
  double seconds = 0;                        // predicted T of the chosen codec
  std::array<double, kCodecs> seconds_of{};  // T of each candidate (0 for the others)
};
Choice choose_codec(const Estimate& estimate, double link_bytes_per_s,
                    const Throughputs& throughputs,
                    std::span<const Codec> candidates = kBoundedCodecs);

}  // namespace paralab::kernels::compress
