// model.hpp: the single-rank transformer training engine (issue 6; the
// bf16_train app, later the 4D-parallel trainer). Reproduces the setting of
// Kalamkar et al., "A Study of BFLOAT16 for Deep Learning Training".
//
// THE MODEL. A decoder-only transformer (config.hpp):
//   x = Embedding(tokens)                                   [n, d]   n = B * T
//   per layer (block.hpp):
//     x += Wo · Attention(RoPE(Wq·RMSNorm(x)), RoPE(Wk·RMSNorm(x)), Wv·RMSNorm(x))
//     x += Wd · (silu(Wg·RMSNorm(x)) * (Wu·RMSNorm(x)))     (SwiGLU)
//   logits = W_lm · RMSNorm(x)                              [n, vocab] (untied head)
//   loss = mean over tokens with target >= 0 of -log softmax(logits)[target]
// Attention is causal, per sequence, never across documents (Batch::doc_starts,
// for packed sequences), with grouped-query heads (H query heads share H_kv
// key/value heads) and RoPE (interleaved pairs, positions restart at every
// document; ModelConfig::rope_theta = 0 turns it off). No biases, no dropout.
//
// LAYOUTS. Everything is row-major: activations [n, features] with token
// i = b * T + t; Q/O [n, H, D]; K/V [n, H_kv, D]; linear weights [out, in]
// (y = x W^T, like torch.nn.Linear); embedding and LM head [vocab, d].
// Parameters live in one flat registry (parameters.hpp) in registration
// order: embed.weight, then per layer l "layers.l.attn_norm.gain",
// "layers.l.attn.{wq,wk,wv,wo}", "layers.l.mlp_norm.gain",
// "layers.l.mlp.{w_gate,w_up,w_down}", then final_norm.gain, lm_head.weight.
//
// INITIALISATION (deterministic from the seed, per tensor name and element):
// matrices N(0, init_std^2), the output projections Wo and Wd scaled by
// 1/sqrt(2 * layers) (GPT-2), RMSNorm gains 1. Pure BF16 policies round the
// FP32 initial values to nearest even.
//
// PRECISION POLICIES (precision.hpp):
//   fp32             every buffer, GEMM and weight FP32.
//   bf16-mixed       BF16: the inputs of every GEMM (the paper's choice):
//                    weights (an RNE copy of the FP32 master, refreshed after
//                    each optimizer step), the activations that enter a GEMM
//                    (normalised inputs, q/k/v, attention output O, SwiGLU
//                    hidden h: rounded to BF16 when produced and saved so for
//                    backward) and the output gradients fed to the backward
//                    GEMMs (rounded per GEMM). The attention forward takes BF16
//                    q, k, v (its kernel also rounds P to BF16). FP32: GEMM
//                    accumulation and outputs, the residual stream, RMSNorm,
//                    RoPE, SwiGLU gating, softmax/cross-entropy, the attention
//                    backward (on the BF16-rounded q, k, v), all parameter and
//                    activation gradients, master weights, optimizer state.
//                    The embedding gather and the RMSNorm gains read FP32
//                    values (the master, or the widened BF16 weights).
//   bf16-pure-rne    compute as bf16-mixed, but the weights exist only in BF16
//   bf16-pure-sr     (embedding and gains too; the FP32 "values" array is just
//   bf16-pure-kahan  their exact widening). The optimizer computes an FP32
//                    update u from FP32 gradients and FP32 state, then stores
//                    w = round(w + u) with round-to-nearest-even, stochastic
//                    rounding (kernels::cpu::convert, seed per optimizer step,
//                    element index = position in the flat registry), or Kahan
//                    summation (kernels::cpu::kahan_add, BF16 compensation).
//
// LOST UPDATES (optimizer.hpp, UpdateStats): per step, among the weight
// elements whose FP32 update u is nonzero, those whose stored weight (BF16
// under the pure policies, the FP32 master otherwise) did not change;
// lost_fraction = lost / nonzero. RNE loses every |u| below half a BF16 ulp
// of w (2^-9 to 2^-8 of |w|) for good. SR and Kahan also leave most small
// updates unchanged in a step, but not for good: SR moves the weight by an
// ulp with probability |u| / ulp (unbiased), Kahan carries the remainder in
// the compensation until it adds up to an ulp.
//
// USE:
//   Model model(config, Precision::bf16_mixed, seed);
//   AdamW opt({...});
//   model.parameters().zero_grads();
//   double loss = model.forward_backward(batch);      // accumulates gradients
//   clip_grad_norm(model.parameters(), 1.0f);
//   UpdateStats st = opt.step(model.parameters(), schedule.at(step));
// or Trainer (trainer.hpp), which does exactly that per step.
//
// THREADS AND DETERMINISM. GEMMs, attention and BF16 conversions run in the
// kernel library (OpenBLAS / OpenMP, kernels::set_threads); the engine's own
// elementwise loops are OpenMP over rows, only when large enough to pay off.
// A step is reproducible bit for bit for a given thread count.
//
// Around the model: data.hpp (Markov language with its entropy rate, byte
// text), data_parallel.hpp (one flat gradient all-reduce over
// Parameters::grads(), FP32 or BF16, losses normalised by the global token
// count), checkpoint.hpp (HDF5, bit-identical resume). Not here yet: a CUDA
// path (the layers call kernels::cpu:: today).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "model/attention.hpp"
#include "model/block.hpp"
#include "model/config.hpp"
#include "model/layers.hpp"
#include "model/parameters.hpp"
#include "model/precision.hpp"

namespace paralab::model {

// The standard deviation of the initial N(0, std^2) values of the matrix
// `name` (the initialisation rule above): init_std, divided by
// sqrt(2 * layers) for the output projections Wo and Wd. Sharded trainers
// (lib/parallel) use it to initialise their slices like Model does.
double initial_std(const ModelConfig& config, std::string_view name);

class Model {
 public:
  // Throws UsageError for an invalid config.
  Model(const ModelConfig& config, Precision precision, uint64_t seed);
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  // Mean cross-entropy over the batch's counted tokens (targets >= 0), and
  // adds d(loss)/d(parameters) to the gradients (zero them first). The
  // gradient is of (summed token losses) / normalizer, where normalizer 0
  // means this batch's counted tokens; a data-parallel or accumulating
  // trainer passes the global count so that the summed gradients are those
  // of the global mean. Throws UsageError for a batch that does not fit.
  double forward_backward(const Batch& batch, double normalizer = 0);
  // The same loss without backward (gradients untouched).
  double evaluate(const Batch& batch);
  // The logits [n, vocab] of the last evaluate() (after forward_backward
  // they hold d(loss)/d(logits) instead). lib/pvf compares its partial
  // recomputation against them.
  std::span<const float> logits() const { return logits_; }

  Parameters& parameters() { return params_; }
  const Parameters& parameters() const { return params_; }
  const ModelConfig& config() const { return config_; }
  Precision precision() const { return precision_; }

  // FLOPs of one forward_backward on `batch` (2 per multiply-add): the GEMMs
  // (forward once, backward twice) plus the attention under its mask
  // (forward, and 2.5 times that for backward: five products against two).
  double train_flops(const Batch& batch) const;

  // Layers, for tests and finer-grained drivers.
  Embedding& embedding() { return embedding_; }
  TransformerLayer& layer(int l) { return *layers_[l]; }
  RmsNorm& final_norm() { return final_norm_; }
  Linear& lm_head() { return lm_head_; }

 private:
  LossSum run(const Batch& batch, bool gradient, double normalizer);
  void initialise(uint64_t seed);

  ModelConfig config_;
  Precision precision_;
  Parameters params_;
  Embedding embedding_;
  std::vector<std::unique_ptr<TransformerLayer>> layers_;
  RmsNorm final_norm_;
  Linear lm_head_;

  // Activations of the last forward (one micro-batch) and work buffers.
  std::vector<int32_t> positions_;
  std::vector<float> x_;  // residual stream, then its gradient
  std::vector<TransformerLayer::Saved> saved_;
  std::vector<float> x_final_, rstd_final_;
  Activation xn_final_;
  std::vector<float> logits_;  // then d(loss)/d(logits)
  std::vector<float> dxn_;
  std::vector<bf16> scratch_;
};

// Model::train_flops without a model: what one forward_backward of a model
// of this config costs on `batch` (a 4D engine's micro-batch, for example).
double train_flops(const ModelConfig& config, const Batch& batch);

}  // namespace paralab::model
