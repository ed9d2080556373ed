// emb_cache's memory model and simulated step (simulate.hpp).
#include "emb/simulate.hpp"

#include <algorithm>
#include <numeric>
#include <stdexcept>

#include "dlrm/simulate.hpp"
#include "schedule/play.hpp"

namespace paralab::emb {
namespace {

constexpr double kFloatBytes = 4;

schedule::OpRef ref(EmbStepRole role) {
  return {static_cast<int>(role), -1, -1};
}

}  // namespace

MemoryUse table_memory(int64_t rows, int dim, const SimTables& tables) {
  const CacheGeometry g = cache_geometry(rows, tables.cache);
  MemoryUse m;
  m.storage = rows * static_cast<int64_t>(row_bytes(tables.format, dim));
  m.qparams = rows * static_cast<int64_t>(row_qparam_bytes(tables.format));
  m.cache_data = cache_data_bytes(g.slots(), dim);
  m.cache_tags = cache_tag_bytes(g.slots());
  m.lfu_counts = cache_count_bytes(rows, g.slots(), tables.cache.policy);
  m.optimizer = tables.adagrad ? rows * static_cast<int64_t>(sizeof(float)) : 0;
  return m;
}

dlrm::DlrmConfig zionex_12t(int pooling) {
  dlrm::DlrmConfig c;
  c.dense_features = 13;
  c.embedding_dim = 256;
  c.bottom_layers = {512, 256, 256};
  c.top_layers = {512, 256, 1};
  c.table_rows.assign(256, 183'105'469);
  c.pooling.assign(256, pooling);
  c.validate();
  return c;
}

dlrm::PlannerOptions memory_planner() {
  dlrm::PlannerOptions o;
  o.type = dlrm::ShardingType::table_wise;
  o.cost = dlrm::ShardCost::memory;
  return o;
}

const char* placement_name(GpuPlacement p) {
  return p == GpuPlacement::hbm ? "hbm" : "cached";
}

std::vector<GpuMemory> gpu_memory(const dlrm::DlrmConfig& config, const dlrm::ShardingPlan& plan,
                                  const SimTables& tables, double hbm_bytes) {
  std::vector<GpuMemory> gpus(static_cast<size_t>(plan.ranks));
  for (int r = 0; r < plan.ranks; ++r) {
    GpuMemory& g = gpus[static_cast<size_t>(r)];
    for (int id : plan.rank_shards[static_cast<size_t>(r)]) {
      const dlrm::Shard& s = plan.shards[static_cast<size_t>(id)];
      g.use += table_memory(s.rows(), s.cols(), tables);
    }
    for (int t : plan.data_parallel_tables)
      g.use +=
          table_memory(config.table_rows[static_cast<size_t>(t)], config.embedding_dim, tables);
    if (static_cast<double>(g.use.total()) <= hbm_bytes) {
      g.placement = GpuPlacement::hbm;
      g.hbm_needed = g.use.total();
      g.host_needed = 0;
    } else {
      g.placement = GpuPlacement::cached;
      g.host_needed = g.use.storage;
      g.hbm_needed = g.use.total() - g.use.storage;
    }
    g.fits = static_cast<double>(g.hbm_needed) <= hbm_bytes;
  }
  return gpus;
}

namespace {

// One GPU's embedding traffic per step, bytes.
struct EmbeddingBytes {
  double lookup_hbm = 0, lookup_host = 0, backward_hbm = 0, backward_host = 0;
};

EmbeddingBytes embedding_bytes(const StepSimInputs& in, int r) {
  const dlrm::DlrmConfig& config = *in.config;
  const dlrm::ShardingPlan& plan = *in.plan;
  const bool on_hbm = in.memory[static_cast<size_t>(r)].placement == GpuPlacement::hbm;
  EmbeddingBytes b;
  auto add = [&](int table, int64_t rows, int cols, double samples) {
    const auto t = static_cast<size_t>(table);
    const double share = double(rows) / double(config.table_rows[t]);
    const double lookups = samples * config.pooling[t] * share;
    const double hits = lookups * in.hit_rate[t], misses = lookups - hits;
    const double fp32_row = kFloatBytes * cols;
    const double stored = static_cast<double>(row_bytes(in.tables.format, cols));
    b.lookup_hbm += hits * fp32_row + samples * fp32_row;
    b.backward_hbm += samples * fp32_row + 2 * hits * fp32_row;
    if (in.tables.adagrad) b.backward_hbm += 2 * kFloatBytes * lookups;
    if (on_hbm) {
      b.lookup_hbm += misses * stored;
      b.backward_hbm += 2 * misses * stored;
    } else {
      b.lookup_host += misses * stored;
      b.backward_host += misses * stored;
    }
  };
  for (int id : plan.rank_shards[static_cast<size_t>(r)]) {
    const dlrm::Shard& s = plan.shards[static_cast<size_t>(id)];
    add(s.table, s.rows(), s.cols(), double(in.split.total));
  }
  for (int t : plan.data_parallel_tables)
    add(t, config.table_rows[static_cast<size_t>(t)], config.embedding_dim,
        double(in.split.counts[static_cast<size_t>(r)]));
  return b;
}

void check(const StepSimInputs& in) {
  if (in.config == nullptr || in.plan == nullptr)
    throw std::invalid_argument("emb::step_program: config and plan are needed");
  const auto ranks = static_cast<size_t>(in.plan->ranks);
  if (in.memory.size() != ranks || in.split.counts.size() != ranks)
    throw std::invalid_argument("emb::step_program: one memory entry and batch slice per GPU");
  if (in.hit_rate.size() != static_cast<size_t>(in.config->tables()))
    throw std::invalid_argument("emb::step_program: one hit rate per table is needed");
  for (double h : in.hit_rate)
    if (!(h >= 0 && h <= 1))
      throw std::invalid_argument("emb::step_program: hit rate outside [0, 1]");
  if (!(in.host_bytes_per_s > 0))
    throw std::invalid_argument("emb::step_program: the host bandwidth must be positive");
}

}  // namespace

schedule::Program step_program(const StepSimInputs& in) {
  check(in);
  const dlrm::DlrmConfig& config = *in.config;
  const dlrm::ShardingPlan& plan = *in.plan;
  const int ranks = plan.ranks;
  schedule::Program program(ranks);
  std::vector<int> all(static_cast<size_t>(ranks));
  std::iota(all.begin(), all.end(), 0);
  const int world = program.add_group(all, "world");
  const dlrm::AlltoallvBytes lengths = dlrm::input_length_bytes(config, plan, in.split);
  const dlrm::AlltoallvBytes indices = dlrm::input_index_bytes(config, plan, in.split);
  const dlrm::AlltoallvBytes forward = dlrm::forward_exchange_bytes(plan, in.split);
  const dlrm::AlltoallvBytes backward = dlrm::backward_exchange_bytes(plan, in.split);
  const double allreduce_bytes = kFloatBytes * dlrm::allreduce_floats(config, plan);
  const int layers = int(config.bottom_layers.size() + config.top_layers.size());
  for (int r = 0; r < ranks; ++r) {
    const auto me = static_cast<size_t>(r);
    const EmbeddingBytes e = embedding_bytes(in, r);
    const double flops = dlrm::dense_flops(config, in.split.counts[me]);
    // Data dependencies (a GPU's compute and comm streams overlap otherwise).
    program.alltoallv(r, world, lengths.send[me], {}, ref(EmbStepRole::input), "input lengths");
    const schedule::OpId idx =
        program.alltoallv(r, world, indices.send[me], {}, ref(EmbStepRole::input), "input indices");
    std::vector<schedule::OpId> lookups{program.compute(r, "lookup (HBM)",
                                                        schedule::memory_cost(e.lookup_hbm), {idx},
                                                        ref(EmbStepRole::lookup_hbm))};
    if (e.lookup_host > 0)
      lookups.push_back(program.compute(r, "lookup (host)",
                                        schedule::fixed_cost(e.lookup_host / in.host_bytes_per_s),
                                        {idx}, ref(EmbStepRole::lookup_host)));
    const schedule::OpId fwd =
        program.alltoallv(r, world, forward.send[me], lookups, ref(EmbStepRole::forward_exchange),
                          "forward exchange");
    program.compute(r, "dense forward", schedule::gemm_cost(flops / 3, 0, layers + 1), {fwd},
                    ref(EmbStepRole::dense));
    const schedule::OpId dense_bwd =
        program.compute(r, "dense backward", schedule::gemm_cost(2 * flops / 3, 0, 2 * layers + 1),
                        {}, ref(EmbStepRole::dense));
    const schedule::OpId bwd =
        program.alltoallv(r, world, backward.send[me], {dense_bwd},
                          ref(EmbStepRole::backward_exchange), "backward exchange");
    std::vector<schedule::OpId> updates{program.compute(r, "backward (HBM)",
                                                        schedule::memory_cost(e.backward_hbm),
                                                        {bwd}, ref(EmbStepRole::backward_hbm))};
    if (e.backward_host > 0)
      updates.push_back(program.compute(r, "backward (host)",
                                        schedule::fixed_cost(e.backward_host / in.host_bytes_per_s),
                                        {bwd}, ref(EmbStepRole::backward_host)));
    updates.push_back(program.collective(r, world, sim::Collective::all_reduce, allreduce_bytes,
                                         {dense_bwd}, ref(EmbStepRole::allreduce),
                                         "gradient all-reduce"));
    program.collective(r, world, sim::Collective::all_reduce, 8, {}, ref(EmbStepRole::allreduce),
                       "loss all-reduce");
    program.compute(r, "update", schedule::memory_cost(3 * allreduce_bytes), updates,
                    ref(EmbStepRole::update));
  }
  return program;
}

SimulatedEmbStep simulate_step(const StepSimInputs& in, const sim::HardwareProfile& hardware) {
  const schedule::Program program = step_program(in);
  const schedule::PlayOptions options{sim::Precision::fp32, hardware.sm_count == 0};
  const schedule::Played played = schedule::play(program, hardware, options);
  SimulatedEmbStep s;
  s.gpus = program.ranks();
  s.step_s = played.makespan_s();
  s.role_s.assign(static_cast<size_t>(EmbStepRole::count), 0.0);
  for (int r = 0; r < program.ranks(); ++r) {
    std::vector<double> mine(s.role_s.size(), 0.0);
    const auto& ops = program.ops(r);
    for (schedule::OpId id = 0; id < ops.size(); ++id)
      if (ops[id].ref.role >= 0)
        mine[static_cast<size_t>(ops[id].ref.role)] += played.duration_s(r, id);
    for (size_t k = 0; k < mine.size(); ++k) s.role_s[k] = std::max(s.role_s[k], mine[k]);
  }
  return s;
}

}  // namespace paralab::emb
