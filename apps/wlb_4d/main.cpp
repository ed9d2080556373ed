// wlb_4d: 4D-parallel training with workload-balanced packing and per-
// document context sharding (WLB-LLM, Wang et al., OSDI'25). See wlb_4d.hpp
// and docs/wlb_4d.md.
#include "core/errors.hpp"
#include "core/options.hpp"
#include "core/resources.hpp"
#include "sim/hardware.hpp"
#include "wlb_4d.hpp"

namespace paralab::wlb_4d {
namespace {

void run(App& app) {
  Options o;
  add_options(app.cli(), o);
  app.parse();
  if (app.common().device != Device::cpu)
    throw UsageError("wlb_4d trains on the CPU kernels for now (--device cpu)");
  // Files every rank reads must be the same everywhere (node-local copies may differ or be
  // missing on some nodes): agreed on before anything reads them.
  std::vector<InputPath> inputs;
  if (o.lengths.starts_with("file:")) inputs.push_back({"--lengths file:", o.lengths.substr(5)});
  if (sim::is_profile_path(o.profile)) inputs.push_back({"--profile", o.profile});
  agree_on_inputs(app.world(), inputs);
  // Options one mode would ignore are refused in it (none may be accepted silently).
  const std::vector<std::string> grid_options = {"--tp", "--cp",      "--pp",
                                                 "--dp", "--packing", "--context"};
  const std::vector<std::string> training_options = {
      "--max-document", "--layers", "--d-model", "--heads",         "--kv-heads",
      "--ffn",          "--vocab",  "--order",   "--concentration", "--precision",
      "--lr",           "--clip",   "--threads"};
  if (app.common().mode == Mode::simulate) {
    reject_given(app.cli(), training_options,
                 "is for measure mode: simulate mode times the preset models (--config, or "
                 "--sim-model for a grid of your own)");
    if (o.sim_model.empty())
      reject_given(app.cli(), grid_options,
                   "applies in simulate mode only with --sim-model (a grid of your own); the "
                   "paper's configurations (--config) bring their own");
    else
      reject_given(app.cli(), {"--config", "--no-imbalance-table"},
                   "is for the paper's configurations, not with --sim-model");
  } else {
    reject_given(app.cli(), {"--profile", "--config", "--no-imbalance-table", "--sim-model"},
                 "is for --mode simulate");
  }
  validate(o, app.common().mode);
  if (app.common().mode == Mode::simulate)
    run_simulate(app, o);
  else
    run_measure(app, o);
}

}  // namespace
}  // namespace paralab::wlb_4d

int main(int argc, char** argv) {
  return paralab::run_app(argc, argv,
                          {.name = "wlb_4d",
                           .description = "paralab wlb_4d: 4D-parallel (TP x CP x PP x DP) "
                                          "training with plain, fixed-length and WLB "
                                          "variable-length packing, measured or simulated",
                           .has_simulate = true,
                           .has_sweep_repeats = false},
                          paralab::wlb_4d::run);
}
