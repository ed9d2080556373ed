// The measured training of dlrm_a2a: each codec of --codec trains in turn
// from the same initial weights on the same batches, timed per step and per
// phase; the exchange's bytes, ratios and codec times are kept per step and
// per table. Both modes run it: measure mode reports it, simulate mode
// calibrates its cost model on it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "comm/comm.hpp"
#include "dlrm/compressed_exchange.hpp"
#include "dlrm/data.hpp"
#include "harness/table.hpp"
#include "options.hpp"

namespace paralab::dlrm_a2a {

// One codec's run, summed over the ranks where it matters.
struct CodecRun {
  std::string codec;
  std::vector<double> loss, step_s, a2a_forward_s, a2a_backward_s, compress_s, ratio_forward,
      ratio_backward;
  std::vector<double> raw_forward, comp_forward, raw_backward, comp_backward;  // per step, bytes
  std::vector<int64_t> eval_step;
  std::vector<double> eval_auc, eval_logloss;
  dlrm::ExchangeStats table_forward, table_backward;  // summed over steps and ranks
  int64_t diverged_at = -1;  // first step with a non-finite or exploding loss; -1: none
  std::string divergence;
  // Summaries (rank means, steps after the first).
  double mean_step_s = 0, mean_fwd_s = 0, mean_bwd_s = 0, mean_compress_s = 0;
  double ratio_fwd = 1, ratio_bwd = 1;
  // The other phases of a step (dlrm::StepStats), rank means over the steps
  // after the first: what simulate mode calibrates its compute on.
  double mean_dense_s = 0;      // dense + update
  double mean_embedding_s = 0;  // lookup + embedding_backward
  double mean_input_s = 0, mean_allreduce_s = 0;
};

// What every codec's training shares: the communicator and the data.
struct TrainingContext {
  std::unique_ptr<comm::Communicator> comm;
  std::unique_ptr<dlrm::SyntheticClicks> data;
};

// Sets the kernel threads, makes the communicator and the data and, with
// --classes measured, the table classes of s.policy (printed by rank 0).
// Collective.
TrainingContext prepare_training(App& app, const Options& o, Setup& s);

// Trains one codec for --steps steps, printing a row of `table` per
// evaluation. Collective.
CodecRun train_codec(App& app, const Options& o, const Setup& s, TrainingContext& context,
                     const std::string& codec, const Table& table);

}  // namespace paralab::dlrm_a2a
