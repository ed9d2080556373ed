// ring_attention: context-parallel long-context attention (pass-KV, pass-Q,
// all-gather, or the paper's automatic choice; full and persistent-KV
// prefill; decode) across the ranks: measured for real on the CPU kernels
// with a per-step breakdown and an exactness check, or simulated on lib/sim
// at any scale, up to a whole Llama3-405B prefill. Yang et al., MLSys'25.
#include "core/options.hpp"
#include "core/resources.hpp"
#include "options.hpp"
#include "sim/hardware.hpp"

namespace paralab::ring_attention {
namespace {

void run(App& app) {
  Options o;
  add_options(app.cli(), o);
  app.parse();
  if (sim::is_profile_path(o.profile)) agree_on_inputs(app.world(), {{"--profile", o.profile}});
  if (!decoding(o))
    for (uint64_t T : o.tokens)
      if (static_cast<uint64_t>(o.documents) > T + o.cached)
        throw UsageError("--documents " + std::to_string(o.documents) + " is more than the " +
                         std::to_string(T + o.cached) +
                         " tokens of the sequence: every document needs a token");
  // Options one mode would ignore are refused in it (none may be accepted silently).
  if (app.common().mode == Mode::simulate)
    reject_given(app.cli(), {"--threads", "--iters", "--warmup", "--check"},
                 "is for measure mode: simulate mode computes each point once, on the profile");
  else
    reject_given(app.cli(), {"--profile", "--sim-ranks", "--model", "--tp", "--partial-dtype"},
                 "is for --mode simulate");
  if (app.common().mode == Mode::simulate)
    run_simulate(app, o);
  else
    run_measure(app, o);
}

}  // namespace
}  // namespace paralab::ring_attention

int main(int argc, char** argv) {
  return paralab::run_app(
      argc, argv,
      {.name = "ring_attention",
       .description = "paralab ring_attention: context-parallel long-context attention (pass-KV, "
                      "pass-Q, all-gather, auto), measured or simulated",
       .has_simulate = true},
      paralab::ring_attention::run);
}
