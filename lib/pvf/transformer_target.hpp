// transformer_target.hpp: fault injection into lib/model's decoder-only
// transformer (model.hpp; FP32 precision policy) at inference on a fixed
// evaluation set of sequences.
//
// Components. A component is a set of parameter tensors, named
//   embedding                 embed.weight [vocab, d]
//   attn.q attn.k attn.v attn.o   Wq, Wk, Wv, Wo of every layer; attn: all four
//   mlp.gate mlp.up mlp.down  the SwiGLU matrices of every layer; mlp: all three
//   attn_norm mlp_norm        the RMSNorm gains in every layer
//   final_norm                the RMSNorm gain before the LM head
//   norm                      every RMSNorm gain (attn_norm, mlp_norm, final_norm)
//   lm_head                   lm_head.weight [vocab, d] (untied)
// and, for one layer N only, layerN.<per-layer kind> (layerN.attn.q,
// layerN.mlp, layerN.norm: that layer's two gains, ...) or layerN (every
// tensor of the layer). The model has no biases (lib/model: "No biases"), so
// there is no weight/bias split as in the DLRM target. Each Parameter of the
// registry is one tensor (INT8 storage has one scale per tensor); a
// component's elements run over its tensors in registry order.
//
// Verdict of a trial against the clean model in the same storage type, on
// the evaluation set's n = sequences x seq positions: nan_inf if any logit is
// NaN or Inf; else incorrect if the top-1 next-token prediction (the first
// argmax of the logits row) changes at any position, or the mean
// cross-entropy over the n positions rises by more than loss_threshold nats.
//
// Partial recomputation. The forward is split in stages: 0 the embedding
// gather, 1 + 2l the attention block of layer l (attn_norm, Wq, Wk, Wv, Wo),
// 2 + 2l its MLP block (mlp_norm, gate, up, down), 2L + 1 the final norm,
// 2L + 2 the LM head. prepare() keeps the clean residual stream entering
// every stage (and the normalised input of the LM head); a trial reruns from
// the lowest stage its faults touch, on the whole evaluation set, with the
// model's own layer code (TransformerLayer::forward for whole layers; an MLP
// block entered alone repeats TransformerLayer::forward's two MLP lines), so
// the GEMMs see the same shapes and inputs and the logits equal a full
// Model::evaluate of the corrupted model bit for bit (logits_full; tested).
// A fault that leaves every stored word unchanged (a latent stuck-at) and an
// embedding fault on rows no evaluation token reads return the clean logits.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "model/data.hpp"
#include "model/model.hpp"
#include "pvf/campaign.hpp"
#include "pvf/dlrm_target.hpp"

namespace paralab::pvf {

// The tensor kinds of the transformer, in registry order within a layer.
enum class TensorKind {
  embedding,
  attn_norm,
  wq,
  wk,
  wv,
  wo,
  mlp_norm,
  gate,
  up,
  down,
  final_norm,
  lm_head
};

struct TransformerComponent {
  std::string name;
  int layer = -1;      // -1: every layer
  uint32_t kinds = 0;  // bit (1 << TensorKind)
  bool has(TensorKind k) const { return (kinds >> static_cast<int>(k)) & 1u; }
};
// UsageError naming the known names, or the layer range.
TransformerComponent parse_transformer_component(const std::string& name, int layers);
// embedding, attn.q, attn.k, attn.v, attn.o, mlp, norm, lm_head.
std::vector<std::string> default_transformer_components();
// Parameters of a component of a model of this configuration.
uint64_t transformer_component_elements(const model::ModelConfig& config,
                                        const TransformerComponent& component);
std::string describe(const model::ModelConfig& config);  // "L2 d64 H4/4 ffn172 vocab16 ctx64"

// Brief training before the campaign on lib/model's synthetic Markov language.
struct TransformerTraining {
  int steps = 300;
  int batch = 16;  // sequences per step
  int seq = 64;    // tokens per sequence (training and evaluation)
  double lr = 3e-3;
  int vocab = 16, order = 2;
  double concentration = 0.2;
  uint64_t seed = 1;  // data and model
};
struct TransformerTrainingSummary {
  double first_loss = 0, last_loss = 0;  // mean cross-entropy of the first and last step
  double eval_loss = 0;                  // of the trained model on the evaluation set
  double eval_top1 = 0;                  // fraction of positions whose argmax is the target
  double entropy_floor = 0;              // the Markov source's entropy rate (nats)
  double seconds = 0;
};
// Trains on one thread (AdamW, betas 0.9/0.95, linear warmup over 10% of the
// steps then cosine to lr/10, gradient clipping at 1) and restores the thread
// count; eval: the evaluation set. Pure function of the arguments.
TransformerTrainingSummary train_transformer(model::Model& model, const model::MarkovSource& data,
                                             const TransformerTraining& training,
                                             const model::SampledBatch& eval);
// The evaluation set: `sequences` held-out sequences of the source (a stream
// no training step uses).
model::SampledBatch transformer_eval_set(const model::MarkovSource& data, int sequences, int seq);

class TransformerTarget : public RecomputingTarget {
 public:
  // Keeps the model's current FP32 parameters as the master copy. The model
  // must use Precision::fp32 (std::invalid_argument otherwise).
  TransformerTarget(model::Model& model, model::SampledBatch eval,
                    std::vector<TransformerComponent> components, double loss_threshold);

  int components() const override { return static_cast<int>(components_.size()); }
  std::string component_name(int component) const override;
  uint64_t elements(int component) const override;
  void prepare(DType dtype) override;
  Outcome inject(int component, std::span<const ElementFault> faults) override;

  // Logits [n, vocab] under the faults by partial recomputation, and by a
  // full Model::evaluate of the corrupted model; both restore it.
  std::vector<float> logits_partial(int component, std::span<const ElementFault> faults) override;
  std::vector<float> logits_full(int component, std::span<const ElementFault> faults) override;
  std::span<const float> clean_logits() const { return clean_logits_; }
  double clean_loss() const { return clean_loss_; }
  Outcome classify(std::span<const float> logits) const;
  int positions() const { return eval_.batch * eval_.seq; }
  int vocab() const { return model_.config().vocab; }
  std::span<const int32_t> targets() const { return eval_.targets; }
  // The parameter a component's element is (for tests): its address.
  float* parameter(int component, uint64_t element);
  // The stage a trial of these faults reruns from (for tests and timing).
  int start_stage(int component, std::span<const ElementFault> faults);
  int stages() const { return 2 * model_.config().layers + 3; }

 private:
  struct Tensor {
    float* data = nullptr;
    int stage = 0;
    TensorKind kind = TensorKind::embedding;
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

  std::pair<Tensor*, uint64_t> locate(int component, uint64_t element);
  // Applies faults (recording what to restore); whether any stored bit changed.
  bool apply(int component, std::span<const ElementFault> faults);
  void restore();
  // The forward from `stage` into logits_; capture: keep the clean stream.
  void run_from(int stage, bool capture);
  bool embedding_rows_unread(int component, std::span<const ElementFault> faults);

  model::Model& model_;
  model::SampledBatch eval_;
  std::vector<int32_t> positions_;
  model::SequenceLayout layout_;
  double threshold_;
  std::vector<TransformerComponent> components_;
  std::vector<Tensor> tensors_;
  std::vector<Part> parts_;
  std::vector<char> token_read_;  // [vocab]: whether an evaluation token is that row
  std::vector<Change> changes_;
  // Clean state of the current type (prepare()).
  std::vector<std::vector<float>> stream_;  // [stages - 1]: residual entering stage s (s >= 1)
  std::vector<float> xn_final_;             // LM head input
  std::vector<float> clean_logits_;
  std::vector<int32_t> clean_top1_;
  double clean_loss_ = 0;
  // Work buffers.
  std::vector<float> x_, rstd_, logits_;
  model::Activation xn_;
  model::TransformerLayer::Saved saved_;
  model::Mlp::Saved mlp_saved_;
};

// Mean cross-entropy (nats) of logits [n, vocab] against targets, in double.
double mean_cross_entropy(std::span<const float> logits, std::span<const int32_t> targets,
                          int vocab);

}  // namespace paralab::pvf
