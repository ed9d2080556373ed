// huffman.hpp: canonical Huffman coding of 16-bit symbols, the entropy stage
// of kernels/compress.hpp (internal; tests use it directly).
//
// Codes are length-limited to kMaxLength bits and written LSB first into a
// 64-bit bit buffer. Decoding is table driven: a primary table indexed by
// the next b bits gives symbol and length at once (b = kTableBits, or less
// when every code is shorter, or kWideTableBits when many codes are longer:
// Decoder's constructor says why); longer codes go through a second-level
// table under their first b bits.
//
// A blob is a code table and the codes of a sequence of blocks:
//   u32 alphabet size A (<= 65536)
//   A x u8 code lengths (0: unused)
//   blocks x u32 byte size of each block
//   the blocks' codes, each byte aligned
// Blocks are independent given the table, so threads encode and decode them
// in parallel. A code with exactly one used symbol (length 1 in the table)
// sends 0 bits per symbol.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace paralab::kernels::compress::huffman {

inline constexpr int kMaxLength = 20;
inline constexpr int kTableBits = 12;      // the primary decode table's narrowest full width
inline constexpr int kWideTableBits = 14;  // its widest (when many codes are longer)
inline constexpr size_t kMaxSymbols = size_t{1} << 16;

// Code lengths for symbol counts: a complete prefix code (Kraft sum 1) with
// no code longer than kMaxLength, by Huffman's algorithm; while the longest
// code is too long the counts are halved (rounding up, so no used symbol
// vanishes) and the code rebuilt. Unused symbols get 0; a single used symbol
// gets 1 (and is coded with 0 bits). counts.size() <= kMaxSymbols and
// <= 2^max_length; max_length <= kMaxLength. Codes of up to 14 bits
// encode and decode four to a 64-bit buffer fill, longer ones two or three.
std::vector<uint8_t> code_lengths(std::span<const uint64_t> counts, int max_length = kMaxLength);

// Average bits per symbol of counts coded with lengths (0 for the one-symbol code).
double coded_bits(std::span<const uint64_t> counts, std::span<const uint8_t> lengths);

class Encoder {
 public:
  // lengths as made by code_lengths(): codes symbols 0 .. lengths.size() - 1.
  explicit Encoder(std::span<const uint8_t> lengths) : Encoder(lengths, 0) {}
  // A window of a larger alphabet: codes 0 as symbol 0 and base + h as
  // symbol h (h >= 1), so a caller can code codes near `base` with 0 as an
  // escape without remapping them first.
  Encoder(std::span<const uint8_t> lengths, uint16_t base);
  // Writes the codes of symbols[0, n) to out, LSB first, and returns the
  // bytes written (the last one zero-padded). out must have room for
  // max_bytes(n) bytes. Every symbol must have a code.
  size_t encode(const uint16_t* symbols, size_t n, std::byte* out) const;
  static size_t max_bytes(size_t n) { return (n * kMaxLength + 7) / 8 + 8; }

 private:
  template <int kPerFlush>
  size_t encode_with(const uint16_t* symbols, size_t n, std::byte* out) const;

  // By symbol as it occurs: code << 8 | length. Only symbol 0 and the
  // window [base + 1, base + lengths.size()) are set (the rest is never read).
  std::unique_ptr<uint32_t[]> table_;
  int max_length_ = 0;
};

class Decoder {
 public:
  // Validates lengths (each <= kMaxLength, and a complete code or exactly
  // one used symbol, or none) and builds the tables; throws StreamError
  // (corrupt) otherwise.
  explicit Decoder(std::span<const uint8_t> lengths);
  // Decodes n symbols from exactly the bytes of `in`. Throws StreamError
  // when the bits run out or do not end in the last byte.
  void decode(std::span<const std::byte> in, uint16_t* out, size_t n) const;
  // Two blocks at once, the second coded with `other` (or this) code: their
  // codes interleaved in one loop, so that one block's table lookups overlap
  // the other's (a lone stream waits on each of its own).
  void decode2(std::span<const std::byte> in0, uint16_t* out0, size_t n0,
               std::span<const std::byte> in1, uint16_t* out1, size_t n1,
               const Decoder* other = nullptr) const;
  int max_length() const { return max_length_; }
  // The primary table's index width (0 for a code that sends no bits);
  // codes longer than it take a second lookup.
  int table_bits() const { return table_bits_; }

  struct Stream;  // one block's decoding state
  struct Tables;  // the tables as the decoding loops read them

 private:
  bool trivial(std::span<const std::byte> in, uint16_t* out, size_t n) const;
  template <int kPerRefill>
  void run(Stream& s) const;
  template <int kPerRefill>
  void run2(Stream& a, const Decoder& other, Stream& b) const;
  void finish(Stream& s) const;
  Tables tables() const;

  std::vector<uint32_t> primary_;    // symbol | length << 16, or 1 << 31 | sub bits << 24 | offset
  std::vector<uint32_t> secondary_;  // symbol | length << 16
  int used_ = 0, max_length_ = 0;
  int table_bits_ = 0;  // the primary table's index width (see the constructor)
  uint16_t only_symbol_ = 0;
};

// The parts of a blob, validated against the buffer.
struct Blob {
  std::span<const uint8_t> lengths;
  std::vector<std::span<const std::byte>> blocks;
  size_t bytes = 0;  // of the whole blob
};
// Parses a blob of `blocks` blocks at the start of `in`; throws StreamError.
Blob parse_blob(std::span<const std::byte> in, size_t blocks);
// Appends a blob made of lengths and already encoded blocks.
void append_blob(std::span<const uint8_t> lengths,
                 std::span<const std::span<const std::byte>> blocks, std::vector<std::byte>& out);

// Whole sequences: a blob with the code built from the symbols' own
// histogram (alphabet: up to the largest symbol), in blocks of
// block_symbols; decode() needs the same count and block size and the blob
// to fill `in` exactly.
void encode(std::span<const uint16_t> symbols, size_t block_symbols, int threads,
            std::vector<std::byte>& out);
void decode(std::span<const std::byte> in, std::span<uint16_t> symbols, size_t block_symbols,
            int threads);

}  // namespace paralab::kernels::compress::huffman
