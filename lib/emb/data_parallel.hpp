// data_parallel.hpp: MixedDlrm trained data-parallel with replicated tables
// over an MPI communicator. Every rank holds the whole model; a step's global
// batch is split into contiguous slices (rank p: samples [p B / P ...), the
// first B mod P ranks one more); each rank runs forward and backward on its
// slice; the MLP gradients are summed over ranks (reduce to rank 0, then
// broadcast, so every replica gets the same bits) and each table's sparse
// gradients are all-gathered and summed in rank order, first touch first, on
// every rank alike; then every rank applies the same update with scale 1 / B.
// The cache admission runs on the whole global batch on every rank, so the
// replicas' caches (and with them every rounding) stay identical.
//
// At one rank every sum has one term, as in MixedDlrm::train_step. At more ranks the sums
// run in another order than one rank's, so results equal the single-rank
// run's up to float rounding, not bit for bit.
#pragma once

#include <mpi.h>

#include "dlrm/model.hpp"
#include "emb/model.hpp"

namespace paralab::emb {

// Samples [first, first + count) of `global` as a batch of their own.
void slice_batch(const dlrm::Batch& global, int first, int count, dlrm::Batch& out);

// Rank `rank`'s slice of a batch of `size` samples over `ranks` ranks.
struct Slice {
  int first = 0, count = 0;
};
Slice batch_slice(int size, int rank, int ranks);

// One data-parallel step on a prepared global batch; returns the mean loss
// over the global batch. `local` is scratch for this rank's slice.
double data_parallel_step(MixedDlrm& model, MPI_Comm comm, const dlrm::Batch& global,
                          const dlrm::OptimizerConfig& opt, int64_t step, StepTimes& times,
                          dlrm::Batch& local);

}  // namespace paralab::emb
