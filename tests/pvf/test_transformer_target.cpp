// Fault injection into lib/model's transformer (lib/pvf/transformer_target.hpp):
// component names, partial recomputation equal to a full Model::evaluate bit
// for bit for every component class, type and fault model, exact restore,
// and the verdict rule.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>

#include "core/errors.hpp"
#include "pvf_test_support.hpp"

namespace paralab::pvf {
namespace {

using test::SmallTransformer;

bool same_bits(const std::vector<float>& a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

std::vector<float> snapshot(model::Model& m) {
  return {m.parameters().values().begin(), m.parameters().values().end()};
}

// Every component class, one per-layer name and a whole layer.
const std::vector<std::string> kAllClasses = {
    "embedding", "attn.q",    "attn.k",   "attn.v",     "attn.o",  "mlp.gate",   "mlp.up",
    "mlp.down",  "attn_norm", "mlp_norm", "final_norm", "lm_head", "layer1.mlp", "layer0"};

TEST(PvfTransformer, ComponentNames) {
  EXPECT_EQ(parse_transformer_component("attn.q", 2).layer, -1);
  EXPECT_EQ(parse_transformer_component("layer1.attn.v", 2).layer, 1);
  EXPECT_TRUE(parse_transformer_component("layer1.attn.v", 2).has(TensorKind::wv));
  EXPECT_FALSE(parse_transformer_component("layer1.attn.v", 2).has(TensorKind::wq));
  const auto norm = parse_transformer_component("norm", 2);
  EXPECT_TRUE(norm.has(TensorKind::final_norm) && norm.has(TensorKind::attn_norm) &&
              norm.has(TensorKind::mlp_norm));
  EXPECT_FALSE(parse_transformer_component("layer0.norm", 2).has(TensorKind::final_norm));
  EXPECT_THROW(parse_transformer_component("attn.x", 2), UsageError);
  EXPECT_THROW(parse_transformer_component("layer2.mlp", 2), UsageError);
  EXPECT_THROW(parse_transformer_component("layer0.lm_head", 2), UsageError);
  EXPECT_THROW(parse_transformer_component("layerx.mlp", 2), UsageError);
}

TEST(PvfTransformer, ComponentsCoverEveryParameter) {
  SmallTransformer s(0, 0.05, {"embedding", "attn", "mlp", "norm", "lm_head", "layer1.attn.k"});
  const model::ModelConfig& c = s.config;
  uint64_t total = 0;
  for (int k = 0; k < 5; ++k) total += s.target->elements(k);
  EXPECT_EQ(total, s.model->parameters().numel());
  EXPECT_EQ(s.target->elements(0), 16u * 32);
  EXPECT_EQ(s.target->elements(2), 2u * 3 * 32 * 64);
  EXPECT_EQ(s.target->elements(3), 2u * 2 * 32 + 32);
  EXPECT_EQ(s.target->elements(5), 16u * 32);  // one k/v head of 16
  for (int k = 0; k < s.target->components(); ++k)
    EXPECT_EQ(s.target->elements(k),
              transformer_component_elements(
                  c, parse_transformer_component(s.target->component_name(k), c.layers)));
  EXPECT_EQ(s.target->parameter(5, 0), s.model->layer(1).attention().wk().weight().values().data());
  EXPECT_EQ(s.target->parameter(3, 2 * 2 * 32 + 31),
            s.model->final_norm().gain().values().data() + 31);
}

TEST(PvfTransformer, TrainingLearnsAndCleanLogitsMatchTheModel) {
  SmallTransformer s(60);
  EXPECT_LT(s.summary.last_loss, s.summary.first_loss);
  EXPECT_LT(s.summary.eval_loss, std::log(16.0));
  for (DType d : {DType::fp32, DType::bf16, DType::fp16, DType::int8}) {
    s.target->prepare(d);
    const auto clean = s.target->logits_full(0, {});
    EXPECT_TRUE(same_bits(clean, s.target->clean_logits())) << name(d);
    EXPECT_EQ(s.target->classify(clean), Outcome::correct);
  }
}

// The core exactness test: for every component class, type and fault model,
// the partial logits are a full Model::evaluate's, bit for bit (NaN and Inf
// included), every stage is a starting point somewhere, and the model is
// bit-identical afterwards.
TEST(PvfTransformer, PartialRecomputationEqualsFullForward) {
  SmallTransformer s(40, 0.05, kAllClasses);
  int nonclean = 0;
  std::set<int> stages;
  for (DType d : {DType::fp32, DType::bf16, DType::fp16, DType::int8}) {
    s.target->prepare(d);
    const std::vector<float> before = snapshot(*s.model);
    for (const char* model : {"flip", "burst:5", "stuck1", "ber:2e-4"})
      for (int k = 0; k < s.target->components(); ++k)
        for (int trial = 0; trial < 8; ++trial) {
          Rng rng(trial_seed(9, static_cast<uint64_t>(k), static_cast<uint64_t>(trial)));
          const auto faults =
              sample_faults(parse_fault_model(model), d, BitClass::any, s.target->elements(k), rng);
          if (!faults.empty()) stages.insert(s.target->start_stage(k, faults));
          const auto partial = s.target->logits_partial(k, faults);
          const auto full = s.target->logits_full(k, faults);
          ASSERT_TRUE(same_bits(partial, full))
              << name(d) << " " << model << " " << s.target->component_name(k) << " trial "
              << trial;
          nonclean += s.target->classify(partial) != Outcome::correct;
        }
    EXPECT_TRUE(same_bits(snapshot(*s.model), before)) << name(d);
  }
  EXPECT_EQ(static_cast<int>(stages.size()), s.target->stages());
  EXPECT_GT(nonclean, 0);
}

TEST(PvfTransformer, InjectionRestoresAndVerdictsFollowTheRule) {
  SmallTransformer s(40, 0.05);
  s.target->prepare(DType::fp32);
  const std::vector<float> before = snapshot(*s.model);
  // The top exponent bit of an LM-head weight: a huge logit, or a zero one.
  const int head = s.target->components() - 1;
  ASSERT_EQ(s.target->component_name(head), "lm_head");
  int hits = 0;
  for (uint64_t e = 0; e < 64; ++e) {
    const ElementFault f{e * 7, {1u << 30, 0, 0}};
    hits += s.target->inject(head, std::span(&f, 1)) != Outcome::correct;
  }
  EXPECT_GT(hits, 0);
  EXPECT_TRUE(same_bits(snapshot(*s.model), before));
  // A latent fault (stuck-at-0 on a zero bit) changes nothing.
  float* w = s.target->parameter(1, 3);
  const uint32_t zero_bit = (std::bit_cast<uint32_t>(*w) & (1u << 29)) ? 0 : (1u << 29);
  if (zero_bit) {
    const ElementFault f{3, {0, 0, zero_bit}};
    EXPECT_TRUE(same_bits(s.target->logits_partial(1, std::span(&f, 1)), s.target->clean_logits()));
  }
  // classify: NaN anywhere is nan_inf, a changed argmax incorrect, a loss
  // rise above the threshold incorrect.
  std::vector<float> z(s.target->clean_logits().begin(), s.target->clean_logits().end());
  EXPECT_EQ(s.target->classify(z), Outcome::correct);
  z[7] = std::numeric_limits<float>::infinity();
  EXPECT_EQ(s.target->classify(z), Outcome::nan_inf);
  z = {s.target->clean_logits().begin(), s.target->clean_logits().end()};
  const int v = s.target->vocab();
  float* row = z.data() + 5 * v;
  const float top = *std::max_element(row, row + v);
  const int other = row[0] == top ? 1 : 0;
  row[other] = top + 1.0f;
  EXPECT_EQ(s.target->classify(z), Outcome::incorrect);
  // Halving every logit keeps each argmax; the loss moves.
  z = {s.target->clean_logits().begin(), s.target->clean_logits().end()};
  for (float& x : z) x *= 0.5f;
  const double rise = mean_cross_entropy(z, s.target->targets(), v) - s.target->clean_loss();
  EXPECT_EQ(s.target->classify(z), rise > 0.05 ? Outcome::incorrect : Outcome::correct);
}

}  // namespace
}  // namespace paralab::pvf
