// The tables pvf prints and the HDF5 groups it writes.
#pragma once

#include <string>
#include <vector>

#include "harness/app.hpp"
#include "harness/table.hpp"
#include "options.hpp"
#include "pvf/campaign.hpp"
#include "pvf/dlrm_target.hpp"
#include "pvf/transformer_target.hpp"

namespace paralab::pvf_app {

// Partial against full recomputation of one component's injections.
struct Speed {
  std::string component;
  int injections = 0;
  double partial_s = 0, full_s = 0;  // total seconds
  int mismatches = 0;                // injections whose partial logits differ from the full ones
};

struct RunSummary {
  pvf::TrainingSummary training;                // DLRM
  pvf::TransformerTrainingSummary transformer;  // --model transformer
  double campaign_s = 0;                        // wall time of the campaign on rank 0 (this run)
  int64_t injections = 0;                       // over all ranks, this run
  std::vector<Speed> speeds;
};

Table make_table(const World& world);
// One row of the cell table.
void print_cell(const Table& table, const pvf::Target& target, const pvf::Cell& c,
                const pvf::CellCounts& counts);
void print_speeds(const World& world, const std::vector<Speed>& speeds);
// Rank 0: one point per cell, /speed and /model groups.
void record(App& app, const Options& o, const Setup& s, const pvf::Target& target,
            const std::vector<pvf::CellCounts>& counts, const RunSummary& summary);

}  // namespace paralab::pvf_app
