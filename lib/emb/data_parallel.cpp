// data_parallel.cpp: replicated data-parallel steps of MixedDlrm
// (data_parallel.hpp).
#include "emb/data_parallel.hpp"

#include <algorithm>
#include <chrono>
#include <unordered_map>
#include <vector>

namespace paralab::emb {

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Sum over ranks, in rank order, with the same bits everywhere: gathered at
// rank 0, summed there, broadcast. (MPI_Reduce may combine in arrival order,
// so two runs could differ in the last bits; this cannot.)
void sum_everywhere(std::span<float> values, MPI_Comm comm) {
  int rank = 0, ranks = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &ranks);
  const int n = static_cast<int>(values.size());
  std::vector<float> all(rank == 0 ? values.size() * static_cast<size_t>(ranks) : 0);
  MPI_Gather(values.data(), n, MPI_FLOAT, all.data(), n, MPI_FLOAT, 0, comm);
  if (rank == 0)
    for (int p = 1; p < ranks; ++p) {
      const float* v = all.data() + static_cast<size_t>(p) * values.size();
      for (size_t i = 0; i < values.size(); ++i) values[i] += v[i];
    }
  MPI_Bcast(values.data(), n, MPI_FLOAT, 0, comm);
}

std::vector<int> displacements(const std::vector<int>& counts) {
  std::vector<int> d(counts.size(), 0);
  for (size_t i = 1; i < counts.size(); ++i) d[i] = d[i - 1] + counts[i - 1];
  return d;
}

// Every rank's (rows, values) of one table, summed in rank order.
void sum_table_gradient(CachedTable& table, MPI_Comm comm) {
  int ranks = 1;
  MPI_Comm_size(comm, &ranks);
  const auto& g = table.gradient();
  const int dim = table.dim(), mine = static_cast<int>(g.rows.size());
  std::vector<int> counts(static_cast<size_t>(ranks)), value_counts(counts.size());
  MPI_Allgather(&mine, 1, MPI_INT, counts.data(), 1, MPI_INT, comm);
  for (size_t p = 0; p < counts.size(); ++p) value_counts[p] = counts[p] * dim;
  const auto row_at = displacements(counts), value_at = displacements(value_counts);
  std::vector<int32_t> rows(static_cast<size_t>(row_at.back() + counts.back()));
  std::vector<float> values(rows.size() * static_cast<size_t>(dim));
  MPI_Allgatherv(g.rows.data(), mine, MPI_INT, rows.data(), counts.data(), row_at.data(), MPI_INT,
                 comm);
  MPI_Allgatherv(g.values.data(), mine * dim, MPI_FLOAT, values.data(), value_counts.data(),
                 value_at.data(), MPI_FLOAT, comm);
  std::unordered_map<int32_t, size_t> slot;
  std::vector<int32_t> merged_rows;
  std::vector<float> merged;
  for (size_t i = 0; i < rows.size(); ++i) {
    const float* v = values.data() + i * static_cast<size_t>(dim);
    auto [it, fresh] = slot.try_emplace(rows[i], merged_rows.size());
    if (fresh) {
      merged_rows.push_back(rows[i]);
      merged.insert(merged.end(), v, v + dim);
      continue;
    }
    float* m = merged.data() + it->second * static_cast<size_t>(dim);
    for (int j = 0; j < dim; ++j) m[j] += v[j];
  }
  table.set_gradient(std::move(merged_rows), std::move(merged));
}

}  // namespace

Slice batch_slice(int size, int rank, int ranks) {
  const int base = size / ranks, extra = size % ranks;
  return {rank * base + std::min(rank, extra), base + (rank < extra ? 1 : 0)};
}

void slice_batch(const dlrm::Batch& global, int first, int count, dlrm::Batch& out) {
  const size_t width = global.size > 0 ? global.dense.size() / static_cast<size_t>(global.size) : 0;
  const auto f = static_cast<size_t>(first), c = static_cast<size_t>(count);
  out.size = count;
  out.dense.assign(global.dense.begin() + static_cast<long>(f * width),
                   global.dense.begin() + static_cast<long>((f + c) * width));
  out.labels.assign(global.labels.begin() + static_cast<long>(f),
                    global.labels.begin() + static_cast<long>(f + c));
  out.label_logits.clear();
  if (!global.label_logits.empty())
    out.label_logits.assign(global.label_logits.begin() + static_cast<long>(f),
                            global.label_logits.begin() + static_cast<long>(f + c));
  out.tables.resize(global.tables.size());
  for (size_t t = 0; t < global.tables.size(); ++t) {
    const auto& in = global.tables[t];
    auto& l = out.tables[t];
    l.clear();
    for (size_t b = f; b < f + c; ++b) {
      l.indices.insert(l.indices.end(), in.indices.begin() + in.offsets[b],
                       in.indices.begin() + in.offsets[b + 1]);
      l.offsets.push_back(static_cast<int32_t>(l.indices.size()));
    }
  }
}

double data_parallel_step(MixedDlrm& model, MPI_Comm comm, const dlrm::Batch& global,
                          const dlrm::OptimizerConfig& opt, int64_t step, StepTimes& times,
                          dlrm::Batch& local) {
  int rank = 0, ranks = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &ranks);
  const Slice s = batch_slice(global.size, rank, ranks);
  slice_batch(global, s.first, s.count, local);
  double loss = model.forward_backward(local, times);
  const double t0 = now_s();
  sum_everywhere(model.bottom().gradients(), comm);
  sum_everywhere(model.top().gradients(), comm);
  for (int t = 0; t < model.tables(); ++t) sum_table_gradient(model.table(t), comm);
  std::vector<double> losses(static_cast<size_t>(ranks));  // summed in rank order, as above
  MPI_Allgather(&loss, 1, MPI_DOUBLE, losses.data(), 1, MPI_DOUBLE, comm);
  loss = 0;
  for (double l : losses) loss += l;
  times.comm_s += now_s() - t0;
  if (global.size > 0) model.apply(opt, 1.0f / static_cast<float>(global.size), step, times);
  return global.size > 0 ? loss / global.size : 0.0;
}

}  // namespace paralab::emb
