// The training loop of one precision policy: data-parallel steps, held-out
// evaluations with a table row each, checkpoints, the replica check.
#include <algorithm>
#include <csignal>
#include <cstring>
#include <numeric>

#include "bf16_train.hpp"
#include "core/signals.hpp"
#include "core/timer.hpp"
#include "harness/training.hpp"
#include "model/checkpoint.hpp"

namespace paralab::bf16_train {

namespace {

using model::Precision;

double mean(const std::vector<double>& v, size_t first, size_t last) {
  if (last <= first) return 0;
  return std::accumulate(v.begin() + first, v.begin() + last, 0.0) / double(last - first);
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// The history as named curves for a checkpoint, and back.
std::vector<std::pair<std::string, std::vector<double>>> curves(const History& h) {
  return {{"loss", h.loss},
          {"lr", h.lr},
          {"grad_norm", h.grad_norm},
          {"lost_fraction", h.lost_fraction},
          {"step_time_s", h.step_time_s},
          {"compute_s", h.compute_s},
          {"allreduce_s", h.allreduce_s},
          {"update_s", h.update_s},
          {"eval_step", h.eval_step},
          {"heldout_loss", h.heldout_loss}};
}

void restore(History& h, const model::CheckpointInfo& info) {
  auto get = [&](const char* name, std::vector<double>& into) {
    if (const auto* v = info.find(name)) into = *v;
  };
  get("loss", h.loss);
  get("lr", h.lr);
  get("grad_norm", h.grad_norm);
  get("lost_fraction", h.lost_fraction);
  get("step_time_s", h.step_time_s);
  get("compute_s", h.compute_s);
  get("allreduce_s", h.allreduce_s);
  get("update_s", h.update_s);
  get("eval_step", h.eval_step);
  get("heldout_loss", h.heldout_loss);
}

void summarise(PolicyResult& r, int ranks) {
  const History& h = r.history;
  const size_t n = h.loss.size();
  const size_t tail = std::max<size_t>(1, n / 10);
  r.final_train_loss = mean(h.loss, n - std::min(n, tail), n);
  r.final_heldout_loss = h.heldout_loss.empty() ? 0 : h.heldout_loss.back();
  r.lost_fraction = mean(h.lost_fraction, 0, n);
  const double time = std::accumulate(h.step_time_s.begin(), h.step_time_s.end(), 0.0);
  r.tokens_per_s = time > 0 ? double(r.tokens_per_step) * double(n) / time : 0;
  r.step_time_s = median(h.step_time_s);
  r.rank_tflops = r.step_time_s > 0 ? r.flops_per_step / ranks / r.step_time_s / 1e12 : 0;
}

}  // namespace

PolicyResult train_policy(App& app, const Options& o, const DataSet& data, comm::Communicator& comm,
                          Precision policy, const Table& table, const std::string& resume,
                          results::OutputFile* checkpoint) {
  World& world = app.world();
  const Seeds seeds = seeds_of(o, app.common().seed);
  const bool several = policies_of(o).size() > 1;
  model::Model model(model_config_of(o, data.vocab()), policy, seeds.init);
  auto optimizer = make_optimizer(o, seeds.rounding);
  model::DataParallelTrainer trainer(model, *optimizer, comm, schedule_of(o), o.clip,
                                     model::parse_grad_dtype(o.grad_dtype));
  const int seq = o.context;

  PolicyResult r;
  r.policy = policy;
  r.params = static_cast<int64_t>(model.parameters().numel());
  r.flops_per_step = model.train_flops(data.train(0, o.batch, seq).view());
  r.tokens_per_step = int64_t{o.batch} * seq;
  History& h = r.history;

  // The same held-out batches at every evaluation, for every policy.
  std::vector<model::SampledBatch> heldout;
  for (int i = 0; i < o.eval_batches; ++i) heldout.push_back(data.heldout(i, o.batch, seq));
  auto evaluate = [&](int64_t step) {
    double sum = 0;
    for (const auto& b : heldout) sum += trainer.evaluate(b);
    h.eval_step.push_back(double(step));
    h.heldout_loss.push_back(sum / double(heldout.size()));
    print_row(table, policy, h, h.eval_step.size() - 1, r.tokens_per_step);
    if (app.common().check && !trainer.replicas_agree())
      throw CheckFailed("the ranks' weights differ after step " + std::to_string(step));
  };

  int64_t start = 0;
  if (!resume.empty()) {
    const std::string& path = resume;
    model::CheckpointInfo info;
    agree_on(world.comm(), [&] { info = model::load_checkpoint(path, model, *optimizer); });
    restore(h, info);
    start = info.step;
    r.resumed_from = start;
    if (info.world_size != world.size())
      world.printf(
          "# %s: resumed from %s at step %lld (written at %lld ranks, now %d: the gradient sums "
          "round differently, so the continuation is not bit-identical)\n",
          std::string(model::to_string(policy)).c_str(), path.c_str(), (long long)start,
          (long long)info.world_size, world.size());
    else
      world.printf("# %s: resumed from %s at step %lld\n",
                   std::string(model::to_string(policy)).c_str(), path.c_str(), (long long)start);
  }
  if (h.eval_step.empty()) evaluate(start);

  const std::string name(model::to_string(policy));
  const bool checkpointing = !o.checkpoint.empty();
  auto save = [&](int64_t done) {
    model::CheckpointInfo info;
    info.data_position = done;
    info.world_size = world.size();
    info.run_config = run_config_json(o, policy, app.common().seed);
    info.history = curves(h);
    agree_on(world.comm(), [&] {
      if (checkpoint) model::save_checkpoint(*checkpoint, model, *optimizer, info);
    });
  };
  StepWatch watch_steps;
  int64_t end = o.stop_at > 0 ? std::min<int64_t>(o.stop_at, o.steps) : o.steps;
  for (int64_t step = start; step < end; ++step) {
    const model::SampledBatch batch = data.train(step, o.batch, seq);
    Stopwatch watch;
    const model::DataParallelStep s = trainer.step(batch);
    h.step_time_s.push_back(watch.seconds());
    h.loss.push_back(s.loss);
    h.lr.push_back(s.lr);
    h.grad_norm.push_back(s.grad_norm);
    h.lost_fraction.push_back(s.updates.lost_fraction());
    h.compute_s.push_back(s.compute_s);
    h.allreduce_s.push_back(s.allreduce_s);
    h.update_s.push_back(s.update_s);

    const int64_t done = step + 1;
    const StepWatch::Outcome outcome = watch_steps.observe(world.comm(), done, s.loss);
    if (outcome.diverged_now) {
      r.diverged_at = done;
      r.divergence = watch_steps.reason();
      announce_divergence(world.comm(), name, "policy", watch_steps, o.allow_divergence);
      if (!o.allow_divergence) end = done;
    }
    const bool last = done == end;
    if (done % o.eval_every == 0 || last) evaluate(done);
    // A diverged state is not worth continuing from: the last periodic checkpoint stays.
    const bool keep = r.diverged_at < 0 || o.allow_divergence;
    if (checkpointing && keep &&
        (last || outcome.stop || (o.checkpoint_every > 0 && done % o.checkpoint_every == 0)))
      save(done);
    if (outcome.stop && !last) {
      const std::string signal = strsignal(termination_signal() ? termination_signal() : SIGTERM);
      throw Interrupted(name + " stopped at step " + std::to_string(done) + " of " +
                        std::to_string(o.steps) + " (" + signal + "): checkpoint saved to " +
                        policy_path(o.checkpoint, policy, several) +
                        "; run the same command again to continue");
    }
  }
  if (start >= o.steps)
    world.printf("# %s: the checkpoint had already taken all %d steps\n",
                 std::string(model::to_string(policy)).c_str(), o.steps);
  r.replicas_agree = trainer.replicas_agree();
  if (!r.replicas_agree)
    throw CheckFailed("the ranks' weights differ at the end of training (" +
                      std::string(model::to_string(policy)) + ")");
  r.steps_done = std::max(start, end);
  summarise(r, world.size());
  return r;
}

}  // namespace paralab::bf16_train
