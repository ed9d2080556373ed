// bf16_train: transformer training under five numeric policies (FP32, BF16
// mixed precision, pure BF16 with round-to-nearest-even, stochastic rounding
// or Kahan-compensated updates), data-parallel over the ranks, on a synthetic
// Markov language of known entropy rate or on byte-level text; per policy the
// loss curves, the fraction of weight updates lost to rounding, tokens/s and
// the step's FLOP rate against SGEMM. Kalamkar et al., "A Study of BFLOAT16
// for Deep Learning Training" (2019). See docs/bf16_train.md.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>

#include "bf16_train.hpp"
#include "comm/comm.hpp"
#include "core/errors.hpp"
#include "core/resources.hpp"
#include "core/signals.hpp"
#include "harness/training.hpp"
#include "kernels/threads.hpp"
#include "model/checkpoint.hpp"

namespace paralab::bf16_train {
namespace {

// The keys whose values differ between two run configurations (JSON), but for "threads",
// whose difference is returned in `threads_note` (it changes rounding, not the run).
std::string differences(const std::string& theirs, const std::string& mine,
                        std::string& threads_note) {
  const auto a = nlohmann::json::parse(theirs, nullptr, false);
  const auto b = nlohmann::json::parse(mine);
  if (a.is_discarded() || !a.is_object()) return "its run configuration is unreadable";
  std::string out;
  for (const auto& [key, value] : b.items()) {
    const std::string was = a.contains(key) ? a[key].dump() : "(none)";
    if (was == value.dump()) continue;
    if (key == "threads")
      threads_note = "written with " + was + " kernel threads per rank, now " + value.dump();
    else
      out += (out.empty() ? "" : ", ") + key + " " + was + " (this run: " + value.dump() + ")";
  }
  for (const auto& [key, value] : a.items())
    if (!b.contains(key)) out += (out.empty() ? "" : ", ") + key + " " + value.dump();
  return out;
}

// Per policy, the checkpoint it continues from ("": from scratch): --resume's, or --checkpoint's
// own file when it exists, so that a run stopped by a signal or a time limit continues when the
// same command is run again. Decided before any result file exists: rank 0 looks for the
// files, every rank must read the same bytes, and each was written with these options.
std::vector<std::string> resume_paths(App& app, const Options& o,
                                      const std::vector<model::Precision>& policies) {
  World& world = app.world();
  const bool several = policies.size() > 1;
  const std::string& base = o.resume.empty() ? o.checkpoint : o.resume;
  const std::string option = o.resume.empty() ? "--checkpoint" : "--resume";
  std::vector<std::string> paths(policies.size());
  if (base.empty()) return paths;
  std::vector<int> present(policies.size(), 1);
  if (o.resume.empty() && world.is_root())
    for (size_t i = 0; i < policies.size(); ++i)
      present[i] = std::filesystem::exists(policy_path(base, policies[i], several)) ? 1 : 0;
  MPI_Bcast(present.data(), static_cast<int>(present.size()), MPI_INT, 0, world.comm());
  std::vector<InputPath> inputs;
  for (size_t i = 0; i < policies.size(); ++i) {
    if (!present[i]) continue;
    paths[i] = policy_path(base, policies[i], several);
    inputs.push_back({option, paths[i]});
  }
  if (o.resume.empty() && inputs.empty()) return paths;
  std::string threads_note;
  agree_on(world.comm(), [&] {
    for (size_t i = 0; i < policies.size(); ++i) {
      if (paths[i].empty()) continue;
      const model::CheckpointInfo info = model::read_checkpoint_info(paths[i]);
      const std::string diff = differences(
          info.run_config, run_config_json(o, policies[i], app.common().seed), threads_note);
      if (diff.empty()) continue;
      if (!o.resume.empty())
        throw UsageError("--resume: checkpoint '" + paths[i] +
                         "' was written by a run with other options: " + diff);
      throw UsageError("--checkpoint '" + paths[i] +
                       "' holds the checkpoint of a run with other options (" + diff +
                       "): remove it or name another file to start afresh");
    }
  });
  // Read the same bytes everywhere (a node-local copy may differ): after the check above, which
  // names a missing or foreign checkpoint with its own message.
  agree_on_inputs(world, inputs);
  if (!threads_note.empty())
    world.printf(
        "# warning: the checkpoint was %s: the continuation is correct but not "
        "bit-identical to an uninterrupted run\n",
        threads_note.c_str());
  if (o.resume.empty())
    for (size_t i = 0; i < policies.size(); ++i)
      if (!paths[i].empty())
        world.printf(
            "# %s: %s exists, written by this command: continuing from it (remove it "
            "to start afresh)\n",
            std::string(model::to_string(policies[i])).c_str(), paths[i].c_str());
  return paths;
}

void run(App& app) {
  // --warmup is the learning-rate warm-up here: the harness's sweep
  // repetitions (-n/--iters, -w/--warmup) are off (AppInfo).
  Options o;
  add_options(app.cli(), o);
  app.parse();
  World& world = app.world();
  if (app.common().device != Device::cpu)
    throw UsageError("bf16_train trains on the CPU kernels for now (--device cpu)");
  resolve_defaults(o);

  // Everything that can be wrong with the input, before the result file.
  const std::vector<model::Precision> policies = policies_of(o);
  model::parse_grad_dtype(o.grad_dtype);
  if (o.data == "text") agree_on_inputs(world, {{"--corpus", o.corpus, true}});
  const DataSet data(o, seeds_of(o, app.common().seed).data);
  const model::ModelConfig config = model_config_of(o, data.vocab());
  schedule_of(o);
  if (o.threads == 0) o.threads = kernels::default_threads(world.local_size());
  const std::vector<std::string> resumes = resume_paths(app, o, policies);
  // The checkpoint files are claimed now (a folder that cannot be written, a device, another
  // run writing them: refused before training), and with them a signal stops training
  // gracefully: every rank finishes its step, the checkpoint is saved, the run exits 5.
  std::vector<std::unique_ptr<results::OutputFile>> checkpoints(policies.size());
  if (!o.checkpoint.empty()) {
    agree_on(world.comm(), [&] {
      if (!world.is_root()) return;
      for (size_t i = 0; i < policies.size(); ++i)
        checkpoints[i] = std::make_unique<results::OutputFile>(
            policy_path(o.checkpoint, policies[i], policies.size() > 1), "checkpoint");
    });
    set_graceful_termination(true);
  }

  kernels::set_threads(o.threads);
  auto comm = comm::make_mpi_communicator(world.comm());
  const int rows = model::row_share(o.batch, 0, world.size()).count;
  Limits limits = measure_limits(world.comm(), config, rows, o.context);
  app.open_results(comm->backend());

  world.printf("# bf16_train: %d ranks, %d threads each; %s data", world.size(), kernels::threads(),
               o.data.c_str());
  if (const auto floor = data.floor_nats())
    world.printf(" (vocab %d, order %d, concentration %g: entropy floor %.4f nats/token)", o.vocab,
                 o.order, o.concentration, *floor);
  else
    world.printf(" ('%s': %zu training and %zu held-out bytes)", o.corpus.c_str(),
                 data.train_bytes(), data.heldout_bytes());
  world.printf(
      "\n# model: %d layers, d_model %d, %d heads (%d kv), ffn %d, context %d; batch %d "
      "sequences, %d steps, %s lr %g (warm-up %d, cosine to %g), grad all-reduce %s\n",
      o.layers, o.d_model, o.heads, o.kv_heads, o.ffn, o.context, o.batch, o.steps,
      o.optimizer.c_str(), o.lr, o.warmup, o.min_lr, o.grad_dtype.c_str());
  const Table table = make_table(world);
  table.print_header();
  std::vector<PolicyResult> results;
  for (size_t i = 0; i < policies.size(); ++i)
    results.push_back(
        train_policy(app, o, data, *comm, policies[i], table, resumes[i], checkpoints[i].get()));

  // Limits are what the cores can do: the better of before and after training
  // (a shared machine may have been busy during one of them).
  const Limits after = measure_limits(world.comm(), config, rows, o.context);
  limits.sgemm_tflops = std::max(limits.sgemm_tflops, after.sgemm_tflops);
  limits.bf16_gemm_tflops = std::max(limits.bf16_gemm_tflops, after.bf16_gemm_tflops);
  limits.step_gemm_f32_tflops = std::max(limits.step_gemm_f32_tflops, after.step_gemm_f32_tflops);
  limits.step_gemm_bf16_tflops =
      std::max(limits.step_gemm_bf16_tflops, after.step_gemm_bf16_tflops);
  print_summary(world, results, limits, data.floor_nats());
  if (world.is_root()) {
    record_limits(app, limits);
    const PolicyResult* fp32 = nullptr;
    for (const auto& r : results)
      if (r.policy == model::Precision::fp32) fp32 = &r;
    for (const auto& r : results) record(app, o, data, limits, r, fp32);
  }
  app.finish();
  std::vector<std::pair<std::string, std::string>> diverged;
  for (const auto& r : results)
    if (r.diverged_at >= 0) diverged.emplace_back(model::to_string(r.policy), r.divergence);
  raise_if_diverged(diverged, o.allow_divergence);
}

}  // namespace
}  // namespace paralab::bf16_train

int main(int argc, char** argv) {
  return paralab::run_app(argc, argv,
                          {.name = "bf16_train",
                           .description = "paralab bf16_train: transformer training in FP32, BF16 "
                                          "mixed and pure BF16 (RNE, stochastic rounding, Kahan), "
                                          "data-parallel, with checkpoints",
                           .has_sweep_repeats = false},
                          paralab::bf16_train::run);
}
