// optimizer.hpp: AdamW and SGD with momentum over a Parameters registry,
// global-norm gradient clipping and the learning-rate schedule.
//
// An optimizer step has two halves. compute_update (per optimizer) turns the
// FP32 gradient and the FP32 optimizer state into an FP32 update u; then
// apply_update (per precision policy) adds u to the stored weights:
//   fp32, bf16-mixed   w_master += u (FP32); bf16-mixed then refreshes the
//                      BF16 GEMM copy (round to nearest even)
//   bf16-pure-rne      w = rne(w + u)        (w + u in FP32)
//   bf16-pure-sr       w = sr(w + u), random bits stochastic_bits(step seed,
//                      flat element index): reproducible, thread-independent
//   bf16-pure-kahan    kernels::cpu::kahan_add(w, c, u) with a BF16 compensation c
// Optimizer state (AdamW m and v, SGD momentum) is FP32 under every policy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "model/parameters.hpp"

namespace paralab::model {

// Weight elements of one step. lost: a nonzero FP32 update left the stored
// weight (BF16 under the pure policies, FP32 otherwise) unchanged.
struct UpdateStats {
  size_t elements = 0;
  size_t nonzero = 0;  // elements whose update u != 0
  size_t lost = 0;     // of those, unchanged
  double lost_fraction() const {
    return nonzero ? static_cast<double>(lost) / static_cast<double>(nonzero) : 0.0;
  }
  UpdateStats& operator+=(const UpdateStats& o) {
    elements += o.elements, nonzero += o.nonzero, lost += o.lost;
    return *this;
  }
};

// Adds u [p.size()] to p's stored weights as params.precision() says (above)
// and keeps the derived copy in step. sr_seed: the stochastic-rounding seed
// of this step. scratch: any buffer (resized as needed).
UpdateStats apply_update(Parameters& params, Parameter& p, std::span<const float> u,
                         uint64_t sr_seed, std::vector<float>& scratch);

class Optimizer {
 public:
  // seed: the stream of stochastic-rounding bits (bf16-pure-sr).
  explicit Optimizer(uint64_t seed = 0) : seed_(seed) {}
  virtual ~Optimizer() = default;

  // One update of every tensor of params from its gradient, at learning
  // rate lr. Does not touch the gradients.
  UpdateStats step(Parameters& params, float lr);
  // Steps taken (bias correction and SR seeds use it); set on resume.
  int64_t steps() const { return steps_; }
  void set_steps(int64_t steps) { steps_ = steps; }
  // The FP32 state by name, each flat over the registry (for checkpoints).
  virtual std::vector<std::pair<std::string, std::span<float>>> state() = 0;
  // Sizes the state for a registry of numel elements (zero on first use), as
  // the first step() does, so that a checkpoint can fill a fresh optimizer.
  void prepare_state(size_t numel) { prepare(numel); }

 protected:
  // Sizes the state for a registry of numel elements (zero on first use).
  virtual void prepare(size_t numel) = 0;
  // u = the update of p at step t (1-based).
  virtual void compute_update(const Parameter& p, float lr, int64_t t, std::span<float> u) = 0;

 private:
  uint64_t seed_;
  int64_t steps_ = 0;
  std::vector<float> update_, scratch_;
};

struct AdamWConfig {
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;  // decoupled; matrices only (Parameter::decays)
};

// m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
// u = -lr (m / (1 - b1^t) / (sqrt(v / (1 - b2^t)) + eps) + wd w)
class AdamW : public Optimizer {
 public:
  explicit AdamW(const AdamWConfig& config = {}, uint64_t seed = 0);
  std::vector<std::pair<std::string, std::span<float>>> state() override;

 protected:
  void prepare(size_t numel) override;
  void compute_update(const Parameter& p, float lr, int64_t t, std::span<float> u) override;

 private:
  AdamWConfig config_;
  std::vector<float> m_, v_;
};

struct SgdConfig {
  float momentum = 0.9f;
  float weight_decay = 0.0f;  // decoupled; matrices only
};

// b = momentum b + g;  u = -lr (b + wd w)
class Sgd : public Optimizer {
 public:
  explicit Sgd(const SgdConfig& config = {}, uint64_t seed = 0);
  std::vector<std::pair<std::string, std::span<float>>> state() override;

 protected:
  void prepare(size_t numel) override;
  void compute_update(const Parameter& p, float lr, int64_t t, std::span<float> u) override;

 private:
  SgdConfig config_;
  std::vector<float> momentum_;
};

// The L2 norm of all gradients (in double, fixed order).
double grad_norm(const Parameters& params);
// Scales all gradients by max_norm / norm when norm > max_norm (max_norm <= 0:
// never). Returns the norm before clipping.
double clip_grad_norm(Parameters& params, double max_norm);

// Linear warmup from peak / warmup to peak over `warmup` steps, then cosine
// decay from peak to `floor` at step `total`, floor afterwards. Steps count
// from 0.
struct LrSchedule {
  float peak = 1e-3f;
  float floor = 0.0f;
  int64_t warmup = 0;
  int64_t total = 1;
  float at(int64_t step) const;
};
// UsageError for negative rates, floor above peak, warmup beyond total.
void validate(const LrSchedule& schedule);

}  // namespace paralab::model
