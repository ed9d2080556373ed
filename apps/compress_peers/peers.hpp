// peers.hpp: the compressors compress_peers puts side by side on the same
// blocks of DLRM embedding data at the same absolute error bound (issue 5):
// our codecs (kernels/compress.hpp) and ZFP's fixed-accuracy mode (Debian's
// libzfp, when the build found it). SZ3 runs from scripts/compress_peers.py
// on the blocks this app writes.
//
// A peer compresses one block [rows, cols] (FP32, row-major) at an absolute
// bound and decompresses it, `repeats` times each on one thread; it reports
// the compressed bytes, the median seconds of each direction and the largest
// |decoded - original| (NaN must come back as NaN, else the error is inf).
#pragma once

#include <cstddef>
#include <functional>
#include <span>
#include <string>
#include <vector>

namespace paralab::compress_peers {

// One block of embedding data: a table's pooled embeddings as the forward
// exchange sends them, or the table's rows.
struct Block {
  int table = 0;
  size_t rows = 0, cols = 0;
  std::vector<float> values;  // [rows, cols]
  // max - min over the finite values (0 when there are none).
  double range() const;
  size_t bytes() const { return 4 * values.size(); }
};

struct Measurement {
  size_t input_bytes = 0;
  size_t compressed_bytes = 0;
  double compress_s = 0, decompress_s = 0;  // medians over the repeats
  double max_error = 0;                     // largest |decoded - original|
  std::string detail;                       // e.g. the codec auto chose
};

struct Peer {
  std::string name;       // "quantize_huffman", "auto", "zfp-2d", ...
  bool available = true;  // false: the build has no such library
  std::string unavailable_reason;
  std::function<Measurement(const Block& block, double absolute_bound, int repeats)> measure;
};

// What the codec choice of "auto" assumes: the link it sends over.
struct AutoOptions {
  double link_bytes_per_s = 1.25e9;  // 10 Gb/s
  // The exchange re-decides a table's codec every this many calls
  // (dlrm::CompressedExchangeConfig::decide_every).
  int decide_every = 50;
};

// Our error-bounded codecs: quantize_huffman, dedup_quantize_huffman and
// auto (per block, the least predicted time between those two from
// kernels::compress::estimate and choose_codec; its compress time includes
// 1 / decide_every of the estimate's).
std::vector<Peer> our_peers(const AutoOptions& options);
// ZFP fixed accuracy (zfp_stream_set_accuracy with tolerance = the bound):
// zfp-1d on the block as one 1-D array, zfp-2d as [rows, cols] (cols the
// fastest dimension). Unavailable ("ZFP not available") without libzfp.
std::vector<Peer> zfp_peers();
// The ZFP version the build links, or "not available".
std::string zfp_version();

// max |a - b| over a and b of the same size; NaN against non-NaN is inf.
double max_abs_error(std::span<const float> original, std::span<const float> decoded);
// The median of the times f() takes over `repeats` calls.
double median_seconds(int repeats, const std::function<void()>& f);

}  // namespace paralab::compress_peers
