// stats.hpp: summaries of timings over iterations and ranks.
#pragma once

#include <mpi.h>

#include <cstddef>
#include <span>
#include <vector>

namespace paralab {

struct Summary {
  size_t count = 0;
  double min = 0, median = 0, p95 = 0, max = 0, mean = 0;
};

// Percentile p in [0, 100] of unsorted values, linear interpolation between
// closest ranks (numpy's default). Throws std::invalid_argument when empty.
double percentile(std::span<const double> values, double p);

// min, median, p95, max, mean; all zero for an empty span.
Summary summarize(std::span<const double> values);

// Per-iteration, per-rank samples, row-major [iteration][rank].
struct TimeMatrix {
  size_t iterations = 0;
  size_t ranks = 0;
  std::vector<double> values;

  double at(size_t iteration, size_t rank) const { return values[iteration * ranks + rank]; }
  // The slowest rank of each iteration: when a collective step is done.
  std::vector<double> max_over_ranks() const;
  // The mean over ranks of each iteration.
  std::vector<double> mean_over_ranks() const;
};

// The mean of the values after the first (a warm-up step); the first alone
// when there is only one, 0 for none.
double mean_after_first(std::span<const double> values);

// Collective statistics over the ranks of `comm`, the same on every rank: of
// one value, or of each element of `values` in place (same length everywhere).
double sum_over_ranks(MPI_Comm comm, double value);
double mean_over_ranks(MPI_Comm comm, double value);
double min_over_ranks(MPI_Comm comm, double value);
double max_over_ranks(MPI_Comm comm, double value);
void sum_over_ranks(MPI_Comm comm, std::vector<double>& values);
void max_over_ranks(MPI_Comm comm, std::vector<double>& values);

// Collective: gathers every rank's per-iteration samples (same count on every
// rank) into a TimeMatrix on `root`; other ranks get an empty matrix.
TimeMatrix gather_samples(MPI_Comm comm, std::span<const double> local, int root = 0);

}  // namespace paralab
