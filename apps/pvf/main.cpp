// pvf: parameter vulnerability factor by fault injection (issue 17; Jiao et
// al., arXiv 2405.01741). Trains lib/dlrm's DLRM briefly on synthetic Zipf
// clicks (or, with --model transformer, lib/model's transformer on a
// synthetic Markov language), then injects faults into its stored parameters
// (component x fault model x storage type x bit class) and counts how often
// the predictions of a fixed evaluation set become incorrect. Trials are spread over the
// ranks with counts independent of the rank count; a checkpoint after every
// round makes the campaign resumable. See docs/pvf.md.
#include <mpi.h>

#include <chrono>
#include <filesystem>
#include <vector>

#include "core/errors.hpp"
#include "kernels/threads.hpp"
#include "options.hpp"
#include "pvf/dlrm_target.hpp"
#include "pvf/transformer_target.hpp"
#include "report.hpp"

namespace paralab::pvf_app {
namespace {

// The checkpoint's counts as 4 integers per cell; a usage error's message
// in `error` instead of a throw (only rank 0 reads, every rank must agree).
std::vector<int64_t> read_flat(const Setup& s, std::string& error) {
  std::vector<int64_t> flat;
  try {
    const auto counts =
        pvf::read_checkpoint(s.campaign.checkpoint, s.campaign.fingerprint, s.cells.size());
    for (const pvf::CellCounts& k : counts)
      flat.insert(flat.end(), {k.trials, k.incorrect, k.nan_inf, k.done ? 1 : 0});
  } catch (const UsageError& e) {
    error = e.what();
  }
  flat.resize(4 * s.cells.size());
  return flat;
}

// Rank 0 reads the checkpoint (when --resume finds one) and shares the
// counts; a bad checkpoint is a usage error on every rank.
std::vector<pvf::CellCounts> load_start(const World& world, const Options& o, const Setup& s) {
  const std::string& path = s.campaign.checkpoint;
  int exists = world.is_root() && std::filesystem::exists(path) ? 1 : 0;
  MPI_Bcast(&exists, 1, MPI_INT, 0, world.comm());
  if (!o.resume || !exists) {
    if (o.resume) world.printf("# --resume: no checkpoint at %s, starting afresh\n", path.c_str());
    return {};
  }
  std::string error;
  std::vector<int64_t> flat =
      world.is_root() ? read_flat(s, error) : std::vector<int64_t>(4 * s.cells.size());
  int length = static_cast<int>(error.size());
  MPI_Bcast(&length, 1, MPI_INT, 0, world.comm());
  error.resize(static_cast<size_t>(length));
  MPI_Bcast(error.data(), length, MPI_CHAR, 0, world.comm());
  if (!error.empty()) throw UsageError(error);
  MPI_Bcast(flat.data(), static_cast<int>(flat.size()), MPI_INT64_T, 0, world.comm());
  std::vector<pvf::CellCounts> counts(s.cells.size());
  for (size_t i = 0; i < counts.size(); ++i)
    counts[i] = {flat[4 * i], flat[4 * i + 1], flat[4 * i + 2], flat[4 * i + 3] != 0};
  world.printf("# resumed from %s\n", path.c_str());
  return counts;
}

pvf::CampaignResult run_cells(App& app, const Options& o, const Setup& s, pvf::Target& target,
                              RunSummary& summary) {
  World& world = app.world();
  std::vector<pvf::CellCounts> start = load_start(world, o, s);
  // A first checkpoint at once: an unwritable --checkpoint fails before any work.
  if (start.empty() && world.is_root())
    pvf::write_checkpoint(s.campaign.checkpoint, s.campaign.fingerprint,
                          std::vector<pvf::CellCounts>(s.cells.size()));
  const Table table = make_table(world);
  table.print_header();
  for (size_t i = 0; i < start.size(); ++i)
    if (start[i].done) print_cell(table, target, s.cells[i], start[i]);
  const pvf::SumFn sum = [&](std::span<int64_t> v) {
    MPI_Allreduce(MPI_IN_PLACE, v.data(), static_cast<int>(v.size()), MPI_INT64_T, MPI_SUM,
                  world.comm());
  };
  // A row per finished cell; a progress line when a cell runs long (rank 0's clock).
  auto last = std::chrono::steady_clock::now();
  const pvf::ProgressFn progress = [&](int cell, const pvf::CellCounts& counts) {
    const auto now = std::chrono::steady_clock::now();
    if (counts.done) {
      print_cell(table, target, s.cells[static_cast<size_t>(cell)], counts);
    } else if (now - last > std::chrono::seconds(10)) {
      world.printf("# progress: cell %d of %zu (%s), %lld trials, PVF %.4f so far\n", cell + 1,
                   s.cells.size(),
                   pvf::describe(s.cells[static_cast<size_t>(cell)], target).c_str(),
                   static_cast<long long>(counts.trials), counts.pvf());
    } else {
      return;
    }
    last = now;
  };
  const auto t0 = std::chrono::steady_clock::now();
  pvf::CampaignResult r = pvf::run_campaign(target, s.cells, s.campaign, sum, progress, start);
  summary.campaign_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  summary.injections = r.local_injections;
  MPI_Allreduce(MPI_IN_PLACE, &summary.injections, 1, MPI_INT64_T, MPI_SUM, world.comm());
  return r;
}

// Partial against full recomputation of every component of the target.
template <typename T>
std::vector<Speed> measure_speeds(T& target, const Options& o, const Setup& s, bool check) {
  target.prepare(pvf::DType::fp32);
  std::vector<Speed> speeds;
  for (int c = 0; c < target.components(); ++c) {
    if (o.bench_trials == 0) break;
    const pvf::RecomputeTiming t = pvf::time_recompute(target, c, o.bench_trials, s.campaign.seed);
    speeds.push_back({target.component_name(c), t.injections, t.partial_s, t.full_s, t.mismatches});
  }
  int mismatches = 0;
  for (const Speed& x : speeds) mismatches += x.mismatches;
  if (check && mismatches > 0)
    throw CheckFailed("partial recomputation differs from a full forward in " +
                      std::to_string(mismatches) + " injections");
  return speeds;
}

// The campaign, the recomputation timing and the result file.
template <typename T>
void campaign(App& app, const Options& o, const Setup& s, T& target, RunSummary& summary) {
  World& world = app.world();
  const pvf::CampaignResult r = run_cells(app, o, s, target, summary);
  world.printf("# %lld injections in %.1f s: %.0f injections/s over %d ranks\n",
               static_cast<long long>(summary.injections), summary.campaign_s,
               summary.injections / summary.campaign_s, world.size());
  if (!r.complete) {
    world.printf(
        "# stopped after %lld rounds (--stop-after-rounds); checkpoint %s; no result file: "
        "rerun with --resume\n",
        static_cast<long long>(o.stop_after_rounds), s.campaign.checkpoint.c_str());
    return;
  }
  summary.speeds = measure_speeds(target, o, s, app.common().check);
  print_speeds(world, summary.speeds);
  if (world.is_root()) record(app, o, s, target, r.counts, summary);
  app.finish();
  // The result file holds every count now; the checkpoint has done its job.
  if (world.is_root()) std::filesystem::remove(s.campaign.checkpoint);
}

void run_dlrm(App& app, const Options& o, const Setup& s) {
  World& world = app.world();
  world.printf("# pvf: %d ranks, %d threads each; DLRM %s\n", world.size(), kernels::threads(),
               s.model.describe().c_str());
  world.printf(
      "# %zu cells, at most %lld trials each in rounds of %lld, CI width %g; CTR threshold %g on "
      "%d samples\n",
      s.cells.size(), static_cast<long long>(o.trials), static_cast<long long>(o.round), o.ci_width,
      o.ctr_threshold, o.eval_samples);
  // Claims --out now, so that a bad path fails before the campaign, not after
  // it; the file is written only by finish(), so a stopped run leaves none.
  app.open_results("mpi");
  dlrm::SyntheticClicks data(s.model, s.data);
  dlrm::Dlrm model(s.model, app.common().seed);
  dlrm::Batch eval = data.make_batch(dlrm::Split::eval, 0, 0, o.eval_samples);
  RunSummary summary;
  summary.training = pvf::train_dlrm(model, data, s.training, eval);
  world.printf("# trained %d steps in %.1f s: loss %.4f -> %.4f, eval AUC %.4f\n", o.train_steps,
               summary.training.seconds, summary.training.first_loss, summary.training.last_loss,
               summary.training.eval_auc);
  pvf::DlrmTarget target(model, std::move(eval), o.ctr_threshold, s.dlrm_components);
  campaign(app, o, s, target, summary);
}

void run_transformer(App& app, const Options& o, const Setup& s) {
  World& world = app.world();
  world.printf("# pvf: %d ranks, %d threads each; transformer %s\n", world.size(),
               kernels::threads(), pvf::describe(s.transformer_model).c_str());
  world.printf(
      "# %zu cells, at most %lld trials each in rounds of %lld, CI width %g; incorrect: top-1 "
      "change or loss rise > %g nats on %d x %d positions\n",
      s.cells.size(), static_cast<long long>(o.trials), static_cast<long long>(o.round), o.ci_width,
      o.loss_threshold, o.eval_sequences, o.seq);
  const pvf::TransformerTraining& t = s.transformer_training;
  // UsageError (on every rank alike) for a language with too many contexts.
  model::MarkovSource data(t.vocab, t.order, t.concentration, t.seed);
  app.open_results("mpi");
  model::Model model(s.transformer_model, model::Precision::fp32, t.seed);
  model::SampledBatch eval = pvf::transformer_eval_set(data, o.eval_sequences, o.seq);
  RunSummary summary;
  summary.transformer = pvf::train_transformer(model, data, t, eval);
  const pvf::TransformerTrainingSummary& ts = summary.transformer;
  world.printf(
      "# trained %d steps in %.1f s: loss %.4f -> %.4f, eval loss %.4f (entropy floor %.4f), "
      "eval top-1 %.4f\n",
      o.train_steps, ts.seconds, ts.first_loss, ts.last_loss, ts.eval_loss, ts.entropy_floor,
      ts.eval_top1);
  pvf::TransformerTarget target(model, std::move(eval), s.transformer_components, o.loss_threshold);
  campaign(app, o, s, target, summary);
}

void run(App& app) {
  Options o;
  Setup s = parse_and_validate(app, o);
  // The transformer's GEMMs (OpenBLAS) may round differently at another
  // thread count, which moves a near-tie verdict now and then: by default it
  // evaluates on one thread per rank, so its counts do not depend on how
  // many ranks share the host. The DLRM's loops are thread-count invariant.
  const int threads = o.threads > 0   ? o.threads
                      : s.transformer ? 1
                                      : kernels::default_threads(app.world().local_size());
  kernels::set_threads(threads);
  if (s.transformer)
    run_transformer(app, o, s);
  else
    run_dlrm(app, o, s);
}

}  // namespace
}  // namespace paralab::pvf_app

int main(int argc, char** argv) {
  return paralab::run_app(
      argc, argv,
      {.name = "pvf",
       .description = "paralab pvf: parameter vulnerability factor of a DLRM or a "
                      "transformer by fault injection into its stored parameters",
       .has_simulate = false,
       .has_sweep_repeats = false},
      paralab::pvf_app::run);
}
