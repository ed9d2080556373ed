// peers.cpp: our codecs and ZFP behind compress_peers' Peer interface.
#include "peers.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "core/stats.hpp"
#include "core/timer.hpp"
#include "kernels/compress.hpp"

#if PARALAB_HAVE_ZFP
#include <zfp.h>
#endif

namespace paralab::compress_peers {

namespace kc = kernels::compress;

double Block::range() const {
  float lo = std::numeric_limits<float>::infinity(), hi = -lo;
  for (const float v : values) {
    if (!std::isfinite(v)) continue;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  return hi >= lo ? static_cast<double>(hi) - static_cast<double>(lo) : 0.0;
}

double max_abs_error(std::span<const float> original, std::span<const float> decoded) {
  if (original.size() != decoded.size())
    throw std::invalid_argument("max_abs_error: the arrays differ in size");
  double worst = 0;
  for (size_t i = 0; i < original.size(); ++i) {
    const float a = original[i], b = decoded[i];
    if (std::isnan(a) || std::isnan(b)) {
      if (std::isnan(a) != std::isnan(b)) return std::numeric_limits<double>::infinity();
      continue;
    }
    if (a == b) continue;  // also equal infinities
    worst = std::max(worst, std::fabs(static_cast<double>(a) - static_cast<double>(b)));
  }
  return worst;
}

double median_seconds(int repeats, const std::function<void()>& f) {
  std::vector<double> times;
  for (int r = 0; r < std::max(1, repeats); ++r) {
    const Stopwatch watch;
    f();
    times.push_back(watch.seconds());
  }
  return percentile(times, 50);
}

namespace {

// One thread, as a rank compresses its own blocks inside the all-to-all.
kc::Params params_of(kc::Codec codec, double absolute_bound) {
  kc::Params p;
  p.codec = codec;
  p.bound = {kc::ErrorBound::absolute, absolute_bound};
  p.threads = 1;
  return p;
}

// Times compress and decompress of one block with `codec`.
Measurement measure_ours(const Block& block, double absolute_bound, int repeats, kc::Codec codec) {
  Measurement m;
  m.input_bytes = block.bytes();
  std::vector<std::byte> stream;
  stream.reserve(
      kc::max_compressed_bytes(block.rows, block.cols, params_of(kc::Codec::quantize_huffman, 0)));
  m.compress_s = median_seconds(repeats, [&] {
    stream.clear();
    kc::compress(block.values.data(), block.rows, block.cols, params_of(codec, absolute_bound),
                 stream);
  });
  m.compressed_bytes = stream.size();
  m.detail = kc::codec_name(codec);
  std::vector<float> decoded(block.values.size());
  kc::DecodeOptions options;
  options.threads = 1;
  m.decompress_s = median_seconds(
      repeats, [&] { kc::decompress(stream, decoded.data(), block.rows, block.cols, options); });
  m.max_error = max_abs_error(block.values, decoded);
  return m;
}

}  // namespace

std::vector<Peer> our_peers(const AutoOptions& options) {
  std::vector<Peer> peers;
  for (const kc::Codec codec : {kc::Codec::quantize_huffman, kc::Codec::dedup_quantize_huffman}) {
    peers.push_back(
        {kc::codec_name(codec), true, "", [codec](const Block& block, double bound, int repeats) {
           return measure_ours(block, bound, repeats, codec);
         }});
  }
  // The paper's per-table choice between entropy coding and deduplication,
  // as the exchange makes it: estimate once, keep the codec for
  // decide_every calls, so each compression pays 1 / decide_every of an
  // estimate.
  peers.push_back({"auto", true, "", [options](const Block& block, double bound, int repeats) {
                     const std::vector<kc::Codec> candidates = {kc::Codec::quantize_huffman,
                                                                kc::Codec::dedup_quantize_huffman};
                     const kc::Throughputs rates = kc::default_throughputs();
                     kc::Codec codec = kc::Codec::raw;
                     const double choose_s = median_seconds(repeats, [&] {
                       const kc::Estimate e =
                           kc::estimate(block.values.data(), block.rows, block.cols,
                                        {kc::ErrorBound::absolute, bound});
                       codec =
                           kc::choose_codec(e, options.link_bytes_per_s, rates, candidates).codec;
                     });
                     Measurement m = measure_ours(block, bound, repeats, codec);
                     m.compress_s += choose_s / options.decide_every;
                     return m;
                   }});
  return peers;
}

#if PARALAB_HAVE_ZFP

namespace {

// ZFP's fixed-accuracy mode on the block as a 1-D array or as [rows, cols].
// The stream carries ZFP's full header (as ours carries its 80 bytes), so
// the decoder needs nothing else.
Measurement measure_zfp(const Block& block, double absolute_bound, int repeats, bool two_d) {
  Measurement m;
  m.input_bytes = block.bytes();
  auto* data = const_cast<float*>(block.values.data());  // zfp_field takes void*
  zfp_field* field = two_d ? zfp_field_2d(data, zfp_type_float, block.cols, block.rows)
                           : zfp_field_1d(data, zfp_type_float, block.values.size());
  zfp_stream* zfp = zfp_stream_open(nullptr);
  zfp_stream_set_accuracy(zfp, absolute_bound);
  std::vector<unsigned char> buffer(zfp_stream_maximum_size(zfp, field) + 64);
  bitstream* bits = stream_open(buffer.data(), buffer.size());
  zfp_stream_set_bit_stream(zfp, bits);
  size_t bytes = 0;
  bool failed = false;
  m.compress_s = median_seconds(repeats, [&] {
    zfp_stream_rewind(zfp);
    failed |= zfp_write_header(zfp, field, ZFP_HEADER_FULL) == 0;
    bytes = zfp_compress(zfp, field);
    failed |= bytes == 0;
  });
  m.compressed_bytes = bytes;
  std::vector<float> decoded(block.values.size());
  zfp_field* out = two_d ? zfp_field_2d(decoded.data(), zfp_type_float, block.cols, block.rows)
                         : zfp_field_1d(decoded.data(), zfp_type_float, decoded.size());
  zfp_stream* reader = zfp_stream_open(bits);
  m.decompress_s = median_seconds(repeats, [&] {
    zfp_stream_rewind(reader);
    failed |= zfp_read_header(reader, out, ZFP_HEADER_FULL) == 0;
    failed |= zfp_decompress(reader, out) == 0;
  });
  zfp_field_free(out);
  zfp_stream_close(reader);
  stream_close(bits);
  zfp_stream_close(zfp);
  zfp_field_free(field);
  if (failed) throw std::runtime_error("zfp failed to compress or decompress a block");
  m.max_error = max_abs_error(block.values, decoded);
  return m;
}

}  // namespace

std::vector<Peer> zfp_peers() {
  std::vector<Peer> peers;
  for (const bool two_d : {false, true})
    peers.push_back({two_d ? "zfp-2d" : "zfp-1d", true, "",
                     [two_d](const Block& block, double bound, int repeats) {
                       return measure_zfp(block, bound, repeats, two_d);
                     }});
  return peers;
}

std::string zfp_version() {
  return zfp_version_string;
}

#else

std::vector<Peer> zfp_peers() {
  std::vector<Peer> peers;
  for (const char* name : {"zfp-1d", "zfp-2d"})
    peers.push_back({name, false, "ZFP not available (the build found no libzfp)", nullptr});
  return peers;
}

std::string zfp_version() {
  return "not available";
}

#endif

}  // namespace paralab::compress_peers
