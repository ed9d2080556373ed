// Simulate mode: calibrate on a short measured run here, then predict the
// step at every --sim-ranks on the profile (dlrm/simulate.hpp). Rank 0
// predicts; everything printed after the calibration is simulated.
#include "simulate.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "core/stats.hpp"
#include "kernels/threads.hpp"
#include "report.hpp"
#include "sim/hardware.hpp"
#include "train.hpp"

namespace paralab::dlrm_a2a {
namespace {

// The measured run's ratios per table and codec seconds per raw byte, or
// the given ones.
dlrm::CompressionModel compression_of(const Options& o, const Setup& s, const CodecRun& run,
                                      int ranks) {
  dlrm::CompressionModel c;
  const auto T = static_cast<size_t>(s.config.tables());
  if (o.sim_ratio > 0) {
    c.forward_ratio.assign(T, o.sim_ratio);
    c.backward_ratio.assign(T, o.sim_ratio);
  } else {
    // Tables without exchanged bytes (replicated) keep ratio 1.
    for (const auto& t : run.table_forward.tables) c.forward_ratio.push_back(t.ratio());
    for (const auto& t : run.table_backward.tables) c.backward_ratio.push_back(t.ratio());
  }
  if (o.sim_codec_GBps > 0) {
    c.codec_s_per_byte = 1.0 / (o.sim_codec_GBps * 1e9);
  } else {
    // Every raw byte sent is compressed once (by its sender) and decompressed
    // once (by its receiver); compress_s is the rank mean of both, per step.
    std::vector<double> raw(run.raw_forward.size());
    for (size_t i = 0; i < raw.size(); ++i) raw[i] = run.raw_forward[i] + run.raw_backward[i];
    const double processed = 2 * mean_after_first(raw);
    c.codec_s_per_byte = processed > 0 ? run.mean_compress_s * ranks / processed : 0;
  }
  return c;
}

dlrm::MeasuredCompute measured_compute(const Options& o, const Setup& s, const CodecRun& none,
                                       int ranks) {
  dlrm::MeasuredCompute m;
  m.ranks = ranks;
  m.batch = o.batch;
  m.dense_s = none.mean_dense_s;
  m.embedding_s = none.mean_embedding_s;
  m.max_embedding_bytes = dlrm::max_embedding_bytes(s.config, s.plan, double(o.batch));
  const dlrm::BatchSplit split = dlrm::split_batch(o.batch, ranks);
  m.max_local_samples = *std::max_element(split.counts.begin(), split.counts.end());
  return m;
}

}  // namespace

void run_simulate(App& app, const Options& o, Setup& s) {
  World& world = app.world();
  const sim::HardwareProfile hardware = sim::resolve_profile(o.profile);
  const std::vector<int> ranks = o.sim_ranks.empty() ? std::vector<int>{world.size()} : o.sim_ranks;
  TrainingContext context = prepare_training(app, o, s);
  app.open_results("sim");

  world.printf(
      "# dlrm_a2a simulate: model %s: %s; sharding %s; predicting a global batch of %lld\n",
      o.model.c_str(), s.config.describe().c_str(), o.sharding.c_str(),
      static_cast<long long>(o.predicted_batch()));
  world.printf(
      "# calibration: %d measured steps per codec here, batch %d (%d ranks, %d threads each)\n",
      o.steps, o.batch, world.size(), kernels::threads());
  const Table calibration = make_table(world);
  calibration.print_header();
  std::vector<std::string> codecs = {"none"};
  for (const auto& c : o.codecs)
    if (c != "none" && std::find(codecs.begin(), codecs.end(), c) == codecs.end())
      codecs.push_back(c);
  std::vector<CodecRun> runs;
  for (const auto& codec : codecs)
    runs.push_back(train_codec(app, o, s, context, codec, calibration));
  const CodecRun& none = runs.front();
  world.printf(
      "# measured here, codec none, ms per step (rank means): dense %.3f, embedding %.3f, input "
      "%.3f, a2a forward %.3f, backward %.3f, allreduce %.3f, step %.3f\n",
      1e3 * none.mean_dense_s, 1e3 * none.mean_embedding_s, 1e3 * none.mean_input_s,
      1e3 * none.mean_fwd_s, 1e3 * none.mean_bwd_s, 1e3 * none.mean_allreduce_s,
      1e3 * none.mean_step_s);

  dlrm::StepModelInputs inputs;
  inputs.config = s.config;
  inputs.planner = s.planner;
  inputs.batch = o.predicted_batch();
  inputs.hardware = hardware;
  inputs.optimizer = o.optimizer == "adagrad" ? dlrm::EmbeddingOptimizer::rowwise_adagrad
                                              : dlrm::EmbeddingOptimizer::sgd;
  inputs.compute = dlrm::parse_compute_source(o.sim_compute);
  inputs.measured = measured_compute(o, s, none, world.size());

  world.printf(
      "\n# SIMULATED (not measured): per-step times predicted on profile %s (%d GPUs per node, "
      "inter-node %s: alpha %.1f us, %.1f GB/s); compute from %s; ratios %s, codec rate %s\n",
      hardware.name.c_str(), hardware.gpus_per_node, hardware.inter_node.name.c_str(),
      1e6 * hardware.inter_node.alpha_s, hardware.inter_node.bandwidth_bytes_per_s() / 1e9,
      o.sim_compute == "measured" ? "this run's measured compute, scaled per rank"
                                  : "the profile (GEMM FLOPs, memory bytes)",
      o.sim_ratio > 0 ? "given" : "measured per table here",
      o.sim_codec_GBps > 0 ? "given" : "measured here");
  const Table table = make_simulate_table(world);
  table.print_header();
  if (world.is_root()) {
    for (size_t i = 1; i < runs.size(); ++i) {
      const CodecRun& run = runs[i];
      const dlrm::CompressionModel compression = compression_of(o, s, run, world.size());
      world.printf(
          "# %s: ratio forward %.2f, backward %.2f (%s); codec %.3g GB/s (%s)\n", run.codec.c_str(),
          o.sim_ratio > 0 ? o.sim_ratio : run.ratio_fwd,
          o.sim_ratio > 0 ? o.sim_ratio : run.ratio_bwd,
          o.sim_ratio > 0 ? "given" : "measured here, per table",
          compression.codec_s_per_byte > 0 ? 1e-9 / compression.codec_s_per_byte : INFINITY,
          o.sim_codec_GBps > 0 ? "given" : "measured here");
      for (int n : ranks) {
        SimulatedPoint p;
        p.codec = run.codec;
        p.compression = compression;
        p.step = dlrm::simulate_step(inputs, p.compression, n);
        p.hardware = hardware.name;
        p.gpus_per_node = hardware.gpus_per_node;
        p.compute_source = o.sim_compute;
        p.codec_source = o.sim_codec_GBps > 0 ? "given" : "measured";
        p.ratio_source = o.sim_ratio > 0 ? "given" : "measured";
        p.ratio_forward = o.sim_ratio > 0 ? o.sim_ratio : run.ratio_fwd;
        p.ratio_backward = o.sim_ratio > 0 ? o.sim_ratio : run.ratio_bwd;
        if (n == world.size() && o.predicted_batch() == o.batch) {
          p.measured_step_s = none.mean_step_s;
          p.measured_step_compressed_s = run.mean_step_s;
        }
        print_simulated(table, p);
        record_simulated(app, o, s, p);
      }
    }
  }
  world.printf(
      "# the rows above are SIMULATED; 'meas' columns are this run's measured steps at "
      "its own rank count (N/A elsewhere)\n");
  app.finish();
}

}  // namespace paralab::dlrm_a2a
