// train.hpp: the training runs emb_cache compares: lib/dlrm's FP32 model
// (the reference) and MixedDlrm (model.hpp) on the same synthetic click
// batches (dlrm/data.hpp) from the same initial weights, with per-step
// times, cache hit rates and held-out AUC / log loss.
//
// Prefetch: with `prefetch`, the admission of batch i + 1 (MixedDlrm::
// prepare) runs right after step i's update and is timed apart from the step
// (prefetch_s), as a pipelined trainer would hide it behind step i (FBGEMM
// prefetches on a side stream). This executor is sequential, so the numerics
// are the same as without prefetch (the admission of batch i + 1 sees the
// cache after step i either way); what prefetch changes here is where the
// time is booked. Without it, admission is part of the step time.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "dlrm/data.hpp"
#include "dlrm/model.hpp"
#include "dlrm/train.hpp"
#include "emb/criteo.hpp"
#include "emb/model.hpp"

namespace paralab::emb {

struct RunConfig {
  int steps = 100;
  int batch = 256;
  int eval_every = 50;  // and at the last step
  int eval_batches = 4;
  bool prefetch = true;
  dlrm::OptimizerConfig opt;
};

struct RunResult {
  std::string name;
  std::vector<double> loss;        // [steps] mean training loss
  std::vector<double> step_s;      // [steps] forward + backward + update (+ admission w/o prefetch)
  std::vector<double> prefetch_s;  // [steps] admission of this step's batch when prefetched
  std::vector<double> lookup_s, update_s, dense_s;  // [steps] parts of step_s
  std::vector<double> comm_s;                       // [steps] data parallel: gradient sums
  std::vector<std::vector<double>> hit_rate;        // [tables][steps], per lookup
  std::vector<CacheStats> cache_totals;             // [tables] over the run
  std::vector<int64_t> eval_step;
  std::vector<double> eval_auc, eval_logloss;
  int64_t lookups = 0;            // indices pooled in training
  int64_t updated_rows = 0;       // row updates applied in training
  std::vector<MemoryUse> memory;  // [tables]; the reference: FP32 weights (+ state) as storage
};

// Makes batch `index` of `split` with `size` samples (the same batch for
// every run): synthetic_batches or criteo_batches.
using MakeBatch = std::function<void(dlrm::Split, int64_t index, int size, dlrm::Batch&)>;
MakeBatch synthetic_batches(dlrm::SyntheticClicks& data);
// Training batches wrap around `train`; held-out batches around `eval`.
MakeBatch criteo_batches(std::span<const CriteoSample> train, std::span<const CriteoSample> eval,
                         const dlrm::DlrmConfig& config);

// Called after every step with (step, result so far).
using Progress = std::function<void(int, const RunResult&)>;

RunResult run_reference(dlrm::Dlrm& model, const MakeBatch& data, const RunConfig& run,
                        const Progress& progress);
// With a communicator (not MPI_COMM_NULL): data-parallel replicated over its
// ranks (data_parallel.hpp), --batch the global batch; every rank returns the
// same result.
RunResult run_mixed(MixedDlrm& model, const MakeBatch& data, const RunConfig& run,
                    const Progress& progress, MPI_Comm comm = MPI_COMM_NULL);

// AUC and log loss of a model's logits (forward(batch, logits)) on eval
// batches 0 .. batches - 1.
using Forward = std::function<void(const dlrm::Batch&, std::span<float>)>;
dlrm::EvalResult evaluate(const Forward& forward, const MakeBatch& data, int batches,
                          int batch_size);

}  // namespace paralab::emb
