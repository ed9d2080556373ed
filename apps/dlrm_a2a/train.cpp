// The measured training loop of dlrm_a2a, one codec at a time.
#include "train.hpp"
#include "harness/training.hpp"

#include <algorithm>
#include <numeric>
#include <string>
#include <vector>

#include "core/errors.hpp"
#include "core/stats.hpp"
#include "dlrm/distributed.hpp"
#include "dlrm/error_bounds.hpp"
#include "kernels/threads.hpp"

namespace paralab::dlrm_a2a {
namespace {}  // namespace

CodecRun train_codec(App& app, const Options& o, const Setup& setup, TrainingContext& context,
                     const std::string& codec, const Table& table) {
  World& world = app.world();
  const dlrm::DlrmConfig& config = setup.config;
  const dlrm::BoundPolicy& policy = setup.policy;
  dlrm::SyntheticClicks& data = *context.data;
  const int T = config.tables();
  dlrm::DistributedDlrm model(config, setup.plan, *context.comm, app.common().seed);
  std::unique_ptr<dlrm::CompressedExchange> exchange;
  if (codec != "none") {
    dlrm::CompressedExchangeConfig ec;
    ec.codec = dlrm::parse_codec_choice(codec);
    ec.policy = policy;
    ec.link_bytes_per_s = o.link_GBps * 1e9;
    ec.measure_error = o.measure_error;
    ec.threads = 1;
    exchange = std::make_unique<dlrm::CompressedExchange>(T, ec);
    model.set_exchange(exchange.get());
  }
  dlrm::OptimizerConfig opt;
  opt.mlp_lr = static_cast<float>(o.lr);
  opt.embedding_lr = static_cast<float>(o.embedding_lr < 0 ? o.lr : o.embedding_lr);
  opt.embedding = o.optimizer == "adagrad" ? dlrm::EmbeddingOptimizer::rowwise_adagrad
                                           : dlrm::EmbeddingOptimizer::sgd;

  CodecRun r;
  r.codec = codec;
  r.table_forward.clear(T);
  r.table_backward.clear(T);
  const dlrm::BatchSplit split = dlrm::split_batch(o.batch, world.size());
  const auto me = static_cast<size_t>(world.rank());
  dlrm::Batch local;
  std::vector<double> dense_s, embedding_s, input_s, allreduce_s;
  int last_eval = 0;
  StepWatch watch;
  for (int s = 0; s < o.steps; ++s) {
    data.make_batch(dlrm::Split::train, s, split.first[me], split.counts[me], local);
    const dlrm::StepStats st = model.train_step(local, split, opt);
    r.loss.push_back(st.loss);
    r.step_s.push_back(st.total);
    r.a2a_forward_s.push_back(st.a2a_forward);
    r.a2a_backward_s.push_back(st.a2a_backward);
    dense_s.push_back(st.dense + st.update);
    embedding_s.push_back(st.lookup + st.embedding_backward);
    input_s.push_back(st.input);
    allreduce_s.push_back(st.allreduce);
    if (exchange) {
      const auto& f = exchange->last(dlrm::Direction::forward);
      const auto& b = exchange->last(dlrm::Direction::backward);
      r.compress_s.push_back(f.compress_s + f.decompress_s + b.compress_s + b.decompress_s);
      r.raw_forward.push_back(double(f.raw_bytes));
      r.comp_forward.push_back(double(f.compressed_bytes));
      r.raw_backward.push_back(double(b.raw_bytes));
      r.comp_backward.push_back(double(b.compressed_bytes));
      r.table_forward.add(f);
      r.table_backward.add(b);
    } else {
      r.compress_s.push_back(0);
      r.raw_forward.push_back(double(st.forward_floats * sizeof(float)));
      r.comp_forward.push_back(r.raw_forward.back());
      r.raw_backward.push_back(double(st.backward_floats * sizeof(float)));
      r.comp_backward.push_back(r.raw_backward.back());
    }
    if ((s + 1) % o.eval_every == 0 || s + 1 == o.steps) {
      const dlrm::EvalResult e = dlrm::evaluate(model, data, o.eval_batches, o.batch);
      r.eval_step.push_back(s + 1);
      r.eval_auc.push_back(e.auc);
      r.eval_logloss.push_back(e.log_loss);
      const double train_loss =
          std::accumulate(r.loss.begin() + last_eval, r.loss.end(), 0.0) / (s + 1 - last_eval);
      double step_ms = 0;
      for (int i = last_eval; i <= s; ++i) step_ms += 1e3 * r.step_s[size_t(i)];
      step_ms /= (s + 1 - last_eval);
      auto ratio = [&](const std::vector<double>& raw, const std::vector<double>& comp) {
        const double a = std::accumulate(raw.begin() + last_eval, raw.end(), 0.0);
        const double b = std::accumulate(comp.begin() + last_eval, comp.end(), 0.0);
        return b > 0 ? a / b : 1.0;
      };
      table.print_row({codec, cell("%d", s + 1), cell("%.4f", train_loss), cell("%.4f", e.auc),
                       cell("%.4f", e.log_loss), cell("%.2f", step_ms),
                       cell("%.2f", ratio(r.raw_forward, r.comp_forward)),
                       cell("%.2f", ratio(r.raw_backward, r.comp_backward))});
      last_eval = s + 1;
    }
    if (watch.observe(world.comm(), s + 1, st.loss).diverged_now) {
      r.diverged_at = s + 1;
      r.divergence = watch.reason();
      announce_divergence(world.comm(), codec, "codec", watch, o.allow_divergence);
      if (!o.allow_divergence) break;
    }
  }

  // Over the ranks: times are rank means, bytes are sums (all the bytes sent).
  MPI_Comm c = world.comm();
  const double n = world.size();
  for (auto* v : {&r.step_s, &r.a2a_forward_s, &r.a2a_backward_s, &r.compress_s, &dense_s,
                  &embedding_s, &input_s, &allreduce_s}) {
    sum_over_ranks(c, *v);
    for (double& x : *v) x /= n;
  }
  for (auto* v : {&r.raw_forward, &r.comp_forward, &r.raw_backward, &r.comp_backward})
    sum_over_ranks(c, *v);
  for (size_t i = 0; i < r.loss.size(); ++i) {
    r.ratio_forward.push_back(r.comp_forward[i] > 0 ? r.raw_forward[i] / r.comp_forward[i] : 1);
    r.ratio_backward.push_back(r.comp_backward[i] > 0 ? r.raw_backward[i] / r.comp_backward[i] : 1);
  }
  for (auto* stats : {&r.table_forward, &r.table_backward}) {
    std::vector<double> bytes, err;
    for (const auto& t : stats->tables) {
      bytes.insert(bytes.end(), {double(t.raw_bytes), double(t.compressed_bytes),
                                 t.compress_s + t.decompress_s});
      err.insert(err.end(), {t.max_error, t.bound});
    }
    sum_over_ranks(c, bytes);
    max_over_ranks(c, err);
    for (size_t t = 0; t < stats->tables.size(); ++t) {
      auto& s = stats->tables[t];
      s.raw_bytes = size_t(bytes[3 * t]);
      s.compressed_bytes = size_t(bytes[3 * t + 1]);
      s.compress_s = bytes[3 * t + 2] / n;
      s.decompress_s = 0;
      s.max_error = err[2 * t];
      s.bound = err[2 * t + 1];
    }
  }
  r.mean_step_s = mean_after_first(r.step_s);
  r.mean_fwd_s = mean_after_first(r.a2a_forward_s);
  r.mean_bwd_s = mean_after_first(r.a2a_backward_s);
  r.mean_compress_s = mean_after_first(r.compress_s);
  r.mean_dense_s = mean_after_first(dense_s);
  r.mean_embedding_s = mean_after_first(embedding_s);
  r.mean_input_s = mean_after_first(input_s);
  r.mean_allreduce_s = mean_after_first(allreduce_s);
  auto total_ratio = [](const std::vector<double>& raw, const std::vector<double>& comp) {
    const double a = std::accumulate(raw.begin(), raw.end(), 0.0);
    const double b = std::accumulate(comp.begin(), comp.end(), 0.0);
    return b > 0 ? a / b : 1.0;
  };
  r.ratio_fwd = total_ratio(r.raw_forward, r.comp_forward);
  r.ratio_bwd = total_ratio(r.raw_backward, r.comp_backward);
  return r;
}

TrainingContext prepare_training(App& app, const Options& o, Setup& s) {
  World& world = app.world();
  kernels::set_threads(o.threads > 0 ? o.threads : kernels::default_threads(world.local_size()));
  TrainingContext context;
  context.comm = comm::make_mpi_communicator(world.comm());
  dlrm::DataConfig dc;
  dc.seed = app.common().seed;
  context.data = std::make_unique<dlrm::SyntheticClicks>(s.config, dc);

  if (o.classes == "measured") {
    // Sensitivity of the initial model (the same on every rank) on one
    // calibration batch; rank 0's numbers are the ones used.
    dlrm::Dlrm single(s.config, app.common().seed);
    const dlrm::Batch cal =
        context.data->make_batch(dlrm::Split::calibration, 1, 0, std::min(o.batch, 1024));
    std::vector<double> sens = dlrm::measure_table_sensitivity(single, cal, s.policy.forward_base);
    dlrm::agree_on_rank0(*context.comm, sens);
    s.policy.classes = dlrm::assign_classes(sens);
    world.printf("# table sensitivity (mean |dloss| per sample at the forward bound):");
    for (size_t t = 0; t < sens.size(); ++t)
      world.printf(" %zu:%.2e(%s)", t, sens[t], dlrm::bound_class_name(s.policy.classes[t]));
    world.printf("\n");
  }
  return context;
}

}  // namespace paralab::dlrm_a2a
