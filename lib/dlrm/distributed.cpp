// distributed.cpp: DLRM with sharded embeddings and data-parallel MLPs
// (distributed.hpp).
#include "dlrm/distributed.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <utility>

#include "core/errors.hpp"
#include "core/timer.hpp"
#include "dlrm/metrics.hpp"
#include "dlrm/step_program.hpp"

namespace paralab::dlrm {

// --- the exchange ----------------------------------------------------------------

void EmbeddingExchange::forward(comm::Communicator& comm, const ExchangeLayout& layout,
                                std::span<const float> send, std::span<float> recv,
                                int64_t /*iteration*/) {
  comm.alltoallv(send.data(), layout.send_counts, layout.send_displs, recv.data(),
                 layout.recv_counts, layout.recv_displs, DType::f32);
}

void EmbeddingExchange::backward(comm::Communicator& comm, const ExchangeLayout& layout,
                                 std::span<const float> send, std::span<float> recv,
                                 int64_t /*iteration*/) {
  comm.alltoallv(send.data(), layout.send_counts, layout.send_displs, recv.data(),
                 layout.recv_counts, layout.recv_displs, DType::f32);
}

// --- the model -------------------------------------------------------------------

DistributedDlrm::DistributedDlrm(const DlrmConfig& config, ShardingPlan plan,
                                 comm::Communicator& comm, uint64_t seed)
    : config_(config), plan_(std::move(plan)), comm_(comm), rank_(comm.rank()), size_(comm.size()) {
  config_.validate();
  if (plan_.ranks != size_)
    throw UsageError("DLRM: the sharding plan is for " + std::to_string(plan_.ranks) +
                     " ranks, the communicator has " + std::to_string(size_));
  if (plan_.tables.size() != static_cast<size_t>(config_.tables()))
    throw UsageError("DLRM: the sharding plan is for another model");
  tower_ = DenseTower(config_, seed);
  const int d = config_.embedding_dim;
  shard_ids_ = plan_.rank_shards[static_cast<size_t>(rank_)];
  for (int id : shard_ids_) {
    const Shard& s = plan_.shards[static_cast<size_t>(id)];
    shards_.emplace_back(s.table, config_.table_rows[static_cast<size_t>(s.table)], d, s.row_begin,
                         s.row_end, s.col_begin, s.col_end, seed, config_.embedding_init_scale);
  }
  shard_grads_.resize(shards_.size());
  shard_lookups_.resize(shards_.size());
  square_sums_.resize(shards_.size());
  replicated_index_.assign(static_cast<size_t>(config_.tables()), -1);
  for (int t : plan_.data_parallel_tables) {
    const int64_t rows = config_.table_rows[static_cast<size_t>(t)];
    replicated_index_[static_cast<size_t>(t)] = static_cast<int>(replicated_.size());
    replicated_.emplace_back(t, rows, d, 0, rows, 0, d, seed, config_.embedding_init_scale);
  }
  replicated_grads_.resize(replicated_.size());
}

void DistributedDlrm::set_exchange(EmbeddingExchange* exchange) {
  exchange_ = exchange ? exchange : &default_exchange_;
}

EmbeddingShard* DistributedDlrm::replicated(int table) {
  const int i = replicated_index_.at(static_cast<size_t>(table));
  return i < 0 ? nullptr : &replicated_[static_cast<size_t>(i)];
}

void DistributedDlrm::prepare(const Batch& local, const BatchSplit& split) {
  if (static_cast<int>(split.counts.size()) != size_)
    throw std::invalid_argument("DLRM step: the batch split has " +
                                std::to_string(split.counts.size()) + " ranks, the run " +
                                std::to_string(size_));
  if (local.size != split.counts[static_cast<size_t>(rank_)])
    throw std::invalid_argument("DLRM step: rank " + std::to_string(rank_) + " holds " +
                                std::to_string(local.size) + " samples, the split says " +
                                std::to_string(split.counts[static_cast<size_t>(rank_)]));
  check_batch(config_, local);
  if (layout_counts_ != split.counts) {
    forward_layout_ = forward_exchange_layout(plan_, split, rank_);
    backward_layout_ = forward_layout_.transposed();
    layout_counts_ = split.counts;
  }
}

// Step 1: every shard gets the lookups of the whole global batch.
//   lengths to peer q: for each shard of q, this rank's bags' lengths
//   indices to peer q: for each shard of q, those bags' indices in its rows
// First both send buffers and the lengths' exchange, then (once the lengths
// say how many indices come from each peer) the indices' exchange.
void DistributedDlrm::send_input_lengths(const Batch& local, const BatchSplit& split) {
  const auto n = static_cast<size_t>(size_);
  const int bags = local.size;
  InputCounts& c = input_counts_;
  for (auto* v :
       {&c.len_sc, &c.len_sd, &c.len_rc, &c.len_rd, &c.idx_sc, &c.idx_sd, &c.idx_rc, &c.idx_rd})
    v->assign(n, 0);
  auto& [len_sc, len_sd, len_rc, len_rd, idx_sc, idx_sd, idx_rc, idx_rd] = c;
  len_send_.clear();
  idx_send_.clear();
  for (size_t q = 0; q < n; ++q) {
    len_sd[q] = len_send_.size();
    idx_sd[q] = idx_send_.size();
    for (int id : plan_.rank_shards[q]) {
      const Shard& s = plan_.shards[static_cast<size_t>(id)];
      const Lookups& l = local.tables[static_cast<size_t>(s.table)];
      for (int b = 0; b < bags; ++b) {
        int32_t count = 0;
        for (int32_t k = l.offsets[static_cast<size_t>(b)];
             k < l.offsets[static_cast<size_t>(b) + 1]; ++k) {
          const int32_t r = l.indices[static_cast<size_t>(k)];
          if (r >= s.row_begin && r < s.row_end) {
            idx_send_.push_back(r);
            ++count;
          }
        }
        len_send_.push_back(count);
      }
    }
    len_sc[q] = len_send_.size() - len_sd[q];
    idx_sc[q] = idx_send_.size() - idx_sd[q];
  }
  size_t total = 0;
  for (size_t p = 0; p < n; ++p) {
    len_rd[p] = total;
    len_rc[p] = static_cast<size_t>(split.counts[p]) * shards_.size();
    total += len_rc[p];
  }
  len_recv_.resize(total);
  comm_.alltoallv(len_send_.data(), len_sc, len_sd, len_recv_.data(), len_rc, len_rd, DType::i32);
}

void DistributedDlrm::send_input_indices(const BatchSplit& split) {
  const auto n = static_cast<size_t>(size_);
  auto& [len_sc, len_sd, len_rc, len_rd, idx_sc, idx_sd, idx_rc, idx_rd] = input_counts_;
  size_t total = 0;
  for (size_t p = 0; p < n; ++p) {
    idx_rd[p] = total;
    size_t c = 0;
    for (size_t i = 0; i < len_rc[p]; ++i) c += static_cast<size_t>(len_recv_[len_rd[p] + i]);
    idx_rc[p] = c;
    total += c;
  }
  idx_recv_.resize(total);
  comm_.alltoallv(idx_send_.data(), idx_sc, idx_sd, idx_recv_.data(), idx_rc, idx_rd, DType::i32);
  // Assemble each shard's lookups in global sample order (p ascending).
  for (auto& l : shard_lookups_) l.clear();
  for (size_t p = 0; p < n; ++p) {
    const auto count = static_cast<size_t>(split.counts[p]);
    size_t idx = idx_rd[p];
    for (size_t i = 0; i < shards_.size(); ++i) {
      Lookups& l = shard_lookups_[i];
      const int32_t* len = len_recv_.data() + len_rd[p] + i * count;
      size_t m = 0;
      for (size_t b = 0; b < count; ++b) {
        m += static_cast<size_t>(len[b]);
        l.offsets.push_back(static_cast<int32_t>(l.indices.size() + m));
      }
      l.indices.insert(l.indices.end(), idx_recv_.begin() + static_cast<long>(idx),
                       idx_recv_.begin() + static_cast<long>(idx + m));
      idx += m;
    }
  }
}

// Row-wise Adagrad on column shards: every shard of a table computes the
// per-row partial sums of its columns; the table's shards swap them so each
// holds the sum over the whole row, added in shard order (so all agree).
// To peer q: for each of my shards (ascending) whose table q also holds a
// shard of, its partial sums.
void DistributedDlrm::exchange_square_sums(float scale) {
  const auto n = static_cast<size_t>(size_);
  auto multi = [&](int table) {
    const TablePlacement& tp = plan_.tables[static_cast<size_t>(table)];
    return tp.type == ShardingType::column_wise && tp.shards.size() > 1;
  };
  auto holds = [&](size_t rank, int table) {
    for (int id : plan_.rank_shards[rank])
      if (plan_.shards[static_cast<size_t>(id)].table == table) return true;
    return false;
  };
  for (size_t i = 0; i < shards_.size(); ++i)
    shards_[i].row_square_sums(shard_grads_[i], scale, square_sums_[i]);
  // Touched rows per table: the same on every shard of it.
  std::vector<size_t> touched(static_cast<size_t>(config_.tables()), 0);
  for (size_t i = 0; i < shards_.size(); ++i)
    touched[static_cast<size_t>(shards_[i].table())] = shard_grads_[i].touched();
  std::vector<size_t> sc(n), sd(n), rc(n), rd(n);
  std::vector<float> send, recv;
  for (size_t q = 0; q < n; ++q) {
    sd[q] = send.size();
    for (size_t i = 0; i < shards_.size(); ++i) {
      const int t = shards_[i].table();
      if (multi(t) && holds(q, t))
        send.insert(send.end(), square_sums_[i].begin(), square_sums_[i].end());
    }
    sc[q] = send.size() - sd[q];
  }
  // What each source sends, by shard id.
  struct Piece {
    int shard;
    size_t offset;
  };
  std::vector<Piece> pieces;
  size_t total = 0;
  for (size_t q = 0; q < n; ++q) {
    rd[q] = total;
    for (int id : plan_.rank_shards[q]) {
      const int t = plan_.shards[static_cast<size_t>(id)].table;
      if (multi(t) && holds(static_cast<size_t>(rank_), t)) {
        pieces.push_back({id, total});
        total += touched[static_cast<size_t>(t)];
      }
    }
    rc[q] = total - rd[q];
  }
  recv.resize(total);
  comm_.alltoallv(send.data(), sc, sd, recv.data(), rc, rd, DType::f32);
  std::sort(pieces.begin(), pieces.end(),
            [](const Piece& a, const Piece& b) { return a.shard < b.shard; });
  for (size_t i = 0; i < shards_.size(); ++i) {
    const int t = shards_[i].table();
    if (!multi(t)) continue;
    std::vector<float>& sums = square_sums_[i];
    std::fill(sums.begin(), sums.end(), 0.0f);
    for (const Piece& piece : pieces) {
      if (plan_.shards[static_cast<size_t>(piece.shard)].table != t) continue;
      for (size_t k = 0; k < sums.size(); ++k) sums[k] += recv[piece.offset + k];
    }
  }
}

// Step 2: pool every batch owner's bags into the send buffer.
void DistributedDlrm::lookup(const BatchSplit& split) {
  send_.resize(forward_layout_.send_total);
  for (size_t p = 0; p < static_cast<size_t>(size_); ++p) {
    const int begin = static_cast<int>(split.first[p]);
    const int end = begin + split.counts[p];
    for (size_t i = 0; i < shards_.size(); ++i) {
      const ExchangeBlock& blk = forward_layout_.send_blocks[p][i];
      shards_[i].forward(shard_lookups_[i], begin, end, send_.data() + blk.offset,
                         static_cast<size_t>(blk.cols));
    }
  }
}

// Step 3: the exchange.
void DistributedDlrm::exchange_forward(StepStats& stats) {
  recv_.resize(forward_layout_.recv_total);
  exchange_->forward(comm_, forward_layout_, send_, recv_, iteration_);
  stats.forward_floats = forward_layout_.send_total;
}

// Step 4: the interaction input [n, F, d] (bottom output, then the tables), the top.
void DistributedDlrm::dense_forward(const Batch& local) {
  const int n = local.size, F = config_.features(), d = config_.embedding_dim;
  const size_t ld = static_cast<size_t>(F) * d;
  float* features = tower_.begin_forward(local.dense.data(), n);
  for (int t = 0; t < config_.tables(); ++t) {
    float* slot = features + static_cast<size_t>(1 + t) * d;
    const ShardingType type = plan_.tables[static_cast<size_t>(t)].type;
    if (type == ShardingType::data_parallel) {
      replicated(t)->forward(local.tables[static_cast<size_t>(t)], 0, n, slot, ld);
    } else if (type == ShardingType::row_wise) {
      for (int b = 0; b < n; ++b) std::fill(slot + b * ld, slot + b * ld + d, 0.0f);
    }
  }
  for (size_t q = 0; q < static_cast<size_t>(size_); ++q)
    for (const ExchangeBlock& blk : forward_layout_.recv_blocks[q]) {
      const bool add = plan_.tables[static_cast<size_t>(blk.table)].type == ShardingType::row_wise;
      float* dst = features + static_cast<size_t>(1 + blk.table) * d + blk.col_begin;
      const float* src = recv_.data() + blk.offset;
      for (int b = 0; b < n; ++b) {
        float* o = dst + b * ld;
        const float* s = src + static_cast<size_t>(b) * blk.cols;
        if (add)
          for (int j = 0; j < blk.cols; ++j) o[j] += s[j];
        else
          std::copy(s, s + blk.cols, o);
      }
    }
  tower_.finish_forward(n);
}

// Step 5: the loss and the dense backward; the gradients of the pooled
// embeddings, laid out as the forward receive buffer. Returns the loss summed
// over the local samples.
double DistributedDlrm::dense_backward(const Batch& local) {
  const int n = local.size, F = config_.features(), d = config_.embedding_dim;
  const size_t ld = static_cast<size_t>(F) * d;
  const double loss = tower_.backward(local.dense.data(), local.labels.data(), n);
  const float* dt = tower_.feature_gradients();
  send_.resize(backward_layout_.send_total);
  for (size_t q = 0; q < static_cast<size_t>(size_); ++q)
    for (const ExchangeBlock& blk : backward_layout_.send_blocks[q]) {
      const float* src = dt + static_cast<size_t>(1 + blk.table) * d + blk.col_begin;
      float* dst = send_.data() + blk.offset;
      for (int b = 0; b < n; ++b)
        std::copy(src + b * ld, src + b * ld + blk.cols, dst + static_cast<size_t>(b) * blk.cols);
    }
  return loss;
}

void DistributedDlrm::exchange_backward(StepStats& stats) {
  recv_.resize(backward_layout_.recv_total);
  exchange_->backward(comm_, backward_layout_, send_, recv_, iteration_);
  stats.backward_floats = backward_layout_.send_total;
}

// Step 6: sparse gradients on the shards; the replicated tables' local
// gradients and the MLP gradients into the all-reduce buffer.
void DistributedDlrm::embedding_backward(const Batch& local, const BatchSplit& split) {
  const int n = local.size, d = config_.embedding_dim;
  const size_t ld = static_cast<size_t>(config_.features()) * d;
  const float* dt = tower_.feature_gradients();
  for (size_t i = 0; i < shards_.size(); ++i) shards_[i].begin_backward(shard_grads_[i]);
  for (size_t p = 0; p < static_cast<size_t>(size_); ++p) {
    const int begin = static_cast<int>(split.first[p]);
    const int end = begin + split.counts[p];
    for (size_t i = 0; i < shards_.size(); ++i) {
      const ExchangeBlock& blk = backward_layout_.recv_blocks[p][i];
      shards_[i].backward(shard_lookups_[i], begin, end, recv_.data() + blk.offset,
                          static_cast<size_t>(blk.cols), shard_grads_[i]);
    }
  }
  const size_t nb = tower_.bottom.gradients().size(), nt = tower_.top.gradients().size();
  size_t reduce_size = nb + nt;
  for (const auto& table : replicated_) reduce_size += table.weights().size();
  reduce_.assign(reduce_size, 0.0f);
  std::copy(tower_.bottom.gradients().begin(), tower_.bottom.gradients().end(), reduce_.begin());
  std::copy(tower_.top.gradients().begin(), tower_.top.gradients().end(),
            reduce_.begin() + static_cast<long>(nb));
  size_t offset = nb + nt;
  for (size_t i = 0; i < replicated_.size(); ++i) {
    const int t = replicated_[i].table();
    replicated_[i].begin_backward(replicated_grads_[i]);
    replicated_[i].backward(local.tables[static_cast<size_t>(t)], 0, n,
                            dt + static_cast<size_t>(1 + t) * d, ld, replicated_grads_[i]);
    replicated_[i].scatter(replicated_grads_[i], reduce_.data() + offset);
    offset += replicated_[i].weights().size();
  }
}

float DistributedDlrm::gradient_scale(const BatchSplit& split) {
  return split.total > 0 ? 1.0f / static_cast<float>(split.total) : 0.0f;
}

// Step 8: the MLPs and every embedding, from the all-reduced gradients.
void DistributedDlrm::update(const BatchSplit& split, const OptimizerConfig& opt) {
  if (split.total == 0) return;
  const float scale = gradient_scale(split);
  const bool adagrad = opt.embedding == EmbeddingOptimizer::rowwise_adagrad;
  const size_t nb = tower_.bottom.gradients().size(), nt = tower_.top.gradients().size();
  std::copy(reduce_.begin(), reduce_.begin() + static_cast<long>(nb),
            tower_.bottom.gradients().begin());
  std::copy(reduce_.begin() + static_cast<long>(nb), reduce_.begin() + static_cast<long>(nb + nt),
            tower_.top.gradients().begin());
  tower_.bottom.sgd(opt.mlp_lr, scale);
  tower_.top.sgd(opt.mlp_lr, scale);
  for (size_t i = 0; i < shards_.size(); ++i) {
    if (adagrad)
      shards_[i].rowwise_adagrad(shard_grads_[i], opt.embedding_lr, opt.adagrad_eps, scale,
                                 square_sums_[i].data());
    else
      shards_[i].sgd(shard_grads_[i], opt.embedding_lr, scale);
  }
  size_t offset = nb + nt;
  for (auto& table : replicated_) {
    if (adagrad)
      table.rowwise_adagrad_dense(reduce_.data() + offset, opt.embedding_lr, opt.adagrad_eps,
                                  scale);
    else
      table.sgd_dense(reduce_.data() + offset, opt.embedding_lr, scale);
    offset += table.weights().size();
  }
}

// --- the step's program ------------------------------------------------------------

schedule::Program DistributedDlrm::program(const BatchSplit& split,
                                           const OptimizerConfig* opt) const {
  StepProgramInputs in;
  in.config = &config_;
  in.plan = &plan_;
  in.split = split;
  in.optimizer = opt ? opt->embedding : EmbeddingOptimizer::sgd;
  in.training = opt != nullptr;
  in.compressed = exchange_->compresses();
  return step_program(in);
}

// This rank's operations of the step's program, each run by its phase and
// timed into the field of `stats` it belongs to. Exchange details (the
// compressed exchange's encode, counts, agreement, decode) run inside the
// exchange call.
double DistributedDlrm::run(const schedule::Program& program, const Batch& local,
                            const BatchSplit& split, const OptimizerConfig* opt, StepStats& stats) {
  double loss = 0;
  for (const schedule::Op& op : program.ops(rank_)) {
    Stopwatch watch;
    double* into = nullptr;
    switch (step_role(op)) {
      case StepRole::input_lengths:
        send_input_lengths(local, split);
        into = &stats.input;
        break;
      case StepRole::input_indices:
        send_input_indices(split);
        into = &stats.input;
        break;
      case StepRole::lookup:
        lookup(split);
        into = &stats.lookup;
        break;
      case StepRole::forward_exchange:
        exchange_forward(stats);
        into = &stats.a2a_forward;
        break;
      case StepRole::dense_forward:
        dense_forward(local);
        into = &stats.dense;
        break;
      case StepRole::dense_backward:
        loss = dense_backward(local);
        into = &stats.dense;
        break;
      case StepRole::backward_exchange:
        exchange_backward(stats);
        into = &stats.a2a_backward;
        break;
      case StepRole::embedding_backward:
        embedding_backward(local, split);
        into = &stats.embedding_backward;
        break;
      case StepRole::gradient_allreduce:
        comm_.allreduce(reduce_.data(), reduce_.data(), reduce_.size(), DType::f32,
                        comm::ReduceOp::sum);
        into = &stats.allreduce;
        break;
      case StepRole::loss_allreduce:
        comm_.allreduce(&loss, &loss, 1, DType::f64, comm::ReduceOp::sum);
        into = &stats.allreduce;
        break;
      case StepRole::square_sums:
        exchange_square_sums(gradient_scale(split));
        into = &stats.allreduce;
        break;
      case StepRole::update:
        update(split, *opt);
        into = &stats.update;
        break;
      case StepRole::exchange_detail:
        break;
    }
    if (into) *into += watch.seconds();
  }
  return loss;
}

void DistributedDlrm::forward(const Batch& local, const BatchSplit& split,
                              std::span<float> logits) {
  prepare(local, split);
  StepStats stats;
  run(program(split, nullptr), local, split, nullptr, stats);
  if (logits.size() != tower_.logits().size())
    throw std::invalid_argument("DistributedDlrm::forward: logits span has the wrong size");
  std::copy(tower_.logits().begin(), tower_.logits().end(), logits.begin());
}

StepStats DistributedDlrm::train_step(const Batch& local, const BatchSplit& split,
                                      const OptimizerConfig& opt) {
  opt.validate();
  Stopwatch step_watch;
  prepare(local, split);
  StepStats stats;
  const double loss = run(program(split, &opt), local, split, &opt, stats);
  stats.loss = split.total > 0 ? loss / static_cast<double>(split.total) : 0.0;
  stats.total = step_watch.seconds();
  ++iteration_;
  return stats;
}

// --- loops -------------------------------------------------------------------------

std::vector<double> train(DistributedDlrm& model, SyntheticClicks& data, int steps, int batch_size,
                          const OptimizerConfig& opt, int64_t first_batch) {
  comm::Communicator& comm = model.communicator();
  if (steps < 0 || batch_size < 1)
    throw UsageError("training needs a batch of at least one sample");
  const BatchSplit split = split_batch(batch_size, comm.size());
  const auto r = static_cast<size_t>(comm.rank());
  std::vector<double> losses;
  Batch local;
  for (int s = 0; s < steps; ++s) {
    data.make_batch(Split::train, first_batch + s, split.first[r], split.counts[r], local);
    losses.push_back(model.train_step(local, split, opt).loss);
  }
  return losses;
}

EvalResult evaluate(DistributedDlrm& model, SyntheticClicks& data, int batches, int batch_size) {
  if (batches < 1 || batch_size < 1)
    throw UsageError("evaluation needs at least one batch of at least one sample");
  comm::Communicator& comm = model.communicator();
  const BatchSplit split = split_batch(batch_size, comm.size());
  const auto r = static_cast<size_t>(comm.rank());
  const int most = *std::max_element(split.counts.begin(), split.counts.end());
  std::vector<float> scores, labels, logits, mine(2 * static_cast<size_t>(most)),
      all(2 * static_cast<size_t>(most) * static_cast<size_t>(comm.size()));
  Batch local;
  for (int b = 0; b < batches; ++b) {
    data.make_batch(Split::eval, b, split.first[r], split.counts[r], local);
    logits.resize(static_cast<size_t>(local.size));
    model.forward(local, split, logits);
    // Gather [logits | labels] of every rank, padded to the largest slice.
    std::copy(logits.begin(), logits.end(), mine.begin());
    std::copy(local.labels.begin(), local.labels.end(), mine.begin() + most);
    comm.allgather(mine.data(), all.data(), mine.size(), DType::f32);
    for (size_t p = 0; p < split.counts.size(); ++p) {
      const float* part = all.data() + p * mine.size();
      scores.insert(scores.end(), part, part + split.counts[p]);
      labels.insert(labels.end(), part + most, part + most + split.counts[p]);
    }
  }
  EvalResult e;
  e.samples = static_cast<int64_t>(labels.size());
  e.auc = auc(scores, labels);
  e.log_loss = log_loss(scores, labels);
  double clicks = 0;
  for (float y : labels) clicks += y;
  e.click_rate = clicks / static_cast<double>(labels.size());
  return e;
}

}  // namespace paralab::dlrm
