// emb_cache: DLRM training with mixed-precision embedding tables and an FP32
// row cache (issue 16; Yang et al., "Mixed-Precision Embedding Using a
// Cache", arXiv 2010.11305). Every table variant of --format x --policy x
// --rounding trains from the same initial weights on the same synthetic
// Zipf click batches as lib/dlrm's plain FP32 model (the reference); per
// run the held-out AUC and log loss, the embedding memory actually
// allocated, step time, lookup and update throughput and the cache hit rate
// per table and step. One rank, or data parallel with replicated tables
// (lib/emb/data_parallel.hpp; docs/emb_cache.md). --mode simulate
// predicts the memory per GPU and the step of a cluster instead
// (simulate.hpp, lib/emb/simulate.hpp). The logic is in lib/emb; this file
// runs it and reports.
#include <string>
#include <vector>

#include "core/errors.hpp"
#include "dlrm/data.hpp"
#include "kernels/threads.hpp"
#include "options.hpp"
#include "report.hpp"
#include "simulate.hpp"

namespace paralab::emb_cache {
namespace {

emb::Progress progress_printer(const World& world, const Options& o, const std::string& label) {
  const int every = o.progress_every > 0 ? o.progress_every : (o.steps >= 100 ? o.steps / 10 : 0);
  if (every == 0) return {};
  return [&world, every, label, steps = o.steps](int step, const emb::RunResult& r) {
    if ((step + 1) % every != 0 || step + 1 == steps) return;
    double hits = 0;
    for (const auto& t : r.hit_rate) hits += t.back();
    const std::string hit =
        r.hit_rate.empty() ? ""
                           : cell(", hit rate %.3f", hits / static_cast<double>(r.hit_rate.size()));
    world.printf("#   %s: step %d/%d, loss %.4f%s\n", label.c_str(), step + 1, steps, r.loss.back(),
                 hit.c_str());
  };
}

// Data parallel over the world when it has more than one rank.
MPI_Comm comm(const World& world) {
  return world.size() > 1 ? world.comm() : MPI_COMM_NULL;
}

// The FP32 reference: lib/dlrm's model on one rank; on more, the same
// arithmetic as lib/emb fp32 tables without a cache (equal to lib/dlrm's bit
// for bit on one rank: tests/emb), data parallel like the variants.
Summary run_reference(App& app, const Options& o, const Setup& s, const emb::MakeBatch& data,
                      int64_t fp32_bytes) {
  World& world = app.world();
  const auto progress = progress_printer(world, o, "fp32 reference");
  if (world.size() == 1) {
    dlrm::Dlrm reference(s.config, app.common().seed);
    return summarise("fp32 reference", nullptr,
                     emb::run_reference(reference, data, s.run, progress), fp32_bytes);
  }
  emb::TableOptions plain;
  plain.cache.fraction = 0;
  const bool adagrad = s.run.opt.embedding == dlrm::EmbeddingOptimizer::rowwise_adagrad;
  emb::MixedDlrm reference(s.config, app.common().seed, plain, adagrad);
  emb::RunResult r = emb::run_mixed(reference, data, s.run, progress, comm(world));
  r.hit_rate.clear();  // no cache: report it as the reference
  return summarise("fp32 reference", nullptr, std::move(r), fp32_bytes);
}

// --check: fp32 rows (any cache) must give the reference's losses and AUC bit for bit.
void check_fp32(const World& world, const std::vector<Summary>& runs, const Summary& ref) {
  for (const auto& s : runs) {
    if (s.variant->table.format != emb::Format::fp32) continue;
    const bool same = s.result.loss == ref.result.loss &&
                      s.result.eval_auc == ref.result.eval_auc &&
                      s.result.eval_logloss == ref.result.eval_logloss;
    world.printf("# check: %s losses, AUC and log loss %s the FP32 reference's\n", s.label.c_str(),
                 same ? "equal" : "DIFFER from");
    if (!same) throw CheckFailed("check failed: " + s.label + " differs from the FP32 reference");
  }
}

void run(App& app) {
  Options o;
  const Setup s = parse_and_validate(app, o);
  if (app.common().mode == Mode::simulate) {
    run_simulate(app, o, s);
    return;
  }
  World& world = app.world();
  app.open_results("mpi");
  const bool adagrad = s.run.opt.embedding == dlrm::EmbeddingOptimizer::rowwise_adagrad;
  const int64_t fp32_bytes = emb::fp32_table_bytes(s.config, adagrad);
  world.printf("# emb_cache: %d rank%s, %d threads each; model %s\n", world.size(),
               world.size() > 1 ? "s (data parallel, replicated tables)" : "", kernels::threads(),
               s.config.describe().c_str());
  world.printf(
      "# batch %d, %d steps, %s (lr %g, embedding lr %g), zipf %g; cache %g of rows, "
      "%d ways, prefetch %s\n",
      o.batch, o.steps, o.optimizer.c_str(), o.lr, static_cast<double>(s.run.opt.embedding_lr),
      o.zipf, o.cache_fraction, o.assoc, o.no_prefetch ? "off" : "on");
  dlrm::SyntheticClicks synthetic(s.config, s.data);
  const std::span<const emb::CriteoSample> lines(s.criteo);
  const emb::MakeBatch data = s.criteo.empty()
                                  ? emb::synthetic_batches(synthetic)
                                  : emb::criteo_batches(lines.first(s.criteo_train),
                                                        lines.subspan(s.criteo_train), s.config);
  if (!s.criteo.empty())
    world.printf("# data: %s, %zu lines (%zu train, %zu held out)\n", o.criteo.c_str(),
                 s.criteo.size(), s.criteo_train, s.criteo.size() - s.criteo_train);
  const Table table = make_table(world);
  table.print_header();

  const Summary ref = run_reference(app, o, s, data, fp32_bytes);
  print_row(table, ref, ref);
  std::vector<Summary> runs;
  for (const auto& v : s.variants) {
    emb::MixedDlrm model(s.config, app.common().seed, v.table, adagrad);
    runs.push_back(summarise(
        v.label(), &v,
        emb::run_mixed(model, data, s.run, progress_printer(world, o, v.label()), comm(world)),
        fp32_bytes));
    print_row(table, runs.back(), ref);
  }
  world.printf(
      "# memory: embedding bytes allocated (rows with scale/bias, FP32 cache, tags, LFU "
      "counts, Adagrad state) against %.2f MB of plain FP32 tables\n",
      1e-6 * static_cast<double>(fp32_bytes));
  if (app.common().check) check_fp32(world, runs, ref);
  if (world.is_root()) {
    record(app, o, s, ref, ref);
    for (const auto& r : runs) record(app, o, s, r, ref);
  }
  app.finish();
}

}  // namespace
}  // namespace paralab::emb_cache

int main(int argc, char** argv) {
  return paralab::run_app(argc, argv,
                          {.name = "emb_cache",
                           .description = "paralab emb_cache: DLRM training with low-precision "
                                          "embedding rows and an FP32 row cache",
                           .has_simulate = true,
                           .has_sweep_repeats = false},
                          paralab::emb_cache::run);
}
