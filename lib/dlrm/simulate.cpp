// simulate.cpp: the DLRM step cost model (see simulate.hpp).
#include "dlrm/simulate.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "core/errors.hpp"
#include "dlrm/step_program.hpp"
#include "schedule/play.hpp"
#include "sim/collectives.hpp"
#include "sim/compute.hpp"
#include "sim/links.hpp"

namespace paralab::dlrm {
namespace {

constexpr double kFloatBytes = 4;

AlltoallvBytes zero_bytes(int ranks) {
  AlltoallvBytes b;
  b.send.assign(static_cast<size_t>(ranks), std::vector<double>(static_cast<size_t>(ranks), 0.0));
  return b;
}

double ratio_of(const std::vector<double>& ratios, int table) {
  return ratios.empty() ? 1.0 : ratios[static_cast<size_t>(table)];
}

// Per rank: the floats of pooled embedding its shards produce per sample,
// split by table so that compression ratios can apply per table.
double pooled_bytes(const ShardingPlan& plan, int rank, const std::vector<double>& ratios) {
  double bytes = 0;
  for (int id : plan.rank_shards[static_cast<size_t>(rank)]) {
    const Shard& s = plan.shards[static_cast<size_t>(id)];
    bytes += kFloatBytes * s.cols() / ratio_of(ratios, s.table);
  }
  return bytes;
}

int local_samples_max(const BatchSplit& split) {
  return *std::max_element(split.counts.begin(), split.counts.end());
}

// The compute of the slowest rank (dense on its local slice plus embedding
// on its shards); the two maxima may come from different ranks, which makes
// this an upper bound by at most the smaller part.
void add_compute(const StepModelInputs& in, const ShardingPlan& plan, const BatchSplit& split,
                 SimulatedStep& step) {
  const double samples = local_samples_max(split);
  if (in.compute == ComputeSource::measured) {
    const MeasuredCompute& m = in.measured;
    step.dense_s = m.dense_s * samples / std::max(1, m.max_local_samples);
    const double now = max_embedding_bytes(in.config, plan, static_cast<double>(in.batch));
    step.embedding_s = m.max_embedding_bytes > 0 ? m.embedding_s * now / m.max_embedding_bytes : 0;
  } else {
    const sim::ComputeModel model = sim::compute_model(in.hardware, sim::Precision::fp32);
    const double params = allreduce_floats(in.config, plan);
    step.dense_s = dense_gemm_calls(in.config) * model.kernel_overhead_s +
                   dense_flops(in.config, samples) / model.gemm_flops_per_s +
                   model.memory_s(3 * kFloatBytes * params);
    const double bytes = max_embedding_bytes(in.config, plan, static_cast<double>(in.batch));
    // Replicated tables: every rank pools its own samples.
    double replicated = 0;
    for (int t : plan.data_parallel_tables)
      replicated += kFloatBytes * (3.0 * in.config.pooling[static_cast<size_t>(t)] + 2.0) *
                    in.config.embedding_dim;
    // Two calls: the lookups and the backward with its update.
    step.embedding_s = model.kernel_overhead_s + model.memory_s(bytes + samples * replicated);
  }
  step.compute_s = step.dense_s + step.embedding_s;
}

}  // namespace

double AlltoallvBytes::total() const {
  double sum = 0;
  for (const auto& row : send)
    for (double b : row) sum += b;
  return sum;
}

double alltoallv_s(const sim::HardwareProfile& hardware, const AlltoallvBytes& bytes) {
  std::vector<int> gpus(bytes.send.size());
  std::iota(gpus.begin(), gpus.end(), 0);  // ranks packed node by node
  return sim::alltoallv_time(hardware, bytes.send, gpus);
}

AlltoallvBytes forward_exchange_bytes(const ShardingPlan& plan, const BatchSplit& split,
                                      const std::vector<double>& ratio_per_table) {
  // Rank r sends each peer p its shards' pooled rows for p's samples.
  AlltoallvBytes b = zero_bytes(plan.ranks);
  for (int r = 0; r < plan.ranks; ++r) {
    const double per_sample = pooled_bytes(plan, r, ratio_per_table);
    for (int p = 0; p < plan.ranks; ++p)
      b.send[static_cast<size_t>(r)][static_cast<size_t>(p)] =
          per_sample * split.counts[static_cast<size_t>(p)];
  }
  return b;
}

AlltoallvBytes backward_exchange_bytes(const ShardingPlan& plan, const BatchSplit& split,
                                       const std::vector<double>& ratio_per_table) {
  // The transpose: batch owner p sends each shard holder r the gradients of
  // r's shards for p's samples.
  AlltoallvBytes b = zero_bytes(plan.ranks);
  for (int r = 0; r < plan.ranks; ++r) {
    const double per_sample = pooled_bytes(plan, r, ratio_per_table);
    for (int p = 0; p < plan.ranks; ++p)
      b.send[static_cast<size_t>(p)][static_cast<size_t>(r)] =
          per_sample * split.counts[static_cast<size_t>(p)];
  }
  return b;
}

AlltoallvBytes input_length_bytes(const DlrmConfig& config, const ShardingPlan& plan,
                                  const BatchSplit& split) {
  (void)config;
  AlltoallvBytes b = zero_bytes(plan.ranks);
  for (const Shard& s : plan.shards)
    for (int p = 0; p < plan.ranks; ++p)
      b.send[static_cast<size_t>(p)][static_cast<size_t>(s.rank)] +=
          kFloatBytes * split.counts[static_cast<size_t>(p)];
  return b;
}

AlltoallvBytes input_index_bytes(const DlrmConfig& config, const ShardingPlan& plan,
                                 const BatchSplit& split) {
  AlltoallvBytes b = zero_bytes(plan.ranks);
  for (const Shard& s : plan.shards) {
    const auto t = static_cast<size_t>(s.table);
    const double share = static_cast<double>(s.rows()) / static_cast<double>(config.table_rows[t]);
    for (int p = 0; p < plan.ranks; ++p)
      b.send[static_cast<size_t>(p)][static_cast<size_t>(s.rank)] +=
          kFloatBytes * config.pooling[t] * share * split.counts[static_cast<size_t>(p)];
  }
  return b;
}

AlltoallvBytes square_sum_bytes(const DlrmConfig& config, const ShardingPlan& plan, double batch) {
  const auto n = static_cast<size_t>(plan.ranks);
  AlltoallvBytes bytes;
  bytes.send.assign(n, std::vector<double>(n, 0.0));
  for (size_t t = 0; t < plan.tables.size(); ++t) {
    const TablePlacement& placement = plan.tables[t];
    if (placement.type != ShardingType::column_wise || placement.shards.size() < 2) continue;
    // Expected distinct rows among batch x pooling uniform draws.
    const double rows = static_cast<double>(config.table_rows[t]);
    const double draws = batch * config.pooling[t];
    const double touched = rows * -std::expm1(draws * std::log1p(-1.0 / rows));
    // Each shard sends its sums once to every rank holding the table (its
    // own rank included: that block costs nothing).
    std::vector<size_t> holders;
    for (int id : placement.shards) holders.push_back(size_t(plan.shards[size_t(id)].rank));
    std::sort(holders.begin(), holders.end());
    holders.erase(std::unique(holders.begin(), holders.end()), holders.end());
    for (int id : placement.shards)
      for (size_t to : holders)
        bytes.send[size_t(plan.shards[size_t(id)].rank)][to] += kFloatBytes * touched;
  }
  return bytes;
}

double allreduce_floats(const DlrmConfig& config, const ShardingPlan& plan) {
  double floats = 0;
  auto mlp = [&](int input, const std::vector<int>& widths) {
    int in = input;
    for (int out : widths) {
      floats += static_cast<double>(in) * out + out;
      in = out;
    }
  };
  mlp(config.dense_features, config.bottom_layers);
  mlp(config.interaction_width(), config.top_layers);
  for (int t : plan.data_parallel_tables)
    floats += static_cast<double>(config.table_rows[static_cast<size_t>(t)]) * config.embedding_dim;
  return floats;
}

double dense_flops(const DlrmConfig& config, double samples) {
  double forward = 0;
  auto mlp = [&](int input, const std::vector<int>& widths) {
    int in = input;
    for (int out : widths) {
      forward += 2.0 * samples * in * out;
      in = out;
    }
  };
  mlp(config.dense_features, config.bottom_layers);
  mlp(config.interaction_width(), config.top_layers);
  forward += 2.0 * samples * interaction_pairs(config.features()) * config.embedding_dim;
  return 3 * forward;  // backward: the input and the weight gradients, a forward each
}

int dense_gemm_calls(const DlrmConfig& config) {
  // Forward one GEMM per layer, backward two; the interaction one batched call each way.
  const auto layers = static_cast<int>(config.bottom_layers.size() + config.top_layers.size());
  return 3 * layers + 2;
}

double embedding_bytes(const DlrmConfig& config, const ShardingPlan& plan, int rank, double batch) {
  double floats = 0;  // per sample
  for (int id : plan.rank_shards[static_cast<size_t>(rank)]) {
    const Shard& s = plan.shards[static_cast<size_t>(id)];
    const auto t = static_cast<size_t>(s.table);
    const double share = static_cast<double>(s.rows()) / static_cast<double>(config.table_rows[t]);
    const double lookups = config.pooling[t] * s.cols() * share;
    // Forward: read the rows, write the pooled one; backward: read the
    // pooled gradient, read and write the rows.
    floats += 3 * lookups + 2.0 * s.cols();
  }
  return kFloatBytes * floats * batch;
}

double max_embedding_bytes(const DlrmConfig& config, const ShardingPlan& plan, double batch) {
  double bytes = 0;
  for (int r = 0; r < plan.ranks; ++r)
    bytes = std::max(bytes, embedding_bytes(config, plan, r, batch));
  return bytes;
}

const char* compute_source_name(ComputeSource source) {
  return source == ComputeSource::measured ? "measured" : "profile";
}

ComputeSource parse_compute_source(const std::string& name) {
  if (name == "profile") return ComputeSource::profile;
  if (name == "measured") return ComputeSource::measured;
  throw UsageError("unknown compute source '" + name + "' (expected profile or measured)");
}

void StepModelInputs::validate() const {
  config.validate();
  if (batch < 1) throw UsageError("simulate: the batch must be at least 1");
  if (compute == ComputeSource::measured) {
    if (measured.ranks < 1 || measured.batch < 1 || measured.max_local_samples < 1)
      throw UsageError("simulate: measured compute needs its ranks, batch and local samples");
    if (!(measured.dense_s >= 0) || !(measured.embedding_s >= 0))
      throw UsageError("simulate: measured compute times must be >= 0");
  }
}

SimulatedStep simulate_step(const StepModelInputs& in, const CompressionModel& compression,
                            int ranks) {
  in.validate();
  if (ranks < 1) throw UsageError("simulate: ranks must be at least 1");
  if (ranks > in.batch)
    throw UsageError("simulate: " + std::to_string(ranks) + " ranks are more than the batch of " +
                     std::to_string(in.batch) + " samples: every rank needs a sample");
  const size_t tables = static_cast<size_t>(in.config.tables());
  for (const auto* ratios : {&compression.forward_ratio, &compression.backward_ratio}) {
    if (!ratios->empty() && ratios->size() != tables)
      throw UsageError("simulate: one compression ratio per table is needed");
    for (double r : *ratios)
      if (!(r > 0) || !std::isfinite(r))
        throw UsageError("simulate: compression ratios must be positive");
  }
  if (!(compression.codec_s_per_byte >= 0))
    throw UsageError("simulate: the codec time per byte must be >= 0");

  const ShardingPlan plan = plan_sharding(in.config, ranks, in.planner);
  const BatchSplit split = split_batch(in.batch, ranks);
  SimulatedStep step;
  step.ranks = ranks;
  add_compute(in, plan, split, step);

  const sim::HardwareProfile& hw = in.hardware;
  step.input_s = alltoallv_s(hw, input_length_bytes(in.config, plan, split)) +
                 alltoallv_s(hw, input_index_bytes(in.config, plan, split));
  const sim::GroupShape group = sim::strided_group(hw, ranks);
  auto collective = [&](sim::Collective kind, double bytes) {
    return sim::collective_time(hw, kind, group, bytes).seconds;
  };
  step.allreduce_s =
      collective(sim::Collective::all_reduce, kFloatBytes * allreduce_floats(in.config, plan)) +
      collective(sim::Collective::all_reduce, 8);  // the loss, one double
  if (in.optimizer == EmbeddingOptimizer::rowwise_adagrad)
    step.optimizer_s = alltoallv_s(hw, square_sum_bytes(in.config, plan, double(in.batch)));

  const AlltoallvBytes forward = forward_exchange_bytes(plan, split);
  const AlltoallvBytes backward = backward_exchange_bytes(plan, split);
  step.a2a_forward_s = alltoallv_s(hw, forward);
  step.a2a_backward_s = alltoallv_s(hw, backward);

  const AlltoallvBytes forward_c = forward_exchange_bytes(plan, split, compression.forward_ratio);
  const AlltoallvBytes backward_c =
      backward_exchange_bytes(plan, split, compression.backward_ratio);
  // The byte counts go first, one u64 per peer: an alltoall of 8n bytes; after
  // the bytes the ranks agree on whether every block decoded (an i32 all-reduce).
  const double framing_s = collective(sim::Collective::all_to_all, 8.0 * ranks) +
                           collective(sim::Collective::all_reduce, 4);
  step.a2a_forward_compressed_s = framing_s + alltoallv_s(hw, forward_c);
  step.a2a_backward_compressed_s = framing_s + alltoallv_s(hw, backward_c);
  // Codec: the slowest rank compresses what it sends and decompresses what
  // it receives, raw bytes, both directions.
  double codec_bytes = 0;
  for (int r = 0; r < ranks; ++r) {
    double bytes = 0;
    for (const AlltoallvBytes* b : {&forward, &backward})
      for (int p = 0; p < ranks; ++p)
        bytes += b->send[static_cast<size_t>(r)][static_cast<size_t>(p)] +
                 b->send[static_cast<size_t>(p)][static_cast<size_t>(r)];
    codec_bytes = std::max(codec_bytes, bytes);
  }
  step.codec_s = codec_bytes * compression.codec_s_per_byte;
  step.raw_bytes = forward.total() + backward.total();
  step.compressed_bytes = forward_c.total() + backward_c.total();

  StepProgramInputs program;
  program.config = &in.config;
  program.plan = &plan;
  program.split = split;
  program.optimizer = in.optimizer;
  program.compression = compression;
  program.measured = in.compute == ComputeSource::measured ? &in.measured : nullptr;
  const schedule::PlayOptions options{sim::Precision::fp32, hw.sm_count == 0};
  step.played_step_s = schedule::play(step_program(program), hw, options).makespan_s();
  program.compressed = true;
  step.played_step_compressed_s = schedule::play(step_program(program), hw, options).makespan_s();
  return step;
}

}  // namespace paralab::dlrm
