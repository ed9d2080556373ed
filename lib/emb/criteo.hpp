// criteo.hpp: a reader for Criteo-format click logs (the Kaggle Display
// Advertising Challenge / Terabyte TSV): per line a 0/1 label, 13 integer
// dense features and 26 categorical features as hex strings, tab separated;
// any feature may be empty. Turned into lib/dlrm batches as the DLRM
// reference's loader does: dense x -> log(1 + max(x, 0)) (empty: 0);
// categorical hex value v -> row v mod rows_t of table t (empty: row 0).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dlrm/model.hpp"

namespace paralab::emb {

inline constexpr int kCriteoDense = 13, kCriteoCategorical = 26;

struct CriteoSample {
  float label = 0;
  std::array<float, kCriteoDense> dense{};              // already log(1 + x)
  std::array<uint32_t, kCriteoCategorical> category{};  // hex value, 0 when empty
};

// One line (without its newline). Throws std::invalid_argument naming the
// problem (field count, a label other than 0/1, a bad integer or hex field).
CriteoSample parse_criteo_line(std::string_view line);

// Every line of a file; throws UsageError "criteo file 'P' line N: ..." on
// the first bad line, or when the file cannot be read or is empty.
std::vector<CriteoSample> read_criteo(const std::string& path);

// A batch of pool[(first + i) mod pool.size()], i < count, for `config` (13
// dense features, 26 tables, pooling 1; checked: UsageError).
void criteo_batch(std::span<const CriteoSample> pool, const dlrm::DlrmConfig& config, int64_t first,
                  int count, dlrm::Batch& out);
void check_criteo_model(const dlrm::DlrmConfig& config);

}  // namespace paralab::emb
