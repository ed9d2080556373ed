// Canonical Huffman coding (kernels/cpu/huffman.hpp): code construction,
// the table-driven encoder and decoder, and the blob layout.

#include "kernels/cpu/huffman.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <numeric>
#include <string>

#include "kernels/compress_detail.hpp"

namespace paralab::kernels::compress::huffman {

namespace {

using detail::corrupt;

// The low `length` bits of code in reverse order (1 <= length <= 32): a
// swap network, not a loop over the bits, since tables are built per call
// and alphabets of 5000 symbols are common at tight bounds.
uint32_t reverse_bits(uint32_t code, int length) {
  code = (code >> 1 & 0x55555555u) | (code & 0x55555555u) << 1;
  code = (code >> 2 & 0x33333333u) | (code & 0x33333333u) << 2;
  code = (code >> 4 & 0x0f0f0f0fu) | (code & 0x0f0f0f0fu) << 4;
  code = __builtin_bswap32(code);
  return code >> (32 - length);
}

// Sorts symbols by weight[symbol] ascending, stably (ties keep their order):
// an LSD radix sort, a byte of the weights a pass and only as many passes as
// the largest weight has bytes. A comparison sort of a 5000-symbol alphabet
// cost more than quantising and coding a 64K-value matrix.
void sort_by_weight(std::vector<uint32_t>& symbols, const std::vector<uint64_t>& weight) {
  uint64_t largest = 0;
  for (const uint32_t s : symbols) largest = std::max(largest, weight[s]);
  std::vector<uint32_t> other(symbols.size());
  for (int shift = 0; shift < 64 && (largest >> shift) != 0; shift += 8) {
    std::array<uint32_t, 257> start{};
    for (const uint32_t s : symbols) ++start[((weight[s] >> shift) & 0xffu) + 1];
    std::partial_sum(start.begin(), start.end(), start.begin());
    for (const uint32_t s : symbols) other[start[(weight[s] >> shift) & 0xffu]++] = s;
    symbols.swap(other);
  }
}

// Depth of each leaf in Huffman's tree for weights sorted ascending, built
// with two queues (leaves, then internal nodes in order of creation, whose
// weights never decrease). Returns the largest depth.
int huffman_depths(const std::vector<uint64_t>& weights, std::vector<int>& depth) {
  const size_t n = weights.size();
  std::vector<uint64_t> node_weight(2 * n - 1);
  std::vector<uint32_t> parent(2 * n - 1);
  std::copy(weights.begin(), weights.end(), node_weight.begin());
  size_t leaf = 0, internal = n;
  auto take = [&](size_t next) {
    if (leaf < n && (internal >= next || node_weight[leaf] <= node_weight[internal])) return leaf++;
    return internal++;
  };
  for (size_t next = n; next < 2 * n - 1; ++next) {
    const size_t a = take(next), b = take(next);
    node_weight[next] = node_weight[a] + node_weight[b];
    parent[a] = parent[b] = static_cast<uint32_t>(next);
  }
  std::vector<int> node_depth(2 * n - 1, 0);
  int deepest = 0;
  for (size_t i = 2 * n - 1; i-- > 0;) {
    if (i != 2 * n - 2) node_depth[i] = node_depth[parent[i]] + 1;
    if (i < n) deepest = std::max(deepest, node_depth[i]);
  }
  depth.assign(node_depth.begin(), node_depth.begin() + static_cast<std::ptrdiff_t>(n));
  return deepest;
}

// Canonical codes (MSB-first values) for lengths: shorter codes first, and
// within a length, smaller symbols first.
std::vector<uint32_t> canonical_codes(std::span<const uint8_t> lengths) {
  std::array<uint32_t, kMaxLength + 2> count{}, next{};
  for (const uint8_t length : lengths) ++count[length];
  count[0] = 0;
  for (int length = 1; length <= kMaxLength; ++length)
    next[length] = (next[length - 1] + count[length - 1]) << 1;
  std::vector<uint32_t> codes(lengths.size(), 0);
  for (size_t s = 0; s < lengths.size(); ++s)
    if (lengths[s] != 0) codes[s] = next[lengths[s]]++;
  return codes;
}

uint64_t load64(const uint8_t* p) {
  uint64_t value;
  std::memcpy(&value, p, sizeof value);
  return value;
}

}  // namespace

std::vector<uint8_t> code_lengths(std::span<const uint64_t> counts, int max_length) {
  if (counts.size() > kMaxSymbols) throw std::invalid_argument("huffman: alphabet over 65536");
  if (max_length > kMaxLength || (uint64_t{1} << max_length) < counts.size())
    throw std::invalid_argument("huffman: length limit too large or too small for the alphabet");
  std::vector<uint8_t> lengths(counts.size(), 0);
  std::vector<uint32_t> used;
  for (size_t s = 0; s < counts.size(); ++s)
    if (counts[s] != 0) used.push_back(static_cast<uint32_t>(s));
  if (used.empty()) return lengths;
  if (used.size() == 1) {
    lengths[used[0]] = 1;
    return lengths;
  }
  std::vector<uint64_t> weight(counts.size(), 0);
  for (const uint32_t s : used) weight[s] = counts[s];
  std::vector<uint64_t> sorted(used.size());
  std::vector<int> depth;
  for (;;) {
    sort_by_weight(used, weight);
    for (size_t i = 0; i < used.size(); ++i) sorted[i] = weight[used[i]];
    if (huffman_depths(sorted, depth) <= max_length) break;
    for (const uint32_t s : used) weight[s] = (weight[s] + 1) / 2;
  }
  for (size_t i = 0; i < used.size(); ++i) lengths[used[i]] = static_cast<uint8_t>(depth[i]);
  return lengths;
}

double coded_bits(std::span<const uint64_t> counts, std::span<const uint8_t> lengths) {
  double bits = 0, total = 0;
  size_t used = 0;
  for (size_t s = 0; s < counts.size(); ++s) {
    bits += static_cast<double>(counts[s]) * lengths[s];
    total += static_cast<double>(counts[s]);
    used += counts[s] != 0;
  }
  return used <= 1 || total == 0 ? 0.0 : bits / total;
}

// --- encoder ---------------------------------------------------------------------

Encoder::Encoder(std::span<const uint8_t> lengths, uint16_t base)
    : table_(new uint32_t[size_t{base} + std::max<size_t>(lengths.size(), 1)]) {
  table_[0] = 0;
  for (size_t h = 1; h < lengths.size(); ++h) table_[base + h] = 0;
  size_t used = 0;
  for (const uint8_t length : lengths) used += length != 0;
  if (used <= 1) return;  // nothing, or one symbol sent with 0 bits
  const std::vector<uint32_t> codes = canonical_codes(lengths);
  for (size_t h = 0; h < lengths.size(); ++h) {
    if (lengths[h] == 0) continue;
    table_[h == 0 ? 0 : base + h] = reverse_bits(codes[h], lengths[h]) << 8 | lengths[h];
    max_length_ = std::max<int>(max_length_, lengths[h]);
  }
}

// kPerFlush codes (<= 56 bits) on top of at most 7 pending bits, then a
// flush of the whole bytes: an 8-byte store, always, advancing by the bytes
// done.
template <int kPerFlush>
size_t Encoder::encode_with(const uint16_t* symbols, size_t n, std::byte* out) const {
  auto* o = reinterpret_cast<uint8_t*>(out);
  const uint32_t* table = table_.get();
  uint64_t buffer = 0;
  unsigned bits = 0;
  size_t i = 0;
  for (; i + kPerFlush <= n; i += kPerFlush) {
    for (int k = 0; k < kPerFlush; ++k) {
      const uint32_t e = table[symbols[i + static_cast<size_t>(k)]];
      buffer |= static_cast<uint64_t>(e >> 8) << bits;
      bits += e & 0xffu;
    }
    std::memcpy(o, &buffer, 8);
    const unsigned whole = bits & ~7u;
    o += whole >> 3;
    buffer >>= whole;
    bits -= whole;
  }
  for (; i < n; ++i) {
    const uint32_t e = table[symbols[i]];
    buffer |= static_cast<uint64_t>(e >> 8) << bits;
    bits += e & 0xffu;
    std::memcpy(o, &buffer, 8);
    const unsigned whole = bits & ~7u;
    o += whole >> 3;
    buffer >>= whole;
    bits -= whole;
  }
  std::memcpy(o, &buffer, 8);
  o += (bits + 7) >> 3;
  return static_cast<size_t>(o - reinterpret_cast<uint8_t*>(out));
}

size_t Encoder::encode(const uint16_t* symbols, size_t n, std::byte* out) const {
  if (max_length_ == 0) {  // 0 bits a symbol
    std::memset(out, 0, 8);
    return 0;
  }
  if (max_length_ <= 14) return encode_with<4>(symbols, n, out);
  if (max_length_ <= 18) return encode_with<3>(symbols, n, out);
  return encode_with<2>(symbols, n, out);
}

// --- decoder ---------------------------------------------------------------------

namespace {
constexpr uint32_t kSubtable = 1u << 31;
}  // namespace

struct Decoder::Stream {
  const uint8_t* begin;
  const uint8_t* p;
  const uint8_t* end;
  uint64_t buffer = 0;
  unsigned bits = 0;
  uint16_t* out;
  size_t n, i = 0;

  Stream(std::span<const std::byte> in, uint16_t* out_, size_t n_)
      : begin(reinterpret_cast<const uint8_t*>(in.data())),
        p(begin),
        end(begin + in.size()),
        out(out_),
        n(n_) {}
  // Whether a refill can load 8 bytes and kPerRefill symbols are left.
  bool ready(size_t per_refill) const { return i + per_refill <= n && end - p >= 8; }
  void refill() {
    buffer |= load64(p) << bits;
    p += (63 - bits) >> 3;
    bits |= 56;
  }
};

Decoder::Decoder(std::span<const uint8_t> lengths) {
  if (lengths.size() > kMaxSymbols) corrupt("Huffman table: alphabet over 65536 symbols");
  std::array<uint32_t, kMaxLength + 1> count{};  // symbols of each length
  for (size_t s = 0; s < lengths.size(); ++s) {
    const int length = lengths[s];
    if (length == 0) continue;
    if (length > kMaxLength)
      corrupt("Huffman table: code length " + std::to_string(length) + " over " +
              std::to_string(kMaxLength));
    ++count[static_cast<size_t>(length)];
    max_length_ = std::max(max_length_, length);
    ++used_;
    only_symbol_ = static_cast<uint16_t>(s);
  }
  if (used_ <= 1) {
    if (used_ == 1 && max_length_ != 1) corrupt("Huffman table: a lone symbol must have length 1");
    return;
  }
  // Kraft sum in units of 2^-kMaxLength.
  uint64_t kraft = 0;
  for (int length = 1; length <= kMaxLength; ++length)
    kraft += uint64_t{count[static_cast<size_t>(length)]} << (kMaxLength - length);
  if (kraft != uint64_t{1} << kMaxLength) corrupt("Huffman table: not a complete prefix code");

  // The primary table's width. A code of length l is about 2^-l of the
  // symbols, so the codes longer than the table (each a second lookup and
  // likely a mispredicted branch) are about their Kraft sum of the symbols.
  // kTableBits (16 KiB), or the longest code when shorter (a small
  // alphabet's table is quick to build), widened a bit at a time up to
  // kWideTableBits (64 KiB) while more than 1/32 of the symbols would miss:
  // at tight bounds most codes are 12-14 bits, and a 12-bit table sent a
  // third of them through the second level.
  table_bits_ = std::min(max_length_, kTableBits);
  auto long_share = [&](int bits) {  // in units of 2^-kMaxLength
    uint64_t share = 0;
    for (int length = bits + 1; length <= kMaxLength; ++length)
      share += uint64_t{count[static_cast<size_t>(length)]} << (kMaxLength - length);
    return share;
  };
  while (table_bits_ < std::min(max_length_, kWideTableBits) &&
         long_share(table_bits_) > (uint64_t{1} << kMaxLength) / 32)
    ++table_bits_;
  const uint32_t table_size = 1u << table_bits_;

  // One pass in symbol order, numbering each length's codes canonically
  // (canonical_codes, inline): short codes fill their primary entries, long
  // ones are kept for the second level.
  std::array<uint32_t, kMaxLength + 1> next{};  // count[0] is 0: unused symbols take no codes
  for (size_t length = 1; length <= kMaxLength; ++length)
    next[length] = (next[length - 1] + count[length - 1]) << 1;
  struct Long {
    uint32_t reversed, entry;
  };
  std::vector<Long> long_codes;
  primary_.assign(table_size, 0);
  for (size_t s = 0; s < lengths.size(); ++s) {
    const int length = lengths[s];
    if (length == 0) continue;
    const uint32_t reversed = reverse_bits(next[static_cast<size_t>(length)]++, length);
    const uint32_t entry = static_cast<uint32_t>(s) | static_cast<uint32_t>(length) << 16;
    if (length <= table_bits_) {
      for (uint32_t j = reversed; j < table_size; j += 1u << length) primary_[j] = entry;
    } else {
      long_codes.push_back({reversed, entry});
    }
  }
  if (long_codes.empty()) return;
  // Second level: under each prefix of long codes, a table over the next
  // (longest - table_bits_) bits: at most 2^table_bits_ x 2^(kMaxLength -
  // table_bits_) = 2^20 entries, however the lengths are crafted. The loops
  // run over the long codes only (a few percent of a tight bound's
  // alphabet), not over every prefix. No short code fills a long code's
  // prefix (a complete prefix code), so its primary entry, still 0, first
  // collects the longest length under it, then becomes the link.
  for (const Long& code : long_codes) {
    uint32_t& head = primary_[code.reversed & (table_size - 1)];
    head = std::max(head, code.entry >> 16);
  }
  uint32_t offset = 0;  // in order of first appearance: deterministic
  for (const Long& code : long_codes) {
    uint32_t& head = primary_[code.reversed & (table_size - 1)];
    if (head & kSubtable) continue;
    const uint32_t sub_bits = head - static_cast<uint32_t>(table_bits_);
    head = kSubtable | sub_bits << 24 | offset;
    offset += 1u << sub_bits;
  }
  secondary_.assign(offset, 0);
  for (const Long& code : long_codes) {
    const uint32_t length = (code.entry >> 16) & 31u;
    const uint32_t head = primary_[code.reversed & (table_size - 1)];
    const uint32_t base = head & 0xffffffu, sub_size = 1u << ((head >> 24) & 31u);
    for (uint32_t j = code.reversed >> table_bits_; j < sub_size; j += 1u << (length - table_bits_))
      secondary_[base + j] = code.entry;
  }
}

// A decoder's tables as the decoding loops use them.
struct Decoder::Tables {
  const uint32_t* primary;
  const uint32_t* secondary;
  uint64_t mask;  // of the primary table's index
  unsigned bits;  // its width
};

Decoder::Tables Decoder::tables() const {
  return {primary_.data(), secondary_.data(), (uint64_t{1} << table_bits_) - 1,
          static_cast<unsigned>(table_bits_)};
}

namespace {

// The table entry for the next code in `buffer`.
inline uint32_t lookup(const Decoder::Tables& t, uint64_t buffer) {
  uint32_t e = t.primary[buffer & t.mask];
  if (e & kSubtable) [[unlikely]]
    e = t.secondary[(e & 0xffffffu) + ((buffer >> t.bits) & ((1u << ((e >> 24) & 31u)) - 1))];
  return e;
}

}  // namespace

// While 8 bytes can be loaded: refill to 56..63 bits, then kPerRefill
// symbols (kPerRefill x the longest code <= 56 bits).
template <int kPerRefill>
void Decoder::run(Stream& s) const {
  const Tables t = tables();
  while (s.ready(kPerRefill)) {
    s.refill();
    for (int k = 0; k < kPerRefill; ++k) {
      const uint32_t e = lookup(t, s.buffer);
      const unsigned length = (e >> 16) & 31u;
      s.out[s.i++] = static_cast<uint16_t>(e);
      s.buffer >>= length;
      s.bits -= length;
    }
  }
}

template <int kPerRefill>
void Decoder::run2(Stream& a, const Decoder& other, Stream& b) const {
  const Tables ta = tables(), tb = other.tables();
  while (a.ready(kPerRefill) && b.ready(kPerRefill)) {
    a.refill();
    b.refill();
    for (int k = 0; k < kPerRefill; ++k) {
      const uint32_t ea = lookup(ta, a.buffer);
      const uint32_t eb = lookup(tb, b.buffer);
      const unsigned la = (ea >> 16) & 31u, lb = (eb >> 16) & 31u;
      a.out[a.i++] = static_cast<uint16_t>(ea);
      b.out[b.i++] = static_cast<uint16_t>(eb);
      a.buffer >>= la;
      a.bits -= la;
      b.buffer >>= lb;
      b.bits -= lb;
    }
  }
}

// The rest of a stream: the fast loop, then a byte at a time, checking the
// bits are there, and that the codes end in the last byte.
void Decoder::finish(Stream& s) const {
  if (max_length_ <= 14)
    run<4>(s);
  else if (max_length_ <= 18)
    run<3>(s);
  else
    run<2>(s);
  for (; s.i < s.n; ++s.i) {
    while (s.bits <= 56 && s.p < s.end) {
      s.buffer |= static_cast<uint64_t>(*s.p++) << s.bits;
      s.bits += 8;
    }
    const uint32_t e = lookup(tables(), s.buffer);
    const unsigned length = (e >> 16) & 31u;
    if (length > s.bits) corrupt("Huffman block: truncated (the codes end before the symbols)");
    s.out[s.i] = static_cast<uint16_t>(e);
    s.buffer >>= length;
    s.bits -= length;
  }
  const size_t size = static_cast<size_t>(s.end - s.begin);
  const size_t consumed = static_cast<size_t>(s.p - s.begin) * 8 - s.bits;
  if ((consumed + 7) / 8 != size)
    corrupt("Huffman block: " + std::to_string(size) + " bytes but its codes take " +
            std::to_string((consumed + 7) / 8));
}

// Codes that send no bits (one symbol), or nothing to decode.
bool Decoder::trivial(std::span<const std::byte> in, uint16_t* out, size_t n) const {
  if (n > 0 && used_ > 1) return false;
  if (n > 0 && used_ == 0) corrupt("Huffman block: symbols but an empty code");
  if (!in.empty()) corrupt("Huffman block: bytes for a code that sends none");
  std::fill(out, out + n, only_symbol_);
  return true;
}

void Decoder::decode(std::span<const std::byte> in, uint16_t* out, size_t n) const {
  if (trivial(in, out, n)) return;
  Stream s(in, out, n);
  finish(s);
}

void Decoder::decode2(std::span<const std::byte> in0, uint16_t* out0, size_t n0,
                      std::span<const std::byte> in1, uint16_t* out1, size_t n1,
                      const Decoder* other) const {
  const Decoder& second = other ? *other : *this;
  if (trivial(in0, out0, n0) || second.trivial(in1, out1, n1)) {
    decode(in0, out0, n0);
    second.decode(in1, out1, n1);
    return;
  }
  Stream a(in0, out0, n0), b(in1, out1, n1);
  const int longest = std::max(max_length_, second.max_length_);
  if (longest <= 14)
    run2<4>(a, second, b);
  else if (longest <= 18)
    run2<3>(a, second, b);
  else
    run2<2>(a, second, b);
  finish(a);
  second.finish(b);
}

// --- blobs ---------------------------------------------------------------------------

Blob parse_blob(std::span<const std::byte> in, size_t blocks) {
  detail::Reader reader(in, "Huffman blob");
  Blob blob;
  const uint32_t alphabet = reader.get<uint32_t>("alphabet size");
  if (alphabet > kMaxSymbols) corrupt("Huffman blob: alphabet over 65536 symbols");
  const auto lengths = reader.bytes(alphabet, "code lengths");
  blob.lengths = {reinterpret_cast<const uint8_t*>(lengths.data()), lengths.size()};
  const auto sizes = reader.array(blocks, 4, "block sizes");
  blob.blocks.reserve(blocks);
  for (size_t b = 0; b < blocks; ++b) {
    const uint32_t size = detail::load<uint32_t>(sizes.data() + 4 * b);
    blob.blocks.push_back(reader.bytes(size, "block codes"));
  }
  blob.bytes = in.size() - reader.left();
  return blob;
}

void append_blob(std::span<const uint8_t> lengths,
                 std::span<const std::span<const std::byte>> blocks, std::vector<std::byte>& out) {
  detail::put(out, static_cast<uint32_t>(lengths.size()));
  detail::put_bytes(out, lengths.data(), lengths.size());
  size_t total = 0;
  for (const auto& block : blocks) {
    detail::put(out, static_cast<uint32_t>(block.size()));
    total += block.size();
  }
  out.reserve(out.size() + total);
  for (const auto& block : blocks) detail::put_bytes(out, block.data(), block.size());
}

void encode(std::span<const uint16_t> symbols, size_t block_symbols, int threads,
            std::vector<std::byte>& out) {
  if (block_symbols == 0) throw std::invalid_argument("huffman::encode: block_symbols = 0");
  uint16_t largest = 0;
  for (const uint16_t s : symbols) largest = std::max(largest, s);
  std::vector<uint64_t> counts(symbols.empty() ? 0 : size_t{largest} + 1, 0);
  for (const uint16_t s : symbols) ++counts[s];
  const std::vector<uint8_t> lengths = code_lengths(counts);
  const Encoder encoder(lengths);
  const size_t blocks = (symbols.size() + block_symbols - 1) / block_symbols;
  const size_t room = Encoder::max_bytes(block_symbols);
  std::vector<std::byte> coded(blocks * room);
  std::vector<std::span<const std::byte>> parts(blocks);
  detail::for_blocks(blocks, threads, [&](size_t b) {
    const size_t first = b * block_symbols;
    const size_t count = std::min(block_symbols, symbols.size() - first);
    std::byte* at = coded.data() + b * room;
    parts[b] = {at, encoder.encode(symbols.data() + first, count, at)};
  });
  append_blob(lengths, parts, out);
}

void decode(std::span<const std::byte> in, std::span<uint16_t> symbols, size_t block_symbols,
            int threads) {
  if (block_symbols == 0) throw std::invalid_argument("huffman::decode: block_symbols = 0");
  const size_t blocks = (symbols.size() + block_symbols - 1) / block_symbols;
  const Blob blob = parse_blob(in, blocks);
  if (blob.bytes != in.size()) corrupt("Huffman blob: bytes after its last block");
  const Decoder decoder(blob.lengths);
  detail::for_blocks(blocks, threads, [&](size_t b) {
    const size_t first = b * block_symbols;
    decoder.decode(blob.blocks[b], symbols.data() + first,
                   std::min(block_symbols, symbols.size() - first));
  });
}

}  // namespace paralab::kernels::compress::huffman
