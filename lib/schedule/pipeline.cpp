#include "schedule/pipeline.hpp"

#include <algorithm>
#include <string>

#include "core/errors.hpp"

namespace paralab::schedule {

std::vector<PipelineOp> one_f_one_b(int stage, int stages, int micro_batches) {
  if (stages < 1 || micro_batches < 1) {
    throw UsageError("1F1B schedule: stages (" + std::to_string(stages) + ") and micro-batches (" +
                     std::to_string(micro_batches) + ") must be positive");
  }
  if (stage < 0 || stage >= stages) {
    throw UsageError("1F1B schedule: stage " + std::to_string(stage) + " is outside 0.." +
                     std::to_string(stages - 1));
  }
  const int warmup = std::min(stages - 1 - stage, micro_batches);
  std::vector<PipelineOp> ops;
  ops.reserve(2 * static_cast<size_t>(micro_batches));
  for (int i = 0; i < warmup; ++i) ops.push_back({PipelineOp::forward, i});
  for (int i = 0; i < micro_batches - warmup; ++i) {
    ops.push_back({PipelineOp::forward, warmup + i});
    ops.push_back({PipelineOp::backward, i});
  }
  for (int i = micro_batches - warmup; i < micro_batches; ++i) {
    ops.push_back({PipelineOp::backward, i});
  }
  return ops;
}

LayerRange stage_layers(int layers, int stage, int stages) {
  if (stages > layers) {
    throw UsageError("pipeline: pp = " + std::to_string(stages) + " stages exceed the model's " +
                     std::to_string(layers) + " layers (every stage needs at least one layer)");
  }
  if (stage < 0 || stage >= stages) {
    throw UsageError("pipeline: stage " + std::to_string(stage) + " is outside 0.." +
                     std::to_string(stages - 1));
  }
  const int base = layers / stages, extra = layers % stages;
  return {stage * base + std::min(stage, extra), base + (stage < extra ? 1 : 0)};
}

PipelineRole pipeline_role(const Op& op) {
  return static_cast<PipelineRole>(op.ref.role);
}

namespace {

OpRef pipeline_ref(PipelineRole role, size_t micro_batch) {
  return {static_cast<int>(role), -1, static_cast<int>(micro_batch)};
}

// One stage of one replica: its ops in 1F1B order; returns its last compute.
OpId lower_stage(Program& p, const PipelineProgramInputs& in, int replica, int s) {
  const std::vector<PipelineWork>& work = in.replicas[static_cast<size_t>(replica)];
  const int rank = replica * in.stages + s, last = in.stages - 1;
  auto transfer = [&](OpId send, int boundary, double bytes) {
    if (!in.boundary_links.empty())
      p.set_fixed_seconds(rank, send, in.boundary_links[static_cast<size_t>(boundary)].time(bytes));
  };
  OpId compute = kNoOp;
  for (const PipelineOp& op : one_f_one_b(s, in.stages, static_cast<int>(work.size()))) {
    const auto i = static_cast<size_t>(op.micro_batch);
    const double bytes = work[i].send_bytes;
    const std::string name = std::to_string(i);
    std::vector<OpId> input;
    if (op.kind == PipelineOp::forward) {
      if (s > 0)
        input = {p.recv(rank, rank - 1, bytes, 2 * op.micro_batch, {},
                        pipeline_ref(PipelineRole::recv_activation, i), "recv activation " + name)};
      compute = p.compute(rank, "F" + name, work[i].forward, input,
                          pipeline_ref(PipelineRole::forward, i));
      if (s < last)
        transfer(p.send(rank, rank + 1, bytes, 2 * op.micro_batch, {compute},
                        pipeline_ref(PipelineRole::send_activation, i), "send activation " + name),
                 s, bytes);
    } else {
      if (s < last)
        input = {p.recv(rank, rank + 1, bytes, 2 * op.micro_batch + 1, {},
                        pipeline_ref(PipelineRole::recv_gradient, i), "recv gradient " + name)};
      compute = p.compute(rank, "B" + name, work[i].backward, input,
                          pipeline_ref(PipelineRole::backward, i));
      if (s > 0)
        transfer(p.send(rank, rank - 1, bytes, 2 * op.micro_batch + 1, {compute},
                        pipeline_ref(PipelineRole::send_gradient, i), "send gradient " + name),
                 s - 1, bytes);
    }
  }
  return compute;
}

}  // namespace

Program pipeline_program(const PipelineProgramInputs& in) {
  if (in.stages < 1) throw UsageError("pipeline: needs at least one stage");
  if (in.replicas.empty()) throw UsageError("pipeline: needs at least one replica");
  for (const auto& replica : in.replicas)
    if (replica.empty()) throw UsageError("pipeline: every replica needs a micro-batch");
  if (!in.boundary_links.empty() && int(in.boundary_links.size()) != in.stages - 1)
    throw UsageError("pipeline: " + std::to_string(in.stages) + " stages need " +
                     std::to_string(in.stages - 1) + " boundary links, got " +
                     std::to_string(in.boundary_links.size()));
  const int replicas = static_cast<int>(in.replicas.size());
  Program p(replicas * in.stages);
  std::vector<OpId> last(static_cast<size_t>(replicas * in.stages));
  for (int r = 0; r < replicas; ++r)
    for (int s = 0; s < in.stages; ++s) last[size_t(r * in.stages + s)] = lower_stage(p, in, r, s);
  if (in.gradient_allreduce_s > 0)
    for (int s = 0; s < in.stages; ++s) {
      std::vector<int> ranks;
      for (int r = 0; r < replicas; ++r) ranks.push_back(r * in.stages + s);
      const int group = p.add_group(ranks, "stage " + std::to_string(s) + " replicas");
      for (int rank : ranks) {
        const OpId op =
            p.collective(rank, group, sim::Collective::all_reduce, 0, {last[size_t(rank)]},
                         pipeline_ref(PipelineRole::gradient_allreduce, 0), "gradient all-reduce");
        p.set_fixed_seconds(rank, op, in.gradient_allreduce_s);
      }
    }
  return p;
}

}  // namespace paralab::schedule
