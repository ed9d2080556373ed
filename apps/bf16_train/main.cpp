// bf16_train: transformer training under five numeric policies (FP32, BF16
// mixed precision, pure BF16 with round-to-nearest-even, stochastic rounding
// or Kahan-compensated updates), data-parallel over the ranks, on a synthetic
// Markov language of known entropy rate or on byte-level text; per policy the
// loss curves, the fraction of weight updates lost to rounding, tokens/s and
// the step's FLOP rate against SGEMM. Kalamkar et al., "A Study of BFLOAT16
// for Deep Learning Training" (2019). See docs/bf16_train.md.
#include <nlohmann/json.hpp>

#include <algorithm>

#include "bf16_train.hpp"
#include "comm/comm.hpp"
#include "core/errors.hpp"
#include "kernels/threads.hpp"
#include "model/checkpoint.hpp"

namespace paralab::bf16_train {
namespace {

// The keys whose values differ between two run configurations (JSON).
std::string differences(const std::string& theirs, const std::string& mine) {
  const auto a = nlohmann::json::parse(theirs, nullptr, false);
  const auto b = nlohmann::json::parse(mine);
  if (a.is_discarded() || !a.is_object()) return "its run configuration is unreadable";
  std::string out;
  for (const auto& [key, value] : b.items()) {
    const std::string was = a.contains(key) ? a[key].dump() : "(none)";
    if (was != value.dump())
      out += (out.empty() ? "" : ", ") + key + " " + was + " (this run: " + value.dump() + ")";
  }
  for (const auto& [key, value] : a.items())
    if (!b.contains(key)) out += (out.empty() ? "" : ", ") + key + " " + value.dump();
  return out;
}

// Before any result file exists: every policy's checkpoint is there and was
// written by a run with the same configuration.
void check_resume(App& app, const Options& o, const std::vector<model::Precision>& policies) {
  agree_on(app.world().comm(), [&] {
    for (model::Precision policy : policies) {
      const std::string path = policy_path(o.resume, policy, policies.size() > 1);
      const model::CheckpointInfo info = model::read_checkpoint_info(path);
      const std::string diff =
          differences(info.run_config, run_config_json(o, policy, app.common().seed));
      if (!diff.empty())
        throw UsageError("--resume: checkpoint '" + path +
                         "' was written by a run with other options: " + diff);
    }
  });
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
  const DataSet data(o, seeds_of(o, app.common().seed).data);
  const model::ModelConfig config = model_config_of(o, data.vocab());
  schedule_of(o);
  if (!o.resume.empty()) check_resume(app, o, policies);

  kernels::set_threads(o.threads > 0 ? o.threads : kernels::default_threads(world.local_size()));
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
  for (model::Precision policy : policies)
    results.push_back(train_policy(app, o, data, *comm, policy, table));

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
