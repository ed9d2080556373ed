// parameters.hpp: the model's parameter tensors as one flat registry.
//
// Every tensor is a slice of the registry's flat buffers, in the order the
// layers registered them, so whole-model operations see one array each:
//   values   FP32 [numel]  the master weights (fp32, bf16-mixed), or under the
//                          pure BF16 policies the exact FP32 widening of the
//                          BF16 weights (derived, never updated on its own)
//   bf16     BF16 [numel]  the weights themselves (pure policies), or their
//                          round-to-nearest-even copy for the BF16 GEMMs
//                          (bf16-mixed); empty under fp32
//   grads    FP32 [numel]  gradients, accumulated by backward (zero_grads)
//   kahan    BF16 [numel]  Kahan compensation (bf16-pure-kahan only)
// A data-parallel trainer all-reduces grads() in one call; a checkpoint
// saves the storage (values(), or bf16_values() under the pure policies;
// kahan() too) and after loading it calls sync() to re-derive the copy.
// Element i of a tensor is initialised from (seed, tensor name, i) alone, so
// a sharded trainer can initialise just its part and match a single rank.
#pragma once

#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/bf16.hpp"
#include "model/precision.hpp"

namespace paralab::model {

class Parameters;

class Parameter {
 public:
  Parameter(Parameters* owner, std::string name, std::vector<int> shape, size_t offset);

  const std::string& name() const { return name_; }
  const std::vector<int>& shape() const { return shape_; }
  size_t size() const { return size_; }
  // First element of this tensor in the registry's flat buffers.
  size_t offset() const { return offset_; }
  // Weight decay applies to matrices (rank >= 2), not to gains.
  bool decays() const { return shape_.size() >= 2; }

  std::span<float> values();
  std::span<const float> values() const;
  std::span<bf16> bf16_values();  // empty under fp32
  std::span<const bf16> bf16_values() const;
  std::span<float> grad();
  std::span<const float> grad() const;
  std::span<bf16> kahan();  // empty unless bf16-pure-kahan

  // Element i as FP32, whatever the storage.
  float get(size_t i) const { return values()[i]; }
  // Sets element i of the stored weights (rounded to nearest even when they
  // are BF16) and keeps the derived copy in step.
  void set(size_t i, float value);

 private:
  Parameters* owner_;
  std::string name_;
  std::vector<int> shape_;
  size_t size_;
  size_t offset_;
};

class Parameters {
 public:
  explicit Parameters(Precision precision) : precision_(precision) {}
  Parameters(const Parameters&) = delete;
  Parameters& operator=(const Parameters&) = delete;

  // Registers a tensor (zero-valued); the returned reference stays valid for
  // the registry's lifetime. Names must be unique.
  Parameter& add(std::string name, std::vector<int> shape);
  // Fills the tensor with N(0, std^2) from (seed, name, index): Box-Muller
  // over counter-based random bits (kernels::stochastic_bits), in double.
  void init_normal(Parameter& p, uint64_t seed, double std);
  void fill(Parameter& p, float value);

  Precision precision() const { return precision_; }
  size_t count() const { return tensors_.size(); }
  size_t numel() const { return values_.size(); }
  Parameter& operator[](size_t i) { return tensors_[i]; }
  const Parameter& operator[](size_t i) const { return tensors_[i]; }
  auto begin() { return tensors_.begin(); }
  auto end() { return tensors_.end(); }
  auto begin() const { return tensors_.begin(); }
  auto end() const { return tensors_.end(); }
  // nullptr when there is no tensor of that name.
  Parameter* find(std::string_view name);

  std::span<float> values() { return values_; }
  std::span<const float> values() const { return values_; }
  std::span<bf16> bf16_values() { return bf16_; }
  std::span<const bf16> bf16_values() const { return bf16_; }
  std::span<float> grads() { return grads_; }
  std::span<const float> grads() const { return grads_; }
  std::span<bf16> kahan() { return kahan_; }
  void zero_grads();

  // Re-derives the copy that is not the storage: bf16 = rne(values) under
  // bf16-mixed, values = widen(bf16) under the pure policies. Call after
  // writing the storage directly (a checkpoint load, a broadcast).
  void sync();
  void sync(Parameter& p);

 private:
  friend class Parameter;
  Precision precision_;
  std::deque<Parameter> tensors_;  // a deque: references survive add()
  std::vector<float> values_;
  std::vector<bf16> bf16_;
  std::vector<float> grads_;
  std::vector<bf16> kahan_;
};

}  // namespace paralab::model
