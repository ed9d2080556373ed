// fuzz_decompress.cpp: libFuzzer target for the stream decoder of
// kernels/compress.hpp (issue 5: "a fuzz target for the decompressor runs
// briefly in CI"). Built by clang++ -fsanitize=fuzzer,address,undefined from
// the compressor's own sources (tests/fuzz/CMakeLists.txt).
//
// Input: one mode byte, then the stream. Mode bit 0 set: decode with the
// checksum check off (DecodeOptions::verify_checksum), so mutations reach the
// section parsers instead of stopping at the CRC; clear: the full check, as
// the exchange decodes. Bit 1 set: two decoder threads (OpenMP over blocks),
// else one. Every input must either decode or be rejected with
// compress::StreamError; anything else (another exception, a crash, an
// out-of-bounds access ASan sees, undefined behaviour UBSan sees, a hang
// past -timeout) is a finding.
//
// The seed corpus (make_seed_corpus.cpp) holds valid streams of every codec
// with both mode bytes.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <span>

#include "kernels/compress.hpp"

namespace {

namespace kc = paralab::kernels::compress;

// A header may claim any shape, and the decoder writes rows x dim floats
// where the caller says, so this caller (like the exchange, which knows its
// block shapes) only asks for sane ones: at most 16M values (64 MiB). The
// dedup and quantising codecs also do work per row even when dim is 0 (an
// index entry, a block of rows), so their rows are capped the same way; the
// other codecs read 4 or 2 bytes per value or per row from the stream, so a
// short input cannot make them work long, and any row count goes through
// (that found the int8 overflow fixed in shape_fits, kernels/cpu/compress.cpp).
constexpr size_t kMaxValues = size_t{1} << 24;

bool works_per_row(kc::Codec codec) {
  return codec == kc::Codec::quantize_huffman || codec == kc::Codec::dedup ||
         codec == kc::Codec::dedup_quantize_huffman;
}

[[noreturn]] void finding(const char* what) {
  std::fprintf(stderr, "fuzz_decompress: %s\n", what);
  std::abort();
}

void decode(std::span<const std::byte> stream, bool verify_checksum, int threads) {
  kc::StreamInfo info;
  try {
    info = kc::inspect(stream);
  } catch (const kc::StreamError&) {
    return;  // rejected at the header: fine
  }
  if (info.stream_bytes > stream.size())
    finding("inspect accepted a stream longer than its buffer");
  if (info.dim != 0 && info.rows > kMaxValues / info.dim) return;
  if (works_per_row(info.codec) && info.rows > kMaxValues) return;
  const size_t values = info.rows * info.dim;
  // Exactly rows x dim floats on the heap, so ASan sees a write past the end;
  // filled with a pattern, so a value the decoder never writes shows below.
  std::unique_ptr<float[]> out(new float[values == 0 ? 1 : values]);
  std::memset(out.get(), 0xaa, values * sizeof(float));
  kc::DecodeOptions options;
  options.verify_checksum = verify_checksum;
  options.threads = threads;
  try {
    // The stream as inspect delimits it (the decoder rejects trailing bytes).
    kc::decompress(stream.first(info.stream_bytes), out.get(), info.rows, info.dim, options);
  } catch (const kc::StreamError&) {
    return;  // rejected: fine
  }
  // A stream that decoded must decode again, into a buffer with another
  // pattern, to the same bits: a value left unwritten, or one computed from
  // memory nobody wrote (stale scratch), would differ.
  std::unique_ptr<float[]> again(new float[values == 0 ? 1 : values]);
  std::memset(again.get(), 0x55, values * sizeof(float));
  kc::decompress(stream.first(info.stream_bytes), again.get(), info.rows, info.dim, options);
  for (size_t i = 0; i < values; ++i) {
    uint32_t a = 0, b = 0;
    std::memcpy(&a, &out[i], 4);
    std::memcpy(&b, &again[i], 4);
    if (a != b) finding("a value left unwritten, or the stream decoded differently twice");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool verify_checksum = (data[0] & 1) == 0;
  const int threads = (data[0] & 2) ? 2 : 1;
  const std::span<const std::byte> stream(reinterpret_cast<const std::byte*>(data + 1), size - 1);
  try {
    decode(stream, verify_checksum, threads);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_decompress: %s\n", e.what());
    finding("a bad stream raised something other than compress::StreamError");
  }
  return 0;
}
