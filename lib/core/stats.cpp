#include "core/stats.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "core/errors.hpp"

namespace paralab {

double percentile(std::span<const double> values, double p) {
  if (values.empty()) throw std::invalid_argument("percentile of no values");
  if (!(p >= 0 && p <= 100)) throw std::invalid_argument("percentile outside [0, 100]");
  std::vector<double> sorted(values.begin(), values.end());
  std::sort(sorted.begin(), sorted.end());
  const double position = p / 100.0 * static_cast<double>(sorted.size() - 1);
  const size_t below = static_cast<size_t>(std::floor(position));
  const size_t above = std::min(below + 1, sorted.size() - 1);
  const double fraction = position - static_cast<double>(below);
  return sorted[below] + fraction * (sorted[above] - sorted[below]);
}

Summary summarize(std::span<const double> values) {
  Summary s;
  if (values.empty()) return s;
  s.count = values.size();
  auto [lo, hi] = std::minmax_element(values.begin(), values.end());
  s.min = *lo;
  s.max = *hi;
  s.median = percentile(values, 50);
  s.p95 = percentile(values, 95);
  s.mean = std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
  return s;
}

std::vector<double> TimeMatrix::max_over_ranks() const {
  std::vector<double> out(iterations);
  for (size_t i = 0; i < iterations; ++i)
    out[i] = *std::max_element(values.begin() + i * ranks, values.begin() + (i + 1) * ranks);
  return out;
}

std::vector<double> TimeMatrix::mean_over_ranks() const {
  std::vector<double> out(iterations);
  for (size_t i = 0; i < iterations; ++i)
    out[i] = std::accumulate(values.begin() + i * ranks, values.begin() + (i + 1) * ranks, 0.0) /
             static_cast<double>(ranks);
  return out;
}

TimeMatrix gather_samples(MPI_Comm comm, std::span<const double> local, int root) {
  int rank = 0;
  int size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  int count = static_cast<int>(local.size());
  int max_count = count;
  MPI_Allreduce(&count, &max_count, 1, MPI_INT, MPI_MAX, comm);
  int min_count = count;
  MPI_Allreduce(&count, &min_count, 1, MPI_INT, MPI_MIN, comm);
  if (min_count != max_count)
    throw RuntimeError("gather_samples: ranks hold different sample counts", Scope::all_ranks);

  // Gathered rank-major, then transposed to [iteration][rank].
  std::vector<double> by_rank(rank == root ? static_cast<size_t>(count) * size : 0);
  MPI_Gather(local.data(), count, MPI_DOUBLE, by_rank.data(), count, MPI_DOUBLE, root, comm);
  TimeMatrix m;
  if (rank != root) return m;
  m.iterations = static_cast<size_t>(count);
  m.ranks = static_cast<size_t>(size);
  m.values.resize(by_rank.size());
  for (size_t r = 0; r < m.ranks; ++r)
    for (size_t i = 0; i < m.iterations; ++i)
      m.values[i * m.ranks + r] = by_rank[r * m.iterations + i];
  return m;
}

double mean_after_first(std::span<const double> values) {
  if (values.size() < 2) return values.empty() ? 0 : values[0];
  double sum = 0;
  for (size_t i = 1; i < values.size(); ++i) sum += values[i];
  return sum / double(values.size() - 1);
}

namespace {

double reduce_one(MPI_Comm comm, double value, MPI_Op op) {
  MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_DOUBLE, op, comm);
  return value;
}

void reduce_each(MPI_Comm comm, std::vector<double>& values, MPI_Op op) {
  if (!values.empty())
    MPI_Allreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_DOUBLE, op,
                  comm);
}

}  // namespace

double sum_over_ranks(MPI_Comm comm, double value) {
  return reduce_one(comm, value, MPI_SUM);
}
double mean_over_ranks(MPI_Comm comm, double value) {
  int n = 1;
  MPI_Comm_size(comm, &n);
  return reduce_one(comm, value, MPI_SUM) / n;
}
double min_over_ranks(MPI_Comm comm, double value) {
  return reduce_one(comm, value, MPI_MIN);
}
double max_over_ranks(MPI_Comm comm, double value) {
  return reduce_one(comm, value, MPI_MAX);
}
void sum_over_ranks(MPI_Comm comm, std::vector<double>& values) {
  reduce_each(comm, values, MPI_SUM);
}
void max_over_ranks(MPI_Comm comm, std::vector<double>& values) {
  reduce_each(comm, values, MPI_MAX);
}

}  // namespace paralab
