// The whole model: its gradients against finite differences of the loss for
// elements of every parameter tensor, the registry layout, deterministic
// initialisation, and BF16 gradients against FP32 ones.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "model/model.hpp"
#include "model_test_support.hpp"

namespace paralab::model::test {
namespace {

ModelConfig tiny_config() {
  ModelConfig c;
  c.vocab = 11;
  c.layers = 2;
  c.d_model = 16;
  c.heads = 4;
  c.kv_heads = 2;
  c.ffn = 24;
  c.context = 8;
  c.init_std = 0.3f;  // larger than usual: gradients well above FP32 noise
  return c;
}

// B = 2, T = 6; the first sequence packs documents [0, 4) and [4, 6); one
// padding target.
struct TinyBatch {
  std::vector<int32_t> tokens = {1, 5, 2, 9, 10, 0, 3, 3, 7, 1, 4, 8};
  std::vector<int32_t> targets = {5, 2, 9, -1, 0, 6, 3, 7, 1, 4, 8, 2};
  std::vector<std::vector<int64_t>> docs = {{0, 4}, {}};
  Batch batch() const { return Batch{2, 6, tokens, targets, docs}; }
};

TEST(ModelGradients, EveryTensorMatchesFiniteDifferences) {
  Model model(tiny_config(), Precision::fp32, 42);
  const TinyBatch data;
  const Batch batch = data.batch();
  model.parameters().zero_grads();
  const double loss = model.forward_backward(batch);
  EXPECT_NEAR(loss, model.evaluate(batch), 1e-6);
  GradCheck check;
  check.h = 1e-2f;
  // The loss comes through FP32 GEMMs and sums: ~1e-7 relative noise over a
  // 2e-2 step; observed errors reach ~1e-3 of the largest gradient, a broken
  // backward gives errors of its size.
  check.rtol = 5e-3;
  check.atol = 2e-5;
  uint64_t seed = 100;
  for (Parameter& p : model.parameters()) {
    const std::vector<float> g = grad_of(p);
    expect_gradient(
        p.name(), p.values(), g, pick_indices(g, 6, seed++), [&] { return model.evaluate(batch); },
        check);
  }
}

TEST(ModelGradients, ForwardBackwardAccumulatesAndNormalizes) {
  Model model(tiny_config(), Precision::fp32, 7);
  const TinyBatch data;
  model.parameters().zero_grads();
  model.forward_backward(data.batch());
  const std::vector<float> once(model.parameters().grads().begin(),
                                model.parameters().grads().end());
  model.forward_backward(data.batch());
  // A second call adds the same gradient; a normalizer of twice the token
  // count then adds half of it.
  model.forward_backward(data.batch(), 2 * 11);
  for (size_t i = 0; i < once.size(); ++i) {
    EXPECT_NEAR(model.parameters().grads()[i], 2.5f * once[i], 1e-6f + 1e-5f * std::fabs(once[i]));
  }
}

TEST(Parameters, FlatRegistryInOrder) {
  const ModelConfig c = tiny_config();
  Model model(c, Precision::bf16_pure_kahan, 1);
  const Parameters& params = model.parameters();
  EXPECT_EQ(params.count(), 1u + 9u * c.layers + 2u);
  EXPECT_EQ(params[0].name(), "embed.weight");
  EXPECT_EQ(params[1].name(), "layers.0.attn_norm.gain");
  EXPECT_EQ(params[2].name(), "layers.0.attn.wq");
  EXPECT_EQ(params[3].shape(), (std::vector<int>{c.kv_heads * c.head_dim(), c.d_model}));
  EXPECT_EQ(params[params.count() - 1].name(), "lm_head.weight");
  size_t offset = 0;
  for (const Parameter& p : params) {
    EXPECT_EQ(p.offset(), offset) << p.name();
    offset += p.size();
  }
  EXPECT_EQ(offset, params.numel());
  EXPECT_EQ(params.grads().size(), params.numel());
  EXPECT_EQ(params.bf16_values().size(), params.numel());
  EXPECT_EQ(model.parameters().kahan().size(), params.numel());
}

TEST(Parameters, StorageFollowsThePolicy) {
  for (Precision p : all_precisions()) {
    Model model(tiny_config(), p, 3);
    Parameters& params = model.parameters();
    EXPECT_EQ(params.bf16_values().size(), computes_in_bf16(p) ? params.numel() : 0u);
    EXPECT_EQ(params.kahan().size(), p == Precision::bf16_pure_kahan ? params.numel() : 0u);
    for (size_t i = 0; i < params.bf16_values().size(); ++i) {
      const bf16 stored = params.bf16_values()[i];
      if (stores_bf16_weights(p)) {  // values is the exact widening
        ASSERT_EQ(params.values()[i], bf16_to_float(stored)) << to_string(p) << " " << i;
      } else {  // the BF16 copy is the RNE rounding of the master
        ASSERT_EQ(stored.bits, float_to_bf16_rne(params.values()[i]).bits) << i;
      }
    }
  }
}

TEST(Parameters, InitialisationIsDeterministicPerName) {
  Model a(tiny_config(), Precision::fp32, 5), b(tiny_config(), Precision::fp32, 5);
  Model c(tiny_config(), Precision::fp32, 6);
  const auto va = a.parameters().values(), vb = b.parameters().values();
  EXPECT_TRUE(std::equal(va.begin(), va.end(), vb.begin()));
  EXPECT_NE(va[0], c.parameters().values()[0]);
  // Independent of what else is registered: a lone tensor of the same name
  // gets the same values.
  Parameters lone(Precision::fp32);
  Parameter& wq = lone.add("layers.1.attn.wq", {16, 16});
  lone.init_normal(wq, 5, double{0.3f});  // the config's FP32 init_std
  const Parameter* in_model = a.parameters().find("layers.1.attn.wq");
  ASSERT_NE(in_model, nullptr);
  for (size_t i = 0; i < wq.size(); ++i) ASSERT_EQ(wq.get(i), in_model->get(i));
  // The initial spread: N(0, 0.3^2) for ordinary matrices, 1 for gains.
  double sum2 = 0;
  for (float v : wq.values()) sum2 += double{v} * v;
  EXPECT_NEAR(std::sqrt(sum2 / wq.size()), 0.3, 0.03);
  EXPECT_EQ(a.parameters().find("final_norm.gain")->get(3), 1.0f);
}

// BF16 compute changes gradients only at BF16 accuracy (8 significant bits):
// the BF16 policies' gradients point the same way as the FP32 ones.
TEST(ModelGradients, Bf16GradientsTrackFp32) {
  ModelConfig config = tiny_config();
  config.init_std = 0.1f;
  const TinyBatch data;
  Model reference(config, Precision::fp32, 9);
  reference.parameters().zero_grads();
  const double loss32 = reference.forward_backward(data.batch());
  const auto g32 = reference.parameters().grads();
  for (Precision p : {Precision::bf16_mixed, Precision::bf16_pure_rne}) {
    Model model(config, p, 9);
    model.parameters().zero_grads();
    const double loss = model.forward_backward(data.batch());
    EXPECT_NEAR(loss, loss32, 2e-2) << to_string(p);
    const auto g = model.parameters().grads();
    double diff = 0, norm = 0;
    for (size_t i = 0; i < g.size(); ++i) {
      diff += (double{g[i]} - g32[i]) * (double{g[i]} - g32[i]);
      norm += double{g32[i]} * g32[i];
    }
    const double relative = std::sqrt(diff / norm);
    if (std::getenv("PARALAB_MODEL_TEST_VERBOSE")) {
      std::printf("  %s: |g - g32| / |g32| = %.3e\n", std::string(to_string(p)).c_str(), relative);
    }
    EXPECT_LT(relative, 0.05) << to_string(p);
    EXPECT_GT(relative, 0.0) << to_string(p) << ": BF16 compute left no trace";
  }
}

}  // namespace
}  // namespace paralab::model::test
