// error_bounds.cpp: iteration schedules, table sensitivity and classes, the
// bound policy (error_bounds.hpp).
#include "dlrm/error_bounds.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

#include "core/errors.hpp"
#include "dlrm/layers.hpp"

namespace paralab::dlrm {

namespace compress = kernels::compress;

const char* schedule_name(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::constant:
      return "constant";
    case ScheduleKind::step:
      return "step";
    case ScheduleKind::linear:
      return "linear";
    case ScheduleKind::log:
      return "log";
  }
  return "?";
}

ScheduleKind parse_schedule(std::string_view name) {
  for (ScheduleKind k :
       {ScheduleKind::constant, ScheduleKind::step, ScheduleKind::linear, ScheduleKind::log})
    if (name == schedule_name(k)) return k;
  throw UsageError("unknown error-bound schedule '" + std::string(name) +
                   "' (constant, step, linear, log)");
}

void IterationSchedule::validate() const {
  if (!(start_multiplier >= 1) || !std::isfinite(start_multiplier))
    throw UsageError("error-bound schedule: the start multiplier must be finite and >= 1");
  if (decay_steps < 1) throw UsageError("error-bound schedule: decay steps must be >= 1");
  if (!(log_rate > 0) || !std::isfinite(log_rate))
    throw UsageError("error-bound schedule: the log rate must be finite and > 0");
}

double IterationSchedule::multiplier(int64_t iteration) const {
  const double t = static_cast<double>(std::max<int64_t>(0, iteration));
  const double s = start_multiplier, k = static_cast<double>(decay_steps);
  double m = 1;
  switch (kind) {
    case ScheduleKind::constant:
      m = 1;
      break;
    case ScheduleKind::step:
      m = s * std::exp2(-std::floor(t / k));
      break;
    case ScheduleKind::linear:
      m = s + (1 - s) * std::min(1.0, t / k);
      break;
    case ScheduleKind::log:
      m = s / (1 + log_rate * std::log1p(t / k));
      break;
  }
  return std::max(1.0, m);
}

const char* bound_class_name(BoundClass c) {
  switch (c) {
    case BoundClass::tight:
      return "tight";
    case BoundClass::base:
      return "base";
    case BoundClass::loose:
      return "loose";
  }
  return "?";
}

double ClassMultipliers::of(BoundClass c) const {
  switch (c) {
    case BoundClass::tight:
      return tight;
    case BoundClass::base:
      return base;
    case BoundClass::loose:
      return loose;
  }
  return base;
}

std::vector<BoundClass> assign_classes(std::span<const double> sensitivity,
                                       const ClassOptions& options) {
  const size_t n = sensitivity.size();
  std::vector<BoundClass> out(n, BoundClass::base);
  if (n == 0) return out;
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  // Ascending sensitivity, ties by table id (NaN counts as most sensitive).
  auto key = [&](size_t i) {
    const double s = sensitivity[i];
    return std::isnan(s) ? HUGE_VAL : s;
  };
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return key(a) < key(b); });
  if (options.rule == ClassRule::tertiles) {
    for (size_t k = 0; k < n; ++k) {
      const size_t third = 3 * k / n;  // 0, 1, 2
      out[order[k]] =
          third == 0 ? BoundClass::loose : (third == 1 ? BoundClass::base : BoundClass::tight);
    }
    return out;
  }
  if (!(options.low > 0) || !(options.high >= options.low))
    throw UsageError("table classes: thresholds need 0 < low <= high");
  // Median: the lower middle of the sorted values.
  const double median = key(order[(n - 1) / 2]);
  for (size_t i = 0; i < n; ++i) {
    const double s = key(i);
    if (s > options.high * median)
      out[i] = BoundClass::tight;
    else if (s < options.low * median)
      out[i] = BoundClass::loose;
  }
  return out;
}

namespace {

// loss_i of BCE with logits, in double.
double sample_loss(float z, float y) {
  const double zd = z;
  return std::max(zd, 0.0) - zd * y + std::log1p(std::exp(-std::abs(zd)));
}

}  // namespace

std::vector<double> measure_table_sensitivity(const Dlrm& model, const Batch& batch,
                                              const compress::ErrorBound& bound,
                                              const SensitivityOptions& options) {
  const DlrmConfig& c = model.config();
  check_batch(c, batch);
  if (!(bound.value >= 0) || !std::isfinite(bound.value))
    throw UsageError("sensitivity: the bound must be finite and >= 0");
  if (options.repeats < 1) throw UsageError("sensitivity: repeats must be >= 1");
  const int n = batch.size, F = c.features(), d = c.embedding_dim, T = c.tables();
  std::vector<double> out(static_cast<size_t>(T), 0.0);
  if (n == 0) return out;
  // Batch-invariant copies of the MLPs: results independent of threads.
  Mlp bottom = model.bottom(), top = model.top();
  bottom.set_batch_invariant(true);
  top.set_batch_invariant(true);
  Mlp::Saved bottom_saved, top_saved;
  const size_t ld = static_cast<size_t>(F) * d;
  std::vector<float> t(static_cast<size_t>(n) * ld);
  const float* x = bottom.forward(batch.dense.data(), n, bottom_saved);
  for (int b = 0; b < n; ++b)
    std::copy(x + static_cast<size_t>(b) * d, x + static_cast<size_t>(b + 1) * d,
              t.data() + b * ld);
  for (int k = 0; k < T; ++k)
    model.table(k).forward(batch.tables[static_cast<size_t>(k)], 0, n,
                           t.data() + static_cast<size_t>(1 + k) * d, ld);
  std::vector<float> r(static_cast<size_t>(n) * c.interaction_width());
  auto losses = [&](const std::vector<float>& tt, std::vector<double>& l) {
    interaction_forward(tt.data(), n, F, d, r.data());
    const float* z = top.forward(r.data(), n, top_saved);
    l.resize(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) l[static_cast<size_t>(i)] = sample_loss(z[i], batch.labels[i]);
  };
  std::vector<double> clean, noisy;
  losses(t, clean);
  std::vector<float> perturbed;
  for (int k = 0; k < T; ++k) {
    const size_t col = static_cast<size_t>(1 + k) * d;
    double eb = bound.value;
    if (bound.mode == compress::ErrorBound::relative) {
      float lo = HUGE_VALF, hi = -HUGE_VALF;
      for (int b = 0; b < n; ++b)
        for (int j = 0; j < d; ++j) {
          const float v = t[b * ld + col + static_cast<size_t>(j)];
          if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
        }
      eb = hi >= lo ? bound.value * (double{hi} - lo) : 0.0;
    }
    double sum = 0;
    for (int rep = 0; rep < options.repeats; ++rep) {
      perturbed = t;
      const uint64_t key =
          mix(mix(options.seed, static_cast<uint64_t>(k)), static_cast<uint64_t>(rep));
      for (int b = 0; b < n; ++b)
        for (int j = 0; j < d; ++j) {
          const auto e = static_cast<uint64_t>(b) * d + static_cast<uint64_t>(j);
          perturbed[b * ld + col + static_cast<size_t>(j)] +=
              static_cast<float>(eb * (2 * uniform01(key, e) - 1));
        }
      losses(perturbed, noisy);
      for (int i = 0; i < n; ++i)
        sum += std::abs(noisy[static_cast<size_t>(i)] - clean[static_cast<size_t>(i)]);
    }
    out[static_cast<size_t>(k)] = sum / (static_cast<double>(n) * options.repeats);
  }
  return out;
}

void agree_on_rank0(comm::Communicator& comm, std::vector<double>& values) {
  std::vector<double> mine(values.size(), 0.0);
  if (comm.rank() == 0) mine = values;
  values.assign(values.size(), 0.0);
  comm.allreduce(mine.data(), values.data(), values.size(), DType::f64, comm::ReduceOp::sum);
}

void BoundPolicy::validate() const {
  for (const auto* b : {&forward_base, &backward_base})
    if (!(b->value >= 0) || !std::isfinite(b->value))
      throw UsageError("error bounds: a base bound must be finite and >= 0");
  schedule.validate();
  for (double m : {multipliers.tight, multipliers.base, multipliers.loose})
    if (!(m >= 0) || !std::isfinite(m))
      throw UsageError("error bounds: class multipliers must be finite and >= 0");
}

BoundClass BoundPolicy::class_of(int table) const {
  return table >= 0 && static_cast<size_t>(table) < classes.size()
             ? classes[static_cast<size_t>(table)]
             : BoundClass::base;
}

compress::ErrorBound BoundPolicy::bound(int table, int64_t iteration, Direction direction) const {
  compress::ErrorBound b = direction == Direction::forward ? forward_base : backward_base;
  double m = multipliers.of(class_of(table));
  if (direction == Direction::forward || schedule_backward) m *= schedule.multiplier(iteration);
  b.value *= m;
  return b;
}

std::string BoundPolicy::describe() const {
  std::ostringstream s;
  auto one = [&](const compress::ErrorBound& b) {
    s << (b.mode == compress::ErrorBound::relative ? "rel " : "abs ") << b.value;
  };
  s << "forward ";
  one(forward_base);
  s << ", backward ";
  one(backward_base);
  s << ", schedule " << schedule_name(schedule.kind) << " x" << schedule.start_multiplier
    << " over " << schedule.decay_steps << ", classes";
  int count[3] = {0, 0, 0};
  for (BoundClass c : classes) ++count[static_cast<int>(c)];
  if (classes.empty())
    s << " all base";
  else
    s << " tight " << count[0] << " (x" << multipliers.tight << ") base " << count[1] << " loose "
      << count[2] << " (x" << multipliers.loose << ")";
  return s.str();
}

}  // namespace paralab::dlrm
