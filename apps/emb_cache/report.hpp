// What emb_cache prints and writes: the progress lines, one table row per
// trained variant (and the FP32 reference), one HDF5 point each.
#pragma once

#include <string>
#include <vector>

#include "emb/train.hpp"
#include "harness/table.hpp"
#include "options.hpp"

namespace paralab::emb_cache {

// The summary numbers of a run, from its RunResult.
struct Summary {
  std::string label;
  const Variant* variant = nullptr;  // null: the FP32 reference (lib/dlrm)
  emb::RunResult result;
  double auc = 0, logloss = 0;
  int64_t bytes = 0, fp32_bytes = 0;
  double step_s = 0;      // mean over the steps after the first
  double prefetch_s = 0;  // mean admission time booked outside the step (prefetch)
  double lookups_per_s = 0, updates_per_s = 0;  // NaN for the reference
  double hit_rate = 0;  // over all tables and steps, per lookup; NaN for the reference
};
Summary summarise(std::string label, const Variant* variant, emb::RunResult result,
                  int64_t fp32_bytes);

Table make_table(const World& world);
void print_row(const Table& table, const Summary& s, const Summary& reference);
// Rank 0: one point per run.
void record(App& app, const Options& o, const Setup& s, const Summary& run,
            const Summary& reference);

}  // namespace paralab::emb_cache
