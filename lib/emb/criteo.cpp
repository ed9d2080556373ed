// criteo.cpp: the Criteo TSV reader (criteo.hpp).
#include "emb/criteo.hpp"

#include <charconv>
#include <cmath>
#include <fstream>
#include <stdexcept>

#include "core/errors.hpp"

namespace paralab::emb {

namespace {

std::vector<std::string_view> split_tabs(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t start = 0;
  while (true) {
    const size_t tab = line.find('\t', start);
    fields.push_back(line.substr(start, tab == std::string_view::npos ? tab : tab - start));
    if (tab == std::string_view::npos) return fields;
    start = tab + 1;
  }
}

template <typename T>
T parse_number(std::string_view text, int base, const char* what, int field) {
  T value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  if (ec != std::errc() || end != text.data() + text.size())
    throw std::invalid_argument(std::string(what) + " field " + std::to_string(field) + " '" +
                                std::string(text) + "' is not a number");
  return value;
}

}  // namespace

CriteoSample parse_criteo_line(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  const auto fields = split_tabs(line);
  constexpr size_t kFields = 1 + kCriteoDense + kCriteoCategorical;
  if (fields.size() != kFields)
    throw std::invalid_argument(std::to_string(fields.size()) + " tab-separated fields, expected " +
                                std::to_string(kFields));
  CriteoSample s;
  if (fields[0] != "0" && fields[0] != "1")
    throw std::invalid_argument("label '" + std::string(fields[0]) + "' is not 0 or 1");
  s.label = fields[0] == "1" ? 1.0f : 0.0f;
  for (int i = 0; i < kCriteoDense; ++i) {
    const auto f = fields[static_cast<size_t>(1 + i)];
    const int64_t x = f.empty() ? 0 : parse_number<int64_t>(f, 10, "integer", 1 + i);
    s.dense[static_cast<size_t>(i)] =
        static_cast<float>(std::log1p(static_cast<double>(std::max<int64_t>(x, 0))));
  }
  for (int i = 0; i < kCriteoCategorical; ++i) {
    const auto f = fields[static_cast<size_t>(1 + kCriteoDense + i)];
    s.category[static_cast<size_t>(i)] =
        f.empty() ? 0 : parse_number<uint32_t>(f, 16, "categorical", 1 + kCriteoDense + i);
  }
  return s;
}

std::vector<CriteoSample> read_criteo(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw UsageError("criteo file '" + path + "' cannot be read");
  std::vector<CriteoSample> samples;
  std::string line;
  int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    try {
      samples.push_back(parse_criteo_line(line));
    } catch (const std::invalid_argument& e) {
      throw UsageError("criteo file '" + path + "' line " + std::to_string(number) + ": " +
                       e.what());
    }
  }
  if (samples.empty()) throw UsageError("criteo file '" + path + "' has no samples");
  return samples;
}

void check_criteo_model(const dlrm::DlrmConfig& config) {
  if (config.dense_features != kCriteoDense || config.tables() != kCriteoCategorical)
    throw UsageError(
        "Criteo data needs 13 dense features and 26 tables (use --model criteo-kaggle)");
  for (int p : config.pooling)
    if (p != 1) throw UsageError("Criteo data has one index per bag: --pooling must be 1");
}

void criteo_batch(std::span<const CriteoSample> pool, const dlrm::DlrmConfig& config, int64_t first,
                  int count, dlrm::Batch& out) {
  check_criteo_model(config);
  out.size = count;
  out.dense.resize(static_cast<size_t>(count) * kCriteoDense);
  out.labels.resize(static_cast<size_t>(count));
  out.label_logits.clear();
  out.tables.resize(kCriteoCategorical);
  for (auto& l : out.tables) l.clear();
  for (int b = 0; b < count; ++b) {
    const CriteoSample& s = pool[static_cast<size_t>(first + b) % pool.size()];
    out.labels[static_cast<size_t>(b)] = s.label;
    std::copy(s.dense.begin(), s.dense.end(),
              out.dense.begin() + static_cast<long>(b) * kCriteoDense);
    for (int t = 0; t < kCriteoCategorical; ++t) {
      const auto rows = static_cast<uint64_t>(config.table_rows[static_cast<size_t>(t)]);
      auto& l = out.tables[static_cast<size_t>(t)];
      l.indices.push_back(static_cast<int32_t>(s.category[static_cast<size_t>(t)] % rows));
      l.offsets.push_back(static_cast<int32_t>(l.indices.size()));
    }
  }
}

}  // namespace paralab::emb
