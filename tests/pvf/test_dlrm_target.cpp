// Fault injection into the DLRM (lib/pvf/dlrm_target.hpp): partial
// recomputation equals a full forward of the corrupted model bit for bit,
// injection is exactly reversible, and the verdicts follow their rule.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>

#include "pvf_test_support.hpp"

namespace paralab::pvf {
namespace {

using test::SmallDlrm;

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Every parameter of the model, in one buffer.
std::vector<float> snapshot(dlrm::Dlrm& m) {
  std::vector<float> all(m.bottom().parameters().begin(), m.bottom().parameters().end());
  all.insert(all.end(), m.top().parameters().begin(), m.top().parameters().end());
  for (int t = 0; t < m.config().tables(); ++t)
    all.insert(all.end(), m.table(t).weights().begin(), m.table(t).weights().end());
  return all;
}

TEST(PvfDlrm, TrainingLearnsAndCleanLogitsMatchTheModel) {
  SmallDlrm s(60);
  EXPECT_LT(s.summary.last_loss, s.summary.first_loss);
  EXPECT_GT(s.summary.eval_auc, 0.55);
  for (DType d : {DType::fp32, DType::bf16, DType::fp16, DType::int8}) {
    s.target->prepare(d);
    const auto clean = s.target->logits_full(kTopBias, {});
    EXPECT_TRUE(
        same_bits(clean, {s.target->clean_logits().begin(), s.target->clean_logits().end()}))
        << name(d);
    EXPECT_EQ(s.target->classify(clean), Outcome::correct);
  }
}

TEST(PvfDlrm, ComponentsCoverEveryParameter) {
  SmallDlrm s(0);
  const dlrm::DlrmConfig& c = s.config;
  EXPECT_EQ(s.target->elements(kEmbedding), 4u * 300 * 8);
  EXPECT_EQ(s.target->elements(kBottomWeight), 13u * 32 + 32 * 8);
  EXPECT_EQ(s.target->elements(kBottomBias), 32u + 8);
  EXPECT_EQ(s.target->elements(kTopWeight), static_cast<uint64_t>(c.interaction_width()) * 16 + 16);
  EXPECT_EQ(s.target->elements(kTopBias), 16u + 1);
  for (int k = 0; k < kDlrmComponents; ++k)
    EXPECT_EQ(s.target->elements(k), dlrm_component_elements(c, k));
  // The last element of top.weight is the last weight of the logit layer.
  EXPECT_EQ(s.target->parameter(kTopWeight, s.target->elements(kTopWeight) - 1),
            s.model->top().weight(1) + 15);
  EXPECT_EQ(s.target->parameter(kEmbedding, 300 * 8 + 5), s.model->table(1).row(0) + 5);
}

// The core exactness test: for every component, type and fault model, the
// partial logits are the full forward's, bit for bit (NaN and Inf included),
// and the model is bit-identical afterwards.
TEST(PvfDlrm, PartialRecomputationEqualsFullForward) {
  SmallDlrm s(40);
  int nonclean = 0;
  for (DType d : {DType::fp32, DType::bf16, DType::fp16, DType::int8}) {
    s.target->prepare(d);
    const std::vector<float> before = snapshot(*s.model);
    for (const char* model : {"flip", "burst:5", "stuck1", "ber:2e-4"})
      for (int k = 0; k < kDlrmComponents; ++k)
        for (int trial = 0; trial < 25; ++trial) {
          Rng rng(trial_seed(9, static_cast<uint64_t>(k), static_cast<uint64_t>(trial)));
          const auto faults =
              sample_faults(parse_fault_model(model), d, BitClass::any, s.target->elements(k), rng);
          const auto partial = s.target->logits_partial(k, faults);
          const auto full = s.target->logits_full(k, faults);
          ASSERT_TRUE(same_bits(partial, full))
              << name(d) << " " << model << " " << dlrm_component_name(k) << " trial " << trial;
          nonclean += s.target->classify(partial) != Outcome::correct;
        }
    EXPECT_TRUE(same_bits(snapshot(*s.model), before)) << name(d);
  }
  EXPECT_GT(nonclean, 0);  // the faults did change outputs
}

// Exponent flips in the top MLP hit; an embedding row no evaluation sample
// reads changes nothing.
TEST(PvfDlrm, VerdictsFollowTheRule) {
  SmallDlrm s(40, 96, 0.1);
  s.target->prepare(DType::fp32);
  // The logit layer's bias, its exponent's top bit: a huge or zero shift of every logit.
  const uint64_t logit_bias = s.target->elements(kTopBias) - 1;
  const float b = *s.target->parameter(kTopBias, logit_bias);
  const ElementFault top{logit_bias, {1u << 30, 0, 0}};
  const Outcome o = s.target->inject(kTopBias, std::span(&top, 1));
  EXPECT_NE(o, Outcome::correct) << "bias " << b;
  EXPECT_EQ(*s.target->parameter(kTopBias, logit_bias), b);  // restored
  // A row of table 0 that no sample looks up.
  // Rows used are found by corrupting each and seeing whether any logit moved.
  int unused_row = -1;
  for (int row = 0; row < 300 && unused_row < 0; ++row) {
    const ElementFault f{static_cast<uint64_t>(row) * 8, {1u << 30, 0, 0}};
    const auto z = s.target->logits_full(kEmbedding, std::span(&f, 1));
    if (same_bits(z, {s.target->clean_logits().begin(), s.target->clean_logits().end()}))
      unused_row = row;
  }
  ASSERT_GE(unused_row, 0);
  const ElementFault f{static_cast<uint64_t>(unused_row) * 8, {1u << 30, 0, 0}};
  EXPECT_EQ(s.target->inject(kEmbedding, std::span(&f, 1)), Outcome::correct);
  // classify: a CTR move just above the threshold on one sample is incorrect; NaN is nan_inf.
  std::vector<float> z(s.target->clean_logits().begin(), s.target->clean_logits().end());
  EXPECT_EQ(s.target->classify(z), Outcome::correct);
  z[3] = std::nanf("");
  EXPECT_EQ(s.target->classify(z), Outcome::nan_inf);
  z[3] = s.target->clean_logits()[3];
  const double p = 1 / (1 + std::exp(-double{z[5]}));
  const double target_p = p > 0.5 ? p - 0.11 : p + 0.11;
  z[5] = static_cast<float>(std::log(target_p / (1 - target_p)));
  EXPECT_EQ(s.target->classify(z), Outcome::incorrect);
}

}  // namespace
}  // namespace paralab::pvf
