// wlb_4d: 4D-parallel training with workload-balanced packing and per-
// document context sharding (WLB-LLM, Wang et al., OSDI'25). See wlb_4d.hpp
// and docs/wlb_4d.md.
#include "core/errors.hpp"
#include "wlb_4d.hpp"

namespace paralab::wlb_4d {
namespace {

void run(App& app) {
  Options o;
  add_options(app.cli(), o);
  app.parse();
  if (app.common().device != Device::cpu)
    throw UsageError("wlb_4d trains on the CPU kernels for now (--device cpu)");
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
