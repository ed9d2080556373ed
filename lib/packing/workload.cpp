// workload.cpp: micro-batch basics, the workload model W(d) = Wa(d) + Wl(d),
// its least-squares fit, and the imbalance metrics of a step.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>
#include <string>

#include "core/errors.hpp"
#include "packing/packing.hpp"

namespace paralab::packing {

int64_t MicroBatch::tokens() const {
  int64_t sum = 0;
  for (const Document& doc : docs) sum += doc.length;
  return sum;
}

std::vector<int64_t> MicroBatch::doc_starts() const {
  std::vector<int64_t> starts;
  starts.reserve(docs.size());
  int64_t position = 0;
  for (const Document& doc : docs) {
    starts.push_back(position);
    position += doc.length;
  }
  return starts;
}

double WorkloadModel::of(const MicroBatch& mb) const {
  double sum = 0;
  for (const Document& doc : mb.docs) sum += (*this)(doc.length);
  return sum;
}

// Minimises the squared relative error sum ((a d^2 + b d - t) / t)^2 over
// (a, b): kernel times span orders of magnitude from short to long
// documents, and plain least squares would fit the longest ones only. No
// intercept: a document of zero tokens costs nothing. Lengths are scaled by
// the longest first so that d^4 does not swamp d^2 in the sums.
WorkloadModel fit_workload(std::span<const std::pair<int64_t, double>> samples) {
  std::set<int64_t> distinct;
  int64_t longest = 0;
  for (const auto& [length, seconds] : samples) {
    if (length <= 0)
      throw UsageError("fit_workload: sample length " + std::to_string(length) +
                       " is not positive");
    if (!std::isfinite(seconds) || seconds <= 0)
      throw UsageError("fit_workload: sample time " + std::to_string(seconds) + " for length " +
                       std::to_string(length) + " is not a positive number");
    distinct.insert(length);
    longest = std::max(longest, length);
  }
  if (distinct.size() < 2)
    throw UsageError("fit_workload needs samples of at least two distinct lengths, got " +
                     std::to_string(distinct.size()));
  const double scale = double(longest);
  // Rows (x^2 / t, x / t) against 1: the normal equations of the relative fit.
  double s_qq = 0, s_ql = 0, s_ll = 0, s_q = 0, s_l = 0;
  for (const auto& [length, seconds] : samples) {
    const double x = double(length) / scale;
    const double q = x * x / seconds, l = x / seconds;
    s_qq += q * q;
    s_ql += q * l;
    s_ll += l * l;
    s_q += q;
    s_l += l;
  }
  const double det = s_qq * s_ll - s_ql * s_ql;
  WorkloadModel model;
  model.attention_coef = (s_q * s_ll - s_ql * s_l) / det / (scale * scale);
  model.linear_coef = (s_qq * s_l - s_ql * s_q) / det / scale;
  return model;
}

double imbalance(const Step& step, const WorkloadModel& workload) {
  if (step.micro_batches.empty()) return 1.0;
  double largest = 0, sum = 0;
  for (const MicroBatch& mb : step.micro_batches) {
    const double w = workload.of(mb);
    largest = std::max(largest, w);
    sum += w;
  }
  const double mean = sum / double(step.micro_batches.size());
  return mean > 0 ? largest / mean : 1.0;
}

double latency_imbalance(std::span<const double> latencies) {
  double largest = 0, sum = 0;
  for (double latency : latencies) {
    largest = std::max(largest, latency);
    sum += latency;
  }
  return sum > 0 ? largest * double(latencies.size()) / sum : 1.0;
}

PackingKind parse_packing_kind(std::string_view name) {
  if (name == "plain") return PackingKind::plain;
  if (name == "fixed") return PackingKind::fixed;
  if (name == "wlb") return PackingKind::wlb;
  throw UsageError("unknown packing '" + std::string(name) + "' (expected plain, fixed or wlb)");
}

std::string to_string(PackingKind kind) {
  switch (kind) {
    case PackingKind::plain:
      return "plain";
    case PackingKind::fixed:
      return "fixed";
    case PackingKind::wlb:
      return "wlb";
  }
  return "?";
}

CpSharding parse_cp_sharding(std::string_view name) {
  if (name == "per-sequence") return CpSharding::per_sequence;
  if (name == "per-document") return CpSharding::per_document;
  if (name == "adaptive") return CpSharding::adaptive;
  throw UsageError("unknown CP sharding '" + std::string(name) +
                   "' (expected per-sequence, per-document or adaptive)");
}

std::string to_string(CpSharding sharding) {
  switch (sharding) {
    case CpSharding::per_sequence:
      return "per-sequence";
    case CpSharding::per_document:
      return "per-document";
    case CpSharding::adaptive:
      return "adaptive";
  }
  return "?";
}

}  // namespace paralab::packing
