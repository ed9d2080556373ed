// compress_detail.hpp: internals shared by kernels/cpu/compress*.cpp (not an
// API): the stream header, bounds-checked reading, the block loop, and the
// quantiser and dedup stages each codec is made of.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/compress.hpp"

namespace paralab::kernels::compress::detail {

static_assert(std::endian::native == std::endian::little, "the stream format is little-endian");

// --- errors and bounds-checked reading ------------------------------------------

[[noreturn]] void fail(StreamError::Problem problem, const std::string& message);
[[noreturn]] void corrupt(const std::string& message);  // StreamError::Problem::corrupt

template <class T>
T load(const std::byte* p) {
  static_assert(std::is_trivially_copyable_v<T>);
  T value;
  std::memcpy(&value, p, sizeof(T));
  return value;
}
template <class T>
void store(std::byte* p, T value) {
  std::memcpy(p, &value, sizeof(T));
}
template <class T>
void put(std::vector<std::byte>& out, T value) {
  const size_t at = out.size();
  out.resize(at + sizeof(T));
  store(out.data() + at, value);
}
inline void put_bytes(std::vector<std::byte>& out, const void* data, size_t n) {
  const size_t at = out.size();
  out.resize(at + n);
  if (n > 0) std::memcpy(out.data() + at, data, n);
}

// Reads a section front to back; every read checks the bytes are there and
// throws StreamError(corrupt) naming `what` otherwise.
class Reader {
 public:
  Reader(std::span<const std::byte> data, const char* section) : data_(data), section_(section) {}
  template <class T>
  T get(const char* what) {
    return load<T>(bytes(sizeof(T), what).data());
  }
  std::span<const std::byte> bytes(size_t n, const char* what) {
    if (n > data_.size() - at_)
      corrupt(std::string(section_) + ": " + what + " runs past the section end");
    const auto part = data_.subspan(at_, n);
    at_ += n;
    return part;
  }
  // n items of `size` bytes each, checking the product does not overflow.
  std::span<const std::byte> array(size_t n, size_t size, const char* what) {
    if (size != 0 && n > (data_.size() - at_) / size)
      corrupt(std::string(section_) + ": " + what + " runs past the section end");
    return bytes(n * size, what);
  }
  std::span<const std::byte> rest() { return bytes(data_.size() - at_, "rest"); }
  size_t left() const { return data_.size() - at_; }
  void expect_end() const {
    if (at_ != data_.size())
      corrupt(std::string(section_) + ": " + std::to_string(data_.size() - at_) +
              " unexplained bytes at its end");
  }

 private:
  std::span<const std::byte> data_;
  const char* section_;
  size_t at_ = 0;
};

// --- the block loop -------------------------------------------------------------

// Calls f(b) for b in [0, n) on up to `threads` OpenMP threads (dynamic
// schedule); an exception thrown by f is rethrown here (the first one).
void for_blocks(size_t n, int threads, const std::function<void(size_t)>& f);

// A buffer of at least n elements (trivially copyable) kept per thread between
// calls, so large temporaries are not page-faulted in on every call; its
// contents are undefined (never zero-filled: only the pages written are
// touched). Each use site has its own tag.
template <class T, int kTag>
T* scratch(size_t n) {
  static_assert(std::is_trivially_copyable_v<T>);
  thread_local std::unique_ptr<T[]> buffer;
  thread_local size_t capacity = 0;
  if (capacity < n) {
    buffer.reset();
    buffer.reset(new T[n]);
    capacity = n;
  }
  return buffer.get();
}

// --- header -------------------------------------------------------------------

inline constexpr size_t kHeaderBytes = 80;
inline constexpr uint16_t kVersion = 1;
inline constexpr uint8_t kDtypeF32 = 1;
inline constexpr size_t kMaxSections = 3;
inline constexpr uint8_t kModeNone = 0;  // beside ErrorBound::absolute and relative

struct Header {
  Codec codec = Codec::raw;
  uint8_t dtype = kDtypeF32;
  uint8_t mode = kModeNone;
  Predictor predictor = Predictor::none;
  uint32_t crc = 0;
  uint64_t rows = 0, dim = 0;
  double bound_value = 0, absolute_bound = 0;
  float step = 0;
  uint32_t sections = 0;
  uint64_t section_bytes[kMaxSections] = {};
};

void write_header(const Header& header, std::byte* out);
// Validates everything the header alone can tell, and that `stream` holds
// header plus sections; returns the header and the stream's size.
Header read_header(std::span<const std::byte> stream, size_t& stream_bytes);

// --- quantiser (compress_quantize.cpp) ---------------------------------------------

inline constexpr int32_t kRadius = 32767;       // codes in [-kRadius, kRadius]
inline constexpr uint32_t kCodeOffset = 32768;  // symbol = code + kCodeOffset; 0 = outlier

// Values per block: whole rows, about 4096 values (a block is the unit
// of Huffman coding and of the threads' work; 2 of them decode interleaved).
size_t block_values(size_t dim);
// The Huffman code length limit for the quantiser's alphabet: codes of up
// to 14 bits go four to a 64-bit buffer fill, when encoding and decoding;
// limiting the rare codes to that costs embedding data 0.1-0.7% of size.
int code_length_limit(size_t alphabet);

struct Quantizer {
  float step = 0;     // 2 x bound; 0: lossless
  float inverse = 0;  // 1 / step
  float bound = 0;    // the largest float <= the absolute bound; accept |recon - x| < bound
};
// The absolute bound for `bound` over in[n] (relative: times max - min of the
// finite values, computed in double).
double absolute_bound(const float* in, size_t n, const ErrorBound& bound);
Quantizer make_quantizer(double absolute_bound);

// Appends the codes section and the outlier section for rows x dim values;
// returns their sizes. step 0: the lossless byte-plane layout, no outliers.
void append_quantized(const float* in, size_t rows, size_t dim, const Quantizer& quantizer,
                      Predictor predictor, int threads, std::vector<std::byte>& out,
                      uint64_t& codes_bytes, uint64_t& outlier_bytes);
void decode_quantized(std::span<const std::byte> codes, std::span<const std::byte> outliers,
                      float* out, size_t rows, size_t dim, float step, Predictor predictor,
                      int threads);

// For estimate(): quantises values (whole rows of dim) and adds each
// symbol's count to counts[0..65536) (0: outlier, else code + kCodeOffset).
void count_symbols(const float* in, size_t rows, size_t dim, const Quantizer& quantizer,
                   Predictor predictor, std::vector<uint64_t>& counts);

// --- dedup (compress_dedup.cpp) -----------------------------------------------------

// For each row, the index of its distinct row, numbered in order of first
// appearance (so index[r] <= max(index[0..r)) + 1), and the first row of each
// distinct row. Bit equality: -0 and +0 differ, equal NaNs are equal.
struct Distinct {
  std::vector<uint32_t> index;
  std::vector<uint32_t> first;
};
Distinct find_distinct(const float* in, size_t rows, size_t dim);
// 64-bit hash of a row's bytes.
uint64_t hash_row(const float* row, size_t dim);

// The index section: u32 distinct, u8 bit width, 3 zero bytes, the indices
// bit-packed LSB first.
void append_index(const Distinct& distinct, size_t rows, std::vector<std::byte>& out);
// Validates the section (widths, the first-appearance order) and returns
// the indices and the number of distinct rows.
std::vector<uint32_t> read_index(std::span<const std::byte> section, size_t rows, size_t& distinct);
size_t index_bytes(size_t rows, size_t distinct);
// Given the distinct rows in out[0, distinct) (in order of first
// appearance), writes every row in place: rows from the last to the first.
void expand_rows(float* out, size_t dim, std::span<const uint32_t> index);

}  // namespace paralab::kernels::compress::detail
