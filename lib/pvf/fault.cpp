#include "pvf/fault.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "core/bf16.hpp"
#include "core/errors.hpp"

namespace paralab::pvf {

int storage_bits(DType dtype) {
  switch (dtype) {
    case DType::fp32:
      return 32;
    case DType::bf16:
    case DType::fp16:
      return 16;
    case DType::int8:
      return 8;
  }
  return 0;
}

std::string name(DType dtype) {
  switch (dtype) {
    case DType::fp32:
      return "fp32";
    case DType::bf16:
      return "bf16";
    case DType::fp16:
      return "fp16";
    case DType::int8:
      return "int8";
  }
  return "?";
}

std::string name(BitClass bits) {
  switch (bits) {
    case BitClass::any:
      return "any";
    case BitClass::sign:
      return "sign";
    case BitClass::exponent:
      return "exponent";
    case BitClass::mantissa:
      return "mantissa";
    case BitClass::high:
      return "high";
    case BitClass::low:
      return "low";
  }
  return "?";
}

DType parse_dtype(const std::string& text) {
  for (DType d : {DType::fp32, DType::bf16, DType::fp16, DType::int8})
    if (name(d) == text) return d;
  throw UsageError("unknown data type '" + text + "'; known: fp32, bf16, fp16, int8");
}

BitClass parse_bit_class(const std::string& text) {
  for (BitClass b : {BitClass::any, BitClass::sign, BitClass::exponent, BitClass::mantissa,
                     BitClass::high, BitClass::low})
    if (name(b) == text) return b;
  throw UsageError("unknown bit class '" + text +
                   "'; known: sign, exponent, mantissa (floats), high, low (int8), any");
}

bool class_valid(DType dtype, BitClass bits) {
  const bool is_int = dtype == DType::int8;
  switch (bits) {
    case BitClass::any:
    case BitClass::sign:
      return true;
    case BitClass::exponent:
    case BitClass::mantissa:
      return !is_int;
    case BitClass::high:
    case BitClass::low:
      return is_int;
  }
  return false;
}

BitRange class_bits(DType dtype, BitClass bits) {
  if (!class_valid(dtype, bits))
    throw std::invalid_argument("bit class " + name(bits) + " does not exist in " + name(dtype));
  const int width = storage_bits(dtype);
  // Mantissa width of the float types; INT8's "low" nibble plays its part.
  const int mant = dtype == DType::fp32   ? 23
                   : dtype == DType::bf16 ? 7
                   : dtype == DType::fp16 ? 10
                                          : 4;
  switch (bits) {
    case BitClass::any:
      return {0, width - 1};
    case BitClass::sign:
      return {width - 1, width - 1};
    case BitClass::exponent:
    case BitClass::high:
      return {mant, width - 2};
    case BitClass::mantissa:
    case BitClass::low:
      return {0, mant - 1};
  }
  return {};
}

std::string FaultModel::name() const {
  char buf[64];
  switch (kind) {
    case FaultKind::flip:
      return "flip";
    case FaultKind::ber:
      std::snprintf(buf, sizeof buf, "ber:%g", ber);
      return buf;
    case FaultKind::burst:
      return "burst:" + std::to_string(burst);
    case FaultKind::stuck0:
      return "stuck0";
    case FaultKind::stuck1:
      return "stuck1";
  }
  return "?";
}

FaultModel parse_fault_model(const std::string& text) {
  const std::string known =
      "; known: flip, ber:P (0 < P < 1), burst:L (2 <= L <= 32), stuck0, stuck1";
  FaultModel m;
  if (text == "flip") return m;
  if (text == "stuck0" || text == "stuck1") {
    m.kind = text == "stuck0" ? FaultKind::stuck0 : FaultKind::stuck1;
    return m;
  }
  const auto colon = text.find(':');
  const std::string head = text.substr(0, colon),
                    arg = colon == std::string::npos ? "" : text.substr(colon + 1);
  try {
    size_t used = 0;
    if (head == "ber" && !arg.empty()) {
      m.kind = FaultKind::ber;
      m.ber = std::stod(arg, &used);
      if (used == arg.size() && m.ber > 0 && m.ber < 1) return m;
    } else if (head == "burst" && !arg.empty()) {
      m.kind = FaultKind::burst;
      m.burst = std::stoi(arg, &used);
      if (used == arg.size() && m.burst >= 2 && m.burst <= 32) return m;
    }
  } catch (const std::logic_error&) {
  }
  throw UsageError("bad fault model '" + text + "'" + known);
}

uint32_t Storage::encode(float value) const {
  switch (dtype) {
    case DType::fp32:
      return std::bit_cast<uint32_t>(value);
    case DType::bf16:
      return float_to_bf16_rne(value).bits;
    case DType::fp16:
      return float_to_fp16(value);
    case DType::int8: {
      const float q = std::clamp(std::nearbyint(value / scale), -127.0f, 127.0f);
      return static_cast<uint8_t>(static_cast<int8_t>(q));
    }
  }
  return 0;
}

float Storage::decode(uint32_t word) const {
  switch (dtype) {
    case DType::fp32:
      return std::bit_cast<float>(word);
    case DType::bf16:
      return bf16_to_float(bf16{static_cast<uint16_t>(word)});
    case DType::fp16:
      return fp16_to_float(static_cast<uint16_t>(word));
    case DType::int8:
      return static_cast<float>(static_cast<int8_t>(static_cast<uint8_t>(word))) * scale;
  }
  return 0;
}

Storage make_storage(DType dtype, std::span<const float> master) {
  Storage s{dtype, 1.0f};
  if (dtype != DType::int8) return s;
  float amax = 0;
  for (float v : master) amax = std::max(amax, std::fabs(v));
  if (amax > 0) s.scale = amax / 127.0f;
  return s;
}

void BitOp::merge(const BitOp& other) {
  flip |= other.flip;
  set |= other.set;
  clear |= other.clear;
}

namespace {

// One element's fault for the single-element models; `bit` is in the class.
BitOp element_op(const FaultModel& model, int bit) {
  BitOp op;
  switch (model.kind) {
    case FaultKind::flip:
      op.flip = 1u << bit;
      break;
    case FaultKind::stuck0:
      op.clear = 1u << bit;
      break;
    case FaultKind::stuck1:
      op.set = 1u << bit;
      break;
    case FaultKind::burst:
      for (int b = std::max(0, bit - model.burst + 1); b <= bit; ++b) op.flip |= 1u << b;
      break;
    case FaultKind::ber:
      break;
  }
  return op;
}

// Binomial(n, p) by inversion of its CDF; n p is at most kMaxExpectedFlips,
// so (1 - p)^n stays far from underflow.
uint64_t binomial(uint64_t n, double p, Rng& rng) {
  const double u = rng.uniform();
  double pmf = std::pow(1.0 - p, static_cast<double>(n)), cdf = pmf;
  uint64_t k = 0;
  while (u >= cdf && k < n) {
    pmf *= static_cast<double>(n - k) / static_cast<double>(k + 1) * p / (1.0 - p);
    cdf += pmf;
    ++k;
    if (pmf == 0) break;  // rounding left the CDF below u: the tail is empty
  }
  return k;
}

std::vector<ElementFault> sample_ber(const FaultModel& model, BitRange range, uint64_t elements,
                                     Rng& rng) {
  const uint64_t per = static_cast<uint64_t>(range.count()), bits = elements * per;
  if (model.ber * static_cast<double>(bits) > kMaxExpectedFlips)
    throw std::invalid_argument("ber trial expects more than 64 flips");
  const uint64_t k = binomial(bits, model.ber, rng);
  std::vector<uint64_t> positions;
  while (positions.size() < k) {  // distinct positions: a bit flips once or not at all
    const uint64_t p = rng.below(bits);
    if (std::find(positions.begin(), positions.end(), p) == positions.end()) positions.push_back(p);
  }
  std::sort(positions.begin(), positions.end());
  std::vector<ElementFault> faults;
  for (uint64_t p : positions) {
    const uint64_t element = p / per;
    if (faults.empty() || faults.back().element != element) faults.push_back({element, {}});
    faults.back().op.flip |= 1u << (range.lo + static_cast<int>(p % per));
  }
  return faults;
}

}  // namespace

std::vector<ElementFault> sample_faults(const FaultModel& model, DType dtype, BitClass bits,
                                        uint64_t elements, Rng& rng) {
  const BitRange range = class_bits(dtype, bits);
  if (model.kind == FaultKind::ber) return sample_ber(model, range, elements, rng);
  const uint64_t element = rng.below(elements);
  const int bit = range.lo + static_cast<int>(rng.below(static_cast<uint64_t>(range.count())));
  return {{element, element_op(model, bit)}};
}

uint16_t float_to_fp16(float value) {
  const uint32_t x = std::bit_cast<uint32_t>(value);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u)
    return sign | 0x7e00u | static_cast<uint16_t>((ax >> 13) & 0x3ffu);  // quiet NaN
  if (ax >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds to infinity
  if (ax < 0x38800000u) {                        // below 2^-14: a subnormal (or zero)
    // |v| * 2^24 is exact in float; lrint rounds to nearest even (default mode).
    return sign | static_cast<uint16_t>(std::lrint(std::fabs(value) * 0x1p24f));
  }
  uint32_t h = ((((ax >> 23) - 127 + 15) << 10) | ((ax & 0x7fffffu) >> 13));
  const uint32_t rest = ax & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // a carry into the exponent is right
  return sign | static_cast<uint16_t>(h);
}

float fp16_to_float(uint16_t half) {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
  const uint32_t e = (half >> 10) & 0x1fu, m = half & 0x3ffu;
  if (e == 0) {
    const float v = static_cast<float>(m) * 0x1p-24f;  // exact
    return sign ? -v : v;
  }
  if (e == 31) return std::bit_cast<float>(sign | 0x7f800000u | (m << 13));
  return std::bit_cast<float>(sign | ((e - 15 + 127) << 23) | (m << 13));
}

}  // namespace paralab::pvf
