// The 4D-parallel training step; see engine4d.hpp.
#include "parallel/engine4d.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <map>
#include <stdexcept>
#include <string>

#include "core/errors.hpp"
#include "core/timer.hpp"
#include "model/model.hpp"
#include "schedule/pipeline.hpp"

namespace paralab::parallel {

namespace {

size_t idx(int64_t row, int64_t width) {
  return static_cast<size_t>(row) * static_cast<size_t>(width);
}

// MPI tags of micro-batch i's activation (forward) and its gradient (backward).
int forward_tag(int i) {
  return 2 * i;
}
int backward_tag(int i) {
  return 2 * i + 1;
}

int world_size(MPI_Comm comm) {
  int n = 0;
  MPI_Comm_size(comm, &n);
  return n;
}

// Everything the constructor can check before it communicates, so that bad
// input throws on every rank at the same point.
Grid4 checked(const Grid4& grid, MPI_Comm world, const model::ModelConfig& config) {
  validate(grid, world_size(world));
  make_shard_plan(config, grid.tp, 0, grid.pp, 0);  // throws for an impossible split
  return grid;
}

std::vector<GridDim> grid_dims(const Grid4& g) {
  return {{"tp", g.tp}, {"cp", g.cp}, {"pp", g.pp}, {"dp", g.dp}};
}

int64_t counted(std::span<const int32_t> targets) {
  int64_t n = 0;
  for (int32_t t : targets) n += t >= 0;
  return n;
}

std::string micro_batch_name(size_t i) {
  return "4D step: micro-batch " + std::to_string(i) + ": ";
}

}  // namespace

std::string Grid4::describe() const {
  return "tp=" + std::to_string(tp) + " x cp=" + std::to_string(cp) +
         " x pp=" + std::to_string(pp) + " x dp=" + std::to_string(dp);
}

void validate(const Grid4& g, int world_size) {
  if (g.tp < 1 || g.cp < 1 || g.pp < 1 || g.dp < 1) {
    throw UsageError("4D grid " + g.describe() + ": every size must be at least 1");
  }
  if (g.size() != world_size) {
    throw UsageError("4D grid " + g.describe() + " needs " + std::to_string(g.size()) +
                     " ranks, but the world has " + std::to_string(world_size));
  }
}

// One micro-batch between its forward and its backward on this stage, and
// the buffers a later micro-batch reuses.
struct Engine4D::InFlight {
  std::vector<float> x;  // the stage's output activation (sent on), then its gradient
  std::vector<ShardedLayer::Saved> saved;  // per local layer
  // Last stage: the head's saved values and d(loss)/d(logits).
  std::vector<float> x_final, rstd_final, logits;
  model::Activation xn_final;
  comm::Request send;  // the pending send of x, if any
};

Engine4D::Engine4D(MPI_Comm world, const model::ModelConfig& config, Grid4 grid,
                   model::Precision precision, uint64_t seed, const model::AdamWConfig& adamw)
    : grid_(checked(grid, world, config)),
      config_(config),
      process_grid_(world, grid_dims(grid_)),
      cp_rank_(process_grid_.coord("cp")),
      dp_rank_(process_grid_.coord("dp")),
      plan_(make_shard_plan(config, grid_.tp, process_grid_.coord("tp"), grid_.pp,
                            process_grid_.coord("pp"))),
      grid_comm_(comm::make_mpi_communicator(process_grid_.comm())),
      tp_comm_(comm::make_mpi_communicator(process_grid_.comm("tp"))),
      cp_comm_(comm::make_mpi_communicator(process_grid_.comm("cp"))),
      pp_comm_(comm::make_mpi_communicator(process_grid_.comm("pp"))),
      grad_comm_(comm::make_mpi_communicator(process_grid_.make_sub_comm({"cp", "dp"}).get())),
      norm_comm_(comm::make_mpi_communicator(process_grid_.make_sub_comm({"tp", "pp"}).get())),
      shards_(local_tensors(plan_)),
      params_(precision),
      tp_group_(*tp_comm_),
      cp_attention_(*cp_comm_, plan_.heads.count, plan_.kv_heads.count, config.head_dim()),
      optimizer_(adamw, seed) {
  const int d = config_.d_model;
  if (plan_.has_embedding()) {
    embedding_ = std::make_unique<model::Embedding>(params_, "embed.weight", config_.vocab, d);
  }
  for (int l = plan_.layers.first; l < plan_.layers.first + plan_.layers.count; ++l) {
    layers_.push_back(std::make_unique<ShardedLayer>(params_, plan_, l));
  }
  if (plan_.has_head()) {
    final_norm_ = std::make_unique<model::RmsNorm>(params_, "final_norm.gain", d, config_.norm_eps);
    lm_head_ = std::make_unique<model::Linear>(params_, "lm_head.weight", d, config_.vocab);
  }
  // The registry must hold exactly the planned shards, in order.
  if (params_.count() != shards_.size()) throw std::logic_error("Engine4D: shard plan mismatch");
  for (size_t k = 0; k < shards_.size(); ++k) {
    if (params_[k].name() != shards_[k].name || params_[k].size() != shards_[k].local_size()) {
      throw std::logic_error("Engine4D: tensor " + params_[k].name() + " does not match its plan");
    }
  }
  initialise(seed);
}

// Pending sends complete in their requests' destructors, before the
// communicators they run on go (declared earlier, destroyed later).
Engine4D::~Engine4D() = default;

// Each matrix shard is cut from the full tensor Model would initialise
// (same seed, name and element index); gains are 1 already (RmsNorm).
void Engine4D::initialise(uint64_t seed) {
  for (size_t k = 0; k < shards_.size(); ++k) {
    model::Parameter& p = params_[k];
    if (!p.decays()) continue;
    const TensorShard& shard = shards_[k];
    model::Parameters full(model::Precision::fp32);
    model::Parameter& f = full.add(shard.name, {shard.full_rows, shard.full_cols});
    full.init_normal(f, seed, model::initial_std(config_, shard.name));
    const std::span<const float> values = f.values();
    for (size_t i = 0; i < p.size(); ++i) p.set(i, values[shard.full_index(i)]);
  }
}

void Engine4D::validate_step(std::span<const TrainMicroBatch> step) const {
  if (step.empty()) throw UsageError("4D step: no micro-batches");
  if (step.size() % static_cast<size_t>(grid_.dp) != 0) {
    throw UsageError("4D step: " + std::to_string(step.size()) +
                     " micro-batches do not divide over dp = " + std::to_string(grid_.dp) +
                     " replicas");
  }
  for (size_t i = 0; i < step.size(); ++i) {
    const TrainMicroBatch& mb = step[i];
    if (mb.tokens.size() > static_cast<size_t>(INT_MAX)) {
      throw UsageError(micro_batch_name(i) + "too many tokens");
    }
    if (mb.tokens.empty() && mb.targets.empty()) continue;  // padding: skipped
    const std::vector<int64_t>* starts = &mb.doc_starts;
    model::Batch batch{1, static_cast<int>(mb.tokens.size()), mb.tokens, mb.targets,
                       std::span<const std::vector<int64_t>>(starts, 1)};
    try {
      model::validate(batch, config_);
      if (mb.shards.empty() && grid_.cp != 1) {
        throw UsageError("no CP shards, but cp = " + std::to_string(grid_.cp));
      }
      if (!mb.shards.empty() && static_cast<int>(mb.shards.size()) != grid_.cp) {
        throw UsageError("CP shards for " + std::to_string(mb.shards.size()) +
                         " ranks, but cp = " + std::to_string(grid_.cp));
      }
      // CpLayout checks that the shards cover the sequence exactly once.
      if (!mb.shards.empty()) CpLayout(mb.doc_starts, batch.seq, mb.shards);
    } catch (const UsageError& e) {
      throw UsageError(micro_batch_name(i) + e.what());
    }
  }
}

StepReport Engine4D::forward_backward(std::span<const TrainMicroBatch> step) {
  Stopwatch step_watch;
  validate_step(step);
  StepReport report;
  for (const TrainMicroBatch& mb : step) {
    report.tokens += static_cast<int64_t>(mb.tokens.size());
    report.counted_tokens += counted(mb.targets);
  }
  const size_t m = step.size() / static_cast<size_t>(grid_.dp);
  const std::span<const TrainMicroBatch> mine = step.subspan(dp_rank_ * m, m);
  // Empty micro-batches (padding when the data ran out) skip the pipeline.
  std::vector<LocalSequence> local;
  std::vector<size_t> slots;  // local[k] is micro-batch slots[k] of this replica
  report.local_tokens.assign(m, 0);
  for (size_t i = 0; i < m; ++i) {
    const TrainMicroBatch& mb = mine[i];
    if (mb.tokens.empty()) continue;
    const packing::CpShards whole{{packing::TokenRange{0, static_cast<int64_t>(mb.tokens.size())}}};
    local.push_back(make_local_sequence(mb.tokens, mb.targets, mb.doc_starts,
                                        mb.shards.empty() ? whole : mb.shards, cp_rank_));
    slots.push_back(i);
    report.local_tokens[i] = local.back().n;
  }

  params_.zero_grads();
  tp_group_.reset_timing();
  cp_attention_.reset_timing();
  loss_sum_ = 0;
  Stopwatch pipeline_watch;
  report.forward_s.assign(m, 0.0);
  report.backward_s.assign(m, 0.0);
  run_pipeline(local, slots, static_cast<double>(report.counted_tokens), report);
  report.pipeline_s = pipeline_watch.seconds();
  double compute = 0;
  for (size_t i = 0; i < m; ++i) compute += report.forward_s[i] + report.backward_s[i];
  report.bubble_s = std::max(0.0, report.pipeline_s - compute);
  report.tp_comm_s = tp_group_.seconds();
  const CpAttentionTiming& cp = cp_attention_.total_timing();
  report.cp_comm_s = cp.gather_s + cp.reduce_scatter_s;

  // One flat all-reduce: each parameter's gradient summed over the tokens of
  // the cp ranks and the micro-batches of the dp replicas.
  Stopwatch dp_watch;
  if (grid_.cp * grid_.dp > 1) {
    std::span<float> grads = params_.grads();
    grad_comm_->allreduce(grads.data(), grads.data(), grads.size(), DType::f32,
                          comm::ReduceOp::sum);
  }
  report.dp_comm_s = dp_watch.seconds();

  // The last stage's tp rank 0 of every (cp, dp) holds a share of the loss.
  grid_comm_->allreduce(&loss_sum_, &loss_sum_, 1, DType::f64, comm::ReduceOp::sum);
  report.loss =
      report.counted_tokens > 0 ? loss_sum_ / static_cast<double>(report.counted_tokens) : 0.0;
  report.step_s = step_watch.seconds();
  return report;
}

StepReport Engine4D::train_step(std::span<const TrainMicroBatch> step, float lr, float clip) {
  Stopwatch step_watch;
  StepReport report = forward_backward(step);
  Stopwatch update_watch;
  report.grad_norm = clip_gradients(clip);
  optimizer_.step(params_, lr);
  report.optimizer_s = update_watch.seconds();
  report.step_s = step_watch.seconds();
  return report;
}

// The norm over every parameter exactly once: after the cp x dp all-reduce,
// the ranks of one (cp, dp) coordinate hold all gradients between them, the
// tp-replicated tensors once per tp rank (counted on tp rank 0 only).
double Engine4D::clip_gradients(float clip) {
  double sum = 0;
  for (size_t k = 0; k < shards_.size(); ++k) {
    if (shards_[k].split == TensorShard::whole && plan_.tp_rank != 0) continue;
    for (float g : params_[k].grad()) sum += double{g} * g;
  }
  norm_comm_->allreduce(&sum, &sum, 1, DType::f64, comm::ReduceOp::sum);
  const double norm = std::sqrt(sum);
  if (clip > 0 && norm > clip) {
    const float scale = static_cast<float>(clip / norm);  // as model::clip_grad_norm
    for (float& g : params_.grads()) g *= scale;
  }
  return norm;
}

// --- the pipeline -------------------------------------------------------------------

void Engine4D::run_pipeline(std::span<const LocalSequence> local, std::span<const size_t> slots,
                            double normalizer, StepReport& report) {
  const int m = static_cast<int>(local.size());
  if (m == 0) return;
  in_flight_.clear();
  in_flight_.resize(m);
  // This stage's operations of the pipeline program: the 1F1B order with its
  // receives and sends, as wlb's simulation plays it. Costs do not matter
  // here, only the operations and their order.
  schedule::PipelineProgramInputs pipeline;
  pipeline.stages = plan_.pp;
  pipeline.replicas.assign(1, std::vector<schedule::PipelineWork>(static_cast<size_t>(m)));
  const schedule::Program program = schedule::pipeline_program(pipeline);
  using Role = schedule::PipelineRole;
  for (const schedule::Op& op : program.ops(plan_.stage)) {
    const int i = op.ref.item;
    switch (schedule::pipeline_role(op)) {
      case Role::recv_activation:
        receive_activation(i, local[i], report);
        break;
      case Role::forward:
        report.forward_s[slots[i]] = forward(i, local[i], normalizer, report);
        break;
      case Role::send_activation:
        send_activation(i, report);
        break;
      case Role::recv_gradient:
        receive_gradient(i, report);
        break;
      case Role::backward:
        report.backward_s[slots[i]] = backward(i, local[i]);
        if (plan_.has_embedding()) release(i);  // the first stage sends nothing back
        break;
      case Role::send_gradient:
        send_gradient(i, report);
        break;
      case Role::gradient_allreduce:
        break;  // not in this program: forward_backward reduces over cp x dp after it
    }
  }
  for (auto& state : spare_) wait_send(*state, report);
}

std::unique_ptr<Engine4D::InFlight> Engine4D::acquire() {
  if (spare_.empty()) return std::make_unique<InFlight>();
  std::unique_ptr<InFlight> state = std::move(spare_.back());
  spare_.pop_back();
  return state;
}

void Engine4D::wait_send(InFlight& state, StepReport& report) {
  if (!state.send.active()) return;
  Stopwatch watch;
  state.send.wait();
  report.pp_comm_s += watch.seconds();
}

Engine4D::InFlight& Engine4D::start_forward(int i, const LocalSequence& seq, StepReport& report) {
  std::unique_ptr<InFlight> state = acquire();
  wait_send(*state, report);  // its buffer is about to be overwritten
  state->x.resize(idx(seq.n, config_.d_model));
  in_flight_[i] = std::move(state);
  return *in_flight_[i];
}

void Engine4D::release(int i) {
  spare_.push_back(std::move(in_flight_[i]));
}

void Engine4D::receive_activation(int i, const LocalSequence& seq, StepReport& report) {
  std::vector<float>& x = start_forward(i, seq, report).x;
  Stopwatch watch;
  pp_comm_->recv(x.data(), x.size(), DType::f32, plan_.stage - 1, forward_tag(i));
  report.pp_comm_s += watch.seconds();
}

double Engine4D::forward(int i, const LocalSequence& seq, double normalizer, StepReport& report) {
  InFlight& state = in_flight_[i] ? *in_flight_[i] : start_forward(i, seq, report);
  const int n = seq.n;
  const size_t count = idx(n, config_.d_model);
  std::vector<float>& x = state.x;
  Stopwatch compute;
  if (plan_.has_embedding()) embedding_->forward(seq.tokens, x.data());
  state.saved.resize(layers_.size());
  for (size_t l = 0; l < layers_.size(); ++l) {
    layers_[l]->forward(x.data(), seq, state.saved[l], tp_group_, cp_attention_);
  }
  if (plan_.has_head()) {
    // As model::Model: final norm, LM head, and the cross-entropy with its
    // gradient (scaled by 1 / the step's counted tokens) right away.
    const bool use_bf16 = model::computes_in_bf16(params_.precision());
    state.x_final.assign(x.begin(), x.end());
    state.rstd_final.resize(n);
    final_norm_->forward(state.x_final.data(), n, state.xn_final.reset(count),
                         state.rstd_final.data());
    state.xn_final.seal(use_bf16);
    state.logits.resize(idx(n, config_.vocab));
    lm_head_->forward(state.xn_final.operand(), n, state.logits.data());
    const double scale = normalizer > 0 ? 1.0 / normalizer : 0.0;
    const model::LossSum loss =
        model::cross_entropy(state.logits.data(), seq.targets, config_.vocab, true, scale);
    if (plan_.tp_rank == 0) loss_sum_ += loss.sum;
  }
  return compute.seconds();
}

void Engine4D::send_activation(int i, StepReport& report) {
  InFlight& state = *in_flight_[i];
  Stopwatch watch;
  state.send =
      pp_comm_->isend(state.x.data(), state.x.size(), DType::f32, plan_.stage + 1, forward_tag(i));
  report.pp_comm_s += watch.seconds();
}

void Engine4D::receive_gradient(int i, StepReport& report) {
  InFlight& state = *in_flight_[i];
  wait_send(state, report);  // the activation went out of this buffer
  Stopwatch watch;
  pp_comm_->recv(state.x.data(), state.x.size(), DType::f32, plan_.stage + 1, backward_tag(i));
  report.pp_comm_s += watch.seconds();
}

double Engine4D::backward(int i, const LocalSequence& seq) {
  InFlight& state = *in_flight_[i];
  const int n = seq.n;
  const size_t count = idx(n, config_.d_model);
  std::vector<float>& dx = state.x;
  Stopwatch compute;
  if (plan_.has_head()) {
    const bool use_bf16 = model::computes_in_bf16(params_.precision());
    dxn_.resize(count);
    lm_head_->backward(state.xn_final.operand(),
                       model::as_operand(state.logits, use_bf16, scratch_), n, dxn_.data());
    final_norm_->backward(state.x_final.data(), state.rstd_final.data(), dxn_.data(), n, dx.data(),
                          false);
  }
  for (size_t l = layers_.size(); l-- > 0;) {
    layers_[l]->backward(dx.data(), seq, state.saved[l], tp_group_, cp_attention_);
  }
  if (plan_.has_embedding()) embedding_->backward(seq.tokens, dx.data());
  return compute.seconds();
}

void Engine4D::send_gradient(int i, StepReport& report) {
  InFlight& state = *in_flight_[i];
  Stopwatch watch;
  state.send =
      pp_comm_->isend(state.x.data(), state.x.size(), DType::f32, plan_.stage - 1, backward_tag(i));
  report.pp_comm_s += watch.seconds();
  release(i);
}

// --- gathering the full model (tests) -----------------------------------------------

std::vector<float> Engine4D::gather_full(bool gradients) {
  const std::vector<FullTensor> full = full_tensors(config_);
  std::map<std::string, size_t> offset_of;
  for (const FullTensor& t : full) offset_of[t.name] = t.offset;
  std::vector<float> out(full.back().offset + full.back().size(), 0.0f);
  // Every element is written by exactly one rank (cp = dp = 0; tp rank 0 for
  // tp-replicated tensors), so the sum is exact.
  if (cp_rank_ == 0 && dp_rank_ == 0) {
    for (size_t k = 0; k < shards_.size(); ++k) {
      const TensorShard& shard = shards_[k];
      if (shard.split == TensorShard::whole && plan_.tp_rank != 0) continue;
      const size_t offset = offset_of.at(shard.name);
      const model::Parameter& p = params_[k];
      const std::span<const float> local = gradients ? p.grad() : p.values();
      for (size_t i = 0; i < local.size(); ++i) out[offset + shard.full_index(i)] = local[i];
    }
  }
  grid_comm_->allreduce(out.data(), out.data(), out.size(), DType::f32, comm::ReduceOp::sum);
  return out;
}

std::vector<float> Engine4D::gather_full_gradients() {
  return gather_full(true);
}

std::vector<float> Engine4D::gather_full_weights() {
  return gather_full(false);
}

}  // namespace paralab::parallel
