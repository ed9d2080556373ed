// summary.cpp: run_packing, one packer over a seeded stream of global
// batches, summarised (the imbalance reproduction and the benchmark use it).
#include <algorithm>

#include "core/errors.hpp"
#include "packing/packing.hpp"

namespace paralab::packing {

PackingSummary run_packing(PackingKind kind, const PackingConfig& config, std::string_view spec,
                           int batches, int64_t batch_tokens, uint64_t seed) {
  if (batches < 1)
    throw UsageError("run_packing needs at least one global batch, got " + std::to_string(batches));
  // Every packer sees the same documents, at most the context long.
  auto packer = make_packer(kind, config);
  GlobalBatches batches_of(make_length_source(spec, config.context, config.context, seed),
                           batch_tokens);
  PackingSummary summary;
  std::vector<Step> steps;
  double imbalance_sum = 0, pack_seconds = 0;
  summary.max_imbalance = 0;
  for (int i = 0; i < batches; ++i) {
    for (Step& step : packer->push(batches_of.next())) {
      const double degree = imbalance(step, config.workload);
      imbalance_sum += degree;
      summary.max_imbalance = std::max(summary.max_imbalance, degree);
      pack_seconds += step.pack_seconds;
      steps.push_back(std::move(step));
    }
  }
  summary.steps = int64_t(steps.size());
  if (summary.steps > 0)
    summary.mean_imbalance = imbalance_sum / double(summary.steps);
  else
    summary.max_imbalance = 1;
  summary.pack_seconds_per_batch = pack_seconds / double(batches);
  for (Step& step : packer->flush()) steps.push_back(std::move(step));
  summary.delay = delay_stats(steps);
  return summary;
}

}  // namespace paralab::packing
