// error_bounds.hpp: the dual-level adaptive error bounds of issue 5 (Feng et
// al., SC'24) for the compressed embedding exchange (compressed_exchange.hpp).
//
// bound(table, iteration, direction) = base(direction) x class_multiplier(table)
//                                      x schedule.multiplier(iteration)
//
// Iteration level (IterationSchedule): a multiplier >= 1 that decays to 1,
// so early training, which tolerates noise, sends coarser data. t is the
// iteration (0-based), s = start_multiplier >= 1, k = decay_steps >= 1:
//   constant  1
//   step      max(1, s x 2^-floor(t / k))           (halves every k iterations)
//   linear    s + (1 - s) x min(1, t / k)           (s at t = 0, 1 from t = k on)
//   log       max(1, s / (1 + log_rate x ln(1 + t / k)))
//
// Table level (classes): each table is tight, base or loose (multipliers
// 0.5 / 1 / 2 by default), from its measured sensitivity:
// measure_table_sensitivity() perturbs one table's pooled embeddings at a
// time with uniform noise in [-eb, eb] (a model of the compressor's error:
// the quantiser's error is close to uniform in the bound) on a calibration
// batch of the single-rank Dlrm and reports the mean over the samples of
// |loss_i(perturbed) - loss_i(clean)| (BCE, nats), averaged over `repeats`
// noise draws. The per-sample absolute change, not the change of the mean
// loss, because the latter cancels to ~0 for zero-mean noise. assign_classes()
// then ranks the tables: by tertiles (the least sensitive third loose, the
// most sensitive third tight; ties by table id), or by thresholds relative to
// the median sensitivity (> high x median tight, < low x median loose).
//
// Determinism: the noise is counter-based (seed, table, repeat, element) and
// the MLPs run batch-invariant (a copy of them), so every rank computes the
// same numbers from the same model and batch; agree_on_rank0() makes it
// exact anyway (one allreduce), so the classes are identical on all ranks.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "comm/comm.hpp"
#include "dlrm/model.hpp"
#include "kernels/compress.hpp"

namespace paralab::dlrm {

enum class ScheduleKind { constant, step, linear, log };
const char* schedule_name(ScheduleKind kind);        // "constant", "step", "linear", "log"
ScheduleKind parse_schedule(std::string_view name);  // UsageError otherwise

struct IterationSchedule {
  ScheduleKind kind = ScheduleKind::constant;
  double start_multiplier = 1;                 // s >= 1: the multiplier at iteration 0
  int64_t decay_steps = 1;                     // k >= 1 (see the formulas above)
  double log_rate = 1;                         // > 0, log schedule only
  void validate() const;                       // UsageError
  double multiplier(int64_t iteration) const;  // >= 1, non-increasing, -> 1
};

enum class BoundClass : uint8_t { tight = 0, base = 1, loose = 2 };
const char* bound_class_name(BoundClass c);  // "tight", "base", "loose"

struct ClassMultipliers {
  double tight = 0.5, base = 1, loose = 2;
  double of(BoundClass c) const;
};

enum class ClassRule { tertiles, thresholds };

struct ClassOptions {
  ClassRule rule = ClassRule::tertiles;
  double low = 0.5, high = 2.0;  // thresholds: x median sensitivity
};

// Classes from per-table sensitivities (higher = more sensitive = tighter).
// Deterministic: a pure function of its arguments.
std::vector<BoundClass> assign_classes(std::span<const double> sensitivity,
                                       const ClassOptions& options = {});

struct SensitivityOptions {
  uint64_t seed = 0x5e75;
  int repeats = 2;  // noise draws averaged
};

// Per-table sensitivity of `model` on `batch` to noise at `bound` on that
// table's pooled embeddings (see the top of the file). A relative bound is
// taken against the range of the table's pooled values over the batch, as
// the compressor takes it over a block. Runs forward only; the model is not
// changed. Costs (tables x repeats + 1) top-MLP forwards of the batch.
std::vector<double> measure_table_sensitivity(const Dlrm& model, const Batch& batch,
                                              const kernels::compress::ErrorBound& bound,
                                              const SensitivityOptions& options = {});

// Replaces `values` on every rank by rank 0's (an allreduce sum to which
// only rank 0 contributes: exact). Collective.
void agree_on_rank0(comm::Communicator& comm, std::vector<double>& values);

enum class Direction { forward, backward };

struct BoundPolicy {
  // The base bounds: the forward one on pooled embeddings, the backward one
  // on their gradients (relative by default: gradients shrink as training
  // goes and their scale is unknown up front).
  kernels::compress::ErrorBound forward_base{kernels::compress::ErrorBound::relative, 1e-2};
  kernels::compress::ErrorBound backward_base{kernels::compress::ErrorBound::relative, 1e-2};
  IterationSchedule schedule{};
  bool schedule_backward = true;  // the schedule applies to gradients too
  ClassMultipliers multipliers{};
  std::vector<BoundClass> classes;  // per table; empty (or shorter): base

  void validate() const;  // UsageError
  BoundClass class_of(int table) const;
  // The bound the exchange uses for `table` at `iteration` (mode of the base).
  kernels::compress::ErrorBound bound(int table, int64_t iteration, Direction direction) const;
  std::string describe() const;
};

}  // namespace paralab::dlrm
