// train.cpp: the reference and mixed-precision training runs (train.hpp).
#include "emb/train.hpp"

#include <chrono>

#include "dlrm/metrics.hpp"
#include "emb/data_parallel.hpp"

namespace paralab::emb {

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

bool eval_due(const RunConfig& run, int step) {
  return (step + 1) % run.eval_every == 0 || step + 1 == run.steps;
}

void record_eval(RunResult& r, int step, const dlrm::EvalResult& e) {
  r.eval_step.push_back(step + 1);
  r.eval_auc.push_back(e.auc);
  r.eval_logloss.push_back(e.log_loss);
}

int64_t count_lookups(const dlrm::Batch& batch) {
  int64_t n = 0;
  for (const auto& l : batch.tables) n += static_cast<int64_t>(l.indices.size());
  return n;
}

void record_hits(RunResult& r, const std::vector<CacheStats>& stats) {
  for (size_t t = 0; t < stats.size(); ++t) {
    r.hit_rate[t].push_back(stats[t].hit_rate());
    r.cache_totals[t] += stats[t];
  }
}

}  // namespace

RunResult run_reference(dlrm::Dlrm& model, const MakeBatch& data, const RunConfig& run,
                        const Progress& progress) {
  RunResult r;
  r.name = "reference";
  const auto& config = model.config();
  dlrm::Batch batch;
  for (int s = 0; s < run.steps; ++s) {
    data(dlrm::Split::train, s, run.batch, batch);
    const double t0 = now_s();
    r.loss.push_back(model.train_step(batch, run.opt));
    r.step_s.push_back(now_s() - t0);
    r.lookups += count_lookups(batch);
    for (int t = 0; t < config.tables(); ++t)
      r.updated_rows += static_cast<int64_t>(model.table_gradient(t).touched());
    if (eval_due(run, s))
      record_eval(r, s,
                  evaluate([&](const dlrm::Batch& b, std::span<float> l) { model.forward(b, l); },
                           data, run.eval_batches, run.batch));
    if (progress) progress(s, r);
  }
  const bool adagrad = run.opt.embedding == dlrm::EmbeddingOptimizer::rowwise_adagrad;
  for (int t = 0; t < config.tables(); ++t) {
    MemoryUse m;
    const int64_t rows = config.table_rows[static_cast<size_t>(t)];
    m.storage = rows * config.embedding_dim * 4;
    m.optimizer = adagrad ? rows * 4 : 0;
    r.memory.push_back(m);
  }
  return r;
}

RunResult run_mixed(MixedDlrm& model, const MakeBatch& data, const RunConfig& run,
                    const Progress& progress, MPI_Comm comm) {
  RunResult r;
  r.hit_rate.resize(static_cast<size_t>(model.tables()));
  r.cache_totals.resize(static_cast<size_t>(model.tables()));
  dlrm::Batch batch, next, local;
  data(dlrm::Split::train, 0, run.batch, batch);
  double prefetched = 0;
  if (run.prefetch) {
    const double t0 = now_s();
    record_hits(r, model.prepare(batch, 0));
    prefetched = now_s() - t0;
  }
  for (int s = 0; s < run.steps; ++s) {
    StepTimes times;
    const double t0 = now_s();
    if (!run.prefetch) {
      record_hits(r, model.prepare(batch, s));
      times.prepare_s = now_s() - t0;
    }
    r.loss.push_back(comm == MPI_COMM_NULL
                         ? model.train_step(batch, run.opt, s, times)
                         : data_parallel_step(model, comm, batch, run.opt, s, times, local));
    r.step_s.push_back(now_s() - t0);
    r.prefetch_s.push_back(prefetched);
    r.lookup_s.push_back(times.lookup_s);
    r.update_s.push_back(times.update_s);
    r.dense_s.push_back(times.dense_s);
    r.comm_s.push_back(times.comm_s);
    r.lookups += count_lookups(comm == MPI_COMM_NULL ? batch : local);  // this rank's
    for (int t = 0; t < model.tables(); ++t)
      r.updated_rows += static_cast<int64_t>(model.table(t).gradient().touched());
    if (run.prefetch && s + 1 < run.steps) {  // batch s + 1 fills the cache before it runs
      data(dlrm::Split::train, s + 1, run.batch, next);
      const double t1 = now_s();
      record_hits(r, model.prepare(next, s + 1));
      prefetched = now_s() - t1;
      std::swap(batch, next);
    } else if (!run.prefetch && s + 1 < run.steps) {
      data(dlrm::Split::train, s + 1, run.batch, batch);
    }
    if (eval_due(run, s))
      record_eval(r, s,
                  evaluate([&](const dlrm::Batch& b, std::span<float> l) { model.forward(b, l); },
                           data, run.eval_batches, run.batch));
    if (progress) progress(s, r);
  }
  r.memory = model.memory();
  return r;
}

MakeBatch synthetic_batches(dlrm::SyntheticClicks& data) {
  return [&data](dlrm::Split split, int64_t index, int size, dlrm::Batch& out) {
    data.make_batch(split, index, 0, size, out);
  };
}

MakeBatch criteo_batches(std::span<const CriteoSample> train, std::span<const CriteoSample> eval,
                         const dlrm::DlrmConfig& config) {
  check_criteo_model(config);
  return [train, eval, config](dlrm::Split split, int64_t index, int size, dlrm::Batch& out) {
    const auto pool = split == dlrm::Split::train ? train : eval;
    criteo_batch(pool, config, index * size, size, out);
  };
}

dlrm::EvalResult evaluate(const Forward& forward, const MakeBatch& data, int batches,
                          int batch_size) {
  std::vector<float> scores, labels, logits(static_cast<size_t>(batch_size));
  dlrm::Batch batch;
  for (int b = 0; b < batches; ++b) {
    data(dlrm::Split::eval, b, batch_size, batch);
    forward(batch, logits);
    scores.insert(scores.end(), logits.begin(), logits.end());
    labels.insert(labels.end(), batch.labels.begin(), batch.labels.end());
  }
  dlrm::EvalResult e;
  e.samples = static_cast<int64_t>(labels.size());
  e.auc = dlrm::auc(scores, labels);
  e.log_loss = dlrm::log_loss(scores, labels);
  return e;
}

}  // namespace paralab::emb
