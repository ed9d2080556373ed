// dlrm_target.hpp: fault injection into lib/dlrm's single-rank DLRM
// (model.hpp) at inference on a fixed evaluation batch.
//
// Components (the dot interaction has no parameters, so nothing to corrupt):
//   embedding      every table's weights (rows x d each)
//   bottom.weight  the bottom MLP's weight matrices, bottom.bias its biases
//   top.weight     the top MLP's weight matrices,    top.bias    its biases
// (the five whole-model components, indices kEmbedding..kTopBias of
// default_dlrm_components()), and for one table or one MLP layer L (counted
// from 0 within its MLP):
//   embedding.T    table T
//   bottom.L       layer L's weight matrix and bias; bottom.L.weight,
//                  bottom.L.bias one of them (top.L... likewise)
//   bottom, top    every weight matrix and bias of the MLP
// Each weight matrix, bias vector and table is one tensor: INT8 storage has
// one scale per tensor. A component's elements run over its tensors in model
// order (tables; per MLP layer ascending its weights, then its bias).
//
// Verdict of a trial against the clean model in the same storage type: NaN
// or Inf in any logit is nan_inf; otherwise incorrect when on any evaluation
// sample the CTR sigmoid(logit) moves by more than ctr_threshold or the
// label (CTR > 0.5) flips.
//
// Partial recomputation. prepare() keeps every clean activation of the
// evaluation batch (each MLP layer's output, the feature matrix T, the
// interaction output R). A fault in layer l of the top MLP reruns the output
// columns of layer l it touches (W[o, :] and b[o] feed output o only), then
// the top layers above in full; one in the bottom MLP does the same in the
// bottom, then the interaction and the whole top MLP;
// one in an embedding row reruns only the samples that look that row up
// (pooling, interaction, top MLP), the others keep their clean logits. The
// model runs batch-invariant (Mlp::set_batch_invariant), whose per-sample
// loops this file repeats layer by layer, so the partial logits equal a full
// forward of the corrupted model bit for bit (logits_full; tested).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "dlrm/data.hpp"
#include "dlrm/model.hpp"
#include "pvf/campaign.hpp"

namespace paralab::pvf {

enum class DlrmBlock { embedding, bottom, top };
struct DlrmComponent {
  std::string name;
  DlrmBlock block = DlrmBlock::embedding;
  int index = -1;                   // the table or MLP layer; -1: every one
  bool weight = true, bias = true;  // MLP: its weight matrices, its biases
};
// The five whole-model components, in this order (their indices in
// default_dlrm_components(), and in the app's target whatever --components
// lists, so that their cells and checkpoints keep their meaning).
enum DlrmComponentIndex : int { kEmbedding = 0, kBottomWeight, kBottomBias, kTopWeight, kTopBias };
inline constexpr int kDlrmComponents = 5;
std::vector<DlrmComponent> default_dlrm_components();
// UsageError naming the known names, or the table or layer range.
DlrmComponent parse_dlrm_component(const std::string& name, const dlrm::DlrmConfig& config);
// Parameters of a component of a model of this configuration.
uint64_t dlrm_component_elements(const dlrm::DlrmConfig& config, const DlrmComponent& component);

// Brief training before the campaign, on lib/dlrm's synthetic Zipf clicks.
struct DlrmTraining {
  int steps = 2000;
  int batch = 256;
  dlrm::OptimizerConfig optimizer;
};
struct TrainingSummary {
  double first_loss = 0, last_loss = 0;  // mean BCE of the first and last step
  double eval_auc = 0;                   // of the trained model on the evaluation batch
  double seconds = 0;
};
// Trains `model` on one thread (OpenBLAS and OpenMP results then do not
// depend on a rank's thread count, so every rank of any run holds the same
// weights); restores the thread count. eval: the evaluation batch for the AUC.
TrainingSummary train_dlrm(dlrm::Dlrm& model, dlrm::SyntheticClicks& data,
                           const DlrmTraining& training, const dlrm::Batch& eval);

class DlrmTarget : public RecomputingTarget {
 public:
  // Keeps the model's current FP32 parameters as the master copy.
  DlrmTarget(dlrm::Dlrm& model, dlrm::Batch eval, double ctr_threshold,
             std::vector<DlrmComponent> components = default_dlrm_components());

  int components() const override { return static_cast<int>(components_.size()); }
  std::string component_name(int component) const override;
  uint64_t elements(int component) const override;
  void prepare(DType dtype) override;
  Outcome inject(int component, std::span<const ElementFault> faults) override;

  // The logits under the faults by partial recomputation, and by a full
  // forward (Dlrm::forward) of the corrupted model; both restore it.
  std::vector<float> logits_partial(int component, std::span<const ElementFault> faults) override;
  std::vector<float> logits_full(int component, std::span<const ElementFault> faults) override;
  std::span<const float> clean_logits() const { return clean_logits_; }
  Outcome classify(std::span<const float> logits) const;
  int samples() const { return eval_.size; }
  // The parameter a component's element is (for tests): its address.
  float* parameter(int component, uint64_t element);

 private:
  struct Tensor {
    float* data = nullptr;
    DlrmBlock block = DlrmBlock::embedding;
    int index = 0;        // MLP layer, or table
    bool weight = false;  // MLP: weight matrix [out, in], else bias [out]
    std::vector<float> master;
    Storage storage;
  };
  struct Part {
    std::vector<int> tensors;       // indices into tensors_
    std::vector<uint64_t> offsets;  // prefix sums of the tensors' sizes
  };
  struct Change {
    float* p;
    float old;
  };

  void build_parts();
  void index_lookups();
  // Applies faults, recording what to restore (restore() in reverse).
  void apply(int component, std::span<const ElementFault> faults, std::vector<Change>& changes);
  void restore(std::vector<Change>& changes);
  // The tensor of an element and the offset inside it.
  std::pair<Tensor*, uint64_t> locate(int component, uint64_t element);
  // The lowest MLP layer the faults touch and its output columns they touch.
  struct Start {
    int layer = 0;
    std::vector<int> cols;
  };
  Start first_touched(int component, std::span<const ElementFault> faults);
  // An MLP's output from the start layer up; clean: its clean layer outputs,
  // input: its input (layer 0's).
  const float* rerun(const dlrm::Mlp& mlp, const std::vector<std::vector<float>>& clean,
                     const float* input, const Start& start, int n);
  void partial_top(const Start& start, std::vector<float>& logits);
  void partial_bottom(const Start& start, std::vector<float>& logits);
  void partial_embedding(int component, std::span<const ElementFault> faults,
                         std::vector<float>& logits);

  dlrm::Dlrm& model_;
  dlrm::Batch eval_;
  double threshold_;
  std::vector<DlrmComponent> components_;
  std::vector<Tensor> tensors_;
  std::vector<Part> parts_;  // per component
  // Per table: (row, sample) pairs of the evaluation batch, sorted.
  std::vector<std::vector<std::pair<int32_t, int32_t>>> row_samples_;
  // Clean activations of the evaluation batch (prepare()).
  std::vector<std::vector<float>> bottom_out_, top_out_;
  std::vector<float> t_, r_, clean_logits_, clean_ctr_;
  // Scratch of the partial runs.
  std::vector<float> scratch_t_, scratch_r_, scratch_x_, wt_;
  std::vector<std::vector<float>> scratch_layers_;
  std::vector<int32_t> affected_;
  std::vector<Change> changes_;
};

}  // namespace paralab::pvf
