// Vector-level deduplication for kernels/compress.hpp: rows equal bit for
// bit are sent once. A hash table (open addressing, linear probing) over a
// 64-bit hash of each row's bytes finds candidates; memcmp confirms them,
// so a hash collision costs time, never correctness.
//
// Index section: u32 distinct rows D, u8 bit width w (bits of D - 1, 0 when
// D <= 1), three zero bytes, then each row's distinct index in w bits, LSB
// first, in ceil(rows w / 8) bytes. Distinct rows are numbered in order of
// first appearance, so every index is at most one more than the largest
// before it: the decoder checks that, which also guarantees index[r] <= r
// and lets it expand the rows in place.

#include <algorithm>
#include <bit>
#include <cstring>
#include <string>

#include "kernels/compress_detail.hpp"

namespace paralab::kernels::compress::detail {

namespace {

constexpr uint32_t kEmpty = UINT32_MAX;

uint64_t load64(const unsigned char* p) {
  uint64_t value;
  std::memcpy(&value, p, sizeof value);
  return value;
}

uint64_t mix(uint64_t z) {  // SplitMix64's finaliser
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

unsigned width_for(size_t distinct) {
  return distinct <= 1 ? 0u : static_cast<unsigned>(std::bit_width(distinct - 1));
}

}  // namespace

uint64_t hash_row(const float* row, size_t dim) {
  const auto* p = reinterpret_cast<const unsigned char*>(row);
  size_t n = dim * sizeof(float);
  constexpr uint64_t kMultiplier = 0x9e3779b97f4a7c15ull;
  // Four independent lanes of multiply and rotate over 32-byte stripes.
  uint64_t h0 = 0x243f6a8885a308d3ull, h1 = 0x13198a2e03707344ull, h2 = 0xa4093822299f31d0ull,
           h3 = 0x082efa98ec4e6c89ull;
  for (; n >= 32; n -= 32, p += 32) {
    h0 = std::rotl((h0 ^ load64(p)) * kMultiplier, 31);
    h1 = std::rotl((h1 ^ load64(p + 8)) * kMultiplier, 31);
    h2 = std::rotl((h2 ^ load64(p + 16)) * kMultiplier, 31);
    h3 = std::rotl((h3 ^ load64(p + 24)) * kMultiplier, 31);
  }
  for (; n >= 8; n -= 8, p += 8) h0 = std::rotl((h0 ^ load64(p)) * kMultiplier, 31);
  if (n > 0) {
    uint64_t tail = 0;
    std::memcpy(&tail, p, n);
    h1 = std::rotl((h1 ^ tail) * kMultiplier, 31);
  }
  return mix(h0 ^ std::rotl(h1, 17) ^ std::rotl(h2, 31) ^ std::rotl(h3, 47) ^ dim);
}

Distinct find_distinct(const float* in, size_t rows, size_t dim) {
  Distinct distinct;
  distinct.index.resize(rows);
  size_t capacity = 16;
  while (capacity < 2 * rows) capacity *= 2;
  const size_t mask = capacity - 1;
  // The table (kept per thread: no page faults on every call) and the hash
  // of each distinct row.
  uint32_t* slots = scratch<uint32_t, 11>(capacity);
  std::fill(slots, slots + capacity, kEmpty);
  uint64_t* hashes = scratch<uint64_t, 12>(rows);
  const size_t row_bytes = dim * sizeof(float);
  for (size_t r = 0; r < rows; ++r) {
    const float* row = in + r * dim;
    const uint64_t h = hash_row(row, dim);
    for (size_t at = h & mask;; at = (at + 1) & mask) {
      const uint32_t j = slots[at];
      if (j == kEmpty) {
        slots[at] = static_cast<uint32_t>(distinct.first.size());
        distinct.index[r] = slots[at];
        hashes[distinct.first.size()] = h;
        distinct.first.push_back(static_cast<uint32_t>(r));
        break;
      }
      if (hashes[j] == h && (row_bytes == 0 || std::memcmp(in + size_t{distinct.first[j]} * dim,
                                                           row, row_bytes) == 0)) {
        distinct.index[r] = j;
        break;
      }
    }
  }
  return distinct;
}

size_t index_bytes(size_t rows, size_t distinct) {
  return 8 + (rows * width_for(distinct) + 7) / 8;
}

void append_index(const Distinct& distinct, size_t rows, std::vector<std::byte>& out) {
  const unsigned width = width_for(distinct.first.size());
  put(out, static_cast<uint32_t>(distinct.first.size()));
  put(out, static_cast<uint8_t>(width));
  put(out, uint8_t{0});
  put(out, uint16_t{0});
  const size_t at = out.size();
  const size_t bytes = (rows * width + 7) / 8;
  out.resize(at + bytes + 8);  // 8 bytes of slack for the word stores, cut below
  auto* o = reinterpret_cast<unsigned char*>(out.data() + at);
  uint64_t buffer = 0;
  unsigned bits = 0;
  for (size_t r = 0; r < rows; ++r) {
    buffer |= static_cast<uint64_t>(distinct.index[r]) << bits;
    bits += width;
    if (bits >= 32) {
      std::memcpy(o, &buffer, 4);
      o += 4;
      buffer >>= 32;
      bits -= 32;
    }
  }
  std::memcpy(o, &buffer, 8);
  out.resize(at + bytes);
}

std::vector<uint32_t> read_index(std::span<const std::byte> section, size_t rows,
                                 size_t& distinct) {
  Reader reader(section, "index section");
  distinct = reader.get<uint32_t>("distinct rows");
  const unsigned width = reader.get<uint8_t>("width");
  if (reader.get<uint8_t>("padding") != 0 || reader.get<uint16_t>("padding") != 0)
    corrupt("index section: nonzero padding");
  if (rows > UINT32_MAX) corrupt("index section: more than 2^32 - 1 rows");
  if (rows == 0 ? distinct != 0 : (distinct == 0 || distinct > rows))
    corrupt("index section: " + std::to_string(distinct) + " distinct rows of " +
            std::to_string(rows));
  if (width != width_for(distinct)) corrupt("index section: wrong bit width");
  const auto packed = reader.bytes((rows * width + 7) / 8, "indices");
  reader.expect_end();

  std::vector<uint32_t> index(rows);
  const auto* p = reinterpret_cast<const unsigned char*>(packed.data());
  const unsigned char* end = p + packed.size();
  uint64_t buffer = 0;
  unsigned bits = 0;
  const uint64_t mask = width == 0 ? 0 : (uint64_t{1} << width) - 1;
  uint32_t next = 0;  // distinct rows seen so far
  for (size_t r = 0; r < rows; ++r) {
    while (bits < width && p < end) {
      buffer |= static_cast<uint64_t>(*p++) << bits;
      bits += 8;
    }
    const auto value = static_cast<uint32_t>(buffer & mask);
    buffer >>= width;
    bits -= width;
    if (value > next) corrupt("index section: rows not in order of first appearance");
    if (value == next) ++next;
    index[r] = value;
  }
  if (next != distinct) corrupt("index section: fewer distinct rows than declared");
  return index;
}

void expand_rows(float* out, size_t dim, std::span<const uint32_t> index) {
  if (dim == 0) return;
  for (size_t r = index.size(); r-- > 0;) {
    const size_t j = index[r];
    if (j != r) std::memcpy(out + r * dim, out + j * dim, dim * sizeof(float));
  }
}

}  // namespace paralab::kernels::compress::detail
