// dlrm_a2a: DLRM training with model-parallel embeddings whose all-to-all is
// compressed (issue 5; Feng et al., "Accelerating Communication in DLRM
// Training with Dual-Level Adaptive Lossy Compression", SC'24). Measure mode:
// each codec of --codec trains in turn from the same initial weights and
// data; per codec the loss curve, step and all-to-all times, compression
// ratios and the held-out AUC and log loss, against the uncompressed
// exchange (codec none). Simulate mode: the step predicted at larger rank
// counts on a hardware profile, calibrated on a short run here. See
// docs/dlrm_a2a.md.
#include <string>
#include <vector>

#include "core/errors.hpp"
#include "harness/training.hpp"
#include "kernels/threads.hpp"
#include "options.hpp"
#include "report.hpp"
#include "simulate.hpp"
#include "train.hpp"

namespace paralab::dlrm_a2a {
namespace {

// --check: the lossless codecs must reproduce codec none bit for bit.
void check_lossless(const World& world, const std::vector<CodecRun>& runs, const CodecRun& none) {
  for (const auto& r : runs) {
    if (r.codec != "raw" && r.codec != "dedup") continue;
    const bool same = r.loss == none.loss && r.eval_auc == none.eval_auc;
    world.printf("# check: %s losses and AUC %s codec none's\n", r.codec.c_str(),
                 same ? "equal" : "DIFFER from");
    if (!same)
      throw RuntimeError("check failed: lossless codec " + r.codec + " gave other losses than none",
                         Scope::all_ranks);
  }
}

void run_measure(App& app, const Options& o, Setup& s) {
  World& world = app.world();
  TrainingContext context = prepare_training(app, o, s);
  app.open_results(context.comm->backend());

  world.printf("# dlrm_a2a: %d ranks, %d threads each; model %s: %s\n", world.size(),
               kernels::threads(), o.model.c_str(), s.config.describe().c_str());
  world.printf("# sharding %s (imbalance %.3f); batch %d, %d steps, %s lr %g; bounds %s\n",
               o.sharding.c_str(), s.plan.imbalance(), o.batch, o.steps, o.optimizer.c_str(), o.lr,
               s.policy.describe().c_str());
  const Table table = make_table(world);
  table.print_header();
  std::vector<CodecRun> runs;
  for (const auto& codec : o.codecs) runs.push_back(train_codec(app, o, s, context, codec, table));
  print_summary(world, runs);

  const CodecRun* none = nullptr;
  for (const auto& r : runs)
    if (r.codec == "none") none = &r;
  if (app.common().check) check_lossless(world, runs, *none);
  if (world.is_root())
    for (const auto& r : runs) record(app, o, s, r, none);
  app.finish();
  std::vector<std::pair<std::string, std::string>> diverged;
  for (const auto& r : runs)
    if (r.diverged_at >= 0) diverged.emplace_back(r.codec, r.divergence);
  raise_if_diverged(diverged, o.allow_divergence);
}

void run(App& app) {
  Options o;
  Setup s = parse_and_validate(app, o);
  if (app.common().mode == Mode::simulate)
    run_simulate(app, o, s);
  else
    run_measure(app, o, s);
}

}  // namespace
}  // namespace paralab::dlrm_a2a

int main(int argc, char** argv) {
  return paralab::run_app(
      argc, argv,
      {.name = "dlrm_a2a",
       .description = "paralab dlrm_a2a: DLRM training with model-parallel embeddings and a "
                      "compressed embedding all-to-all, measured or simulated",
       .has_simulate = true,
       .has_sweep_repeats = false},
      paralab::dlrm_a2a::run);
}
