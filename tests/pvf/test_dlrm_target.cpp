// Fault injection into the DLRM (lib/pvf/dlrm_target.hpp): partial
// recomputation equals a full forward of the corrupted model bit for bit,
// injection is exactly reversible, and the verdicts follow their rule.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>

#include "core/errors.hpp"
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
    EXPECT_EQ(s.target->elements(k), dlrm_component_elements(c, default_dlrm_components()[k]));
  // The last element of top.weight is the last weight of the logit layer.
  EXPECT_EQ(s.target->parameter(kTopWeight, s.target->elements(kTopWeight) - 1),
            s.model->top().weight(1) + 15);
  EXPECT_EQ(s.target->parameter(kEmbedding, 300 * 8 + 5), s.model->table(1).row(0) + 5);
}

// One table, one MLP layer (weights, bias or both), a whole MLP.
const std::vector<std::string> kPerLayer{"embedding.2", "bottom.0.weight", "bottom.1.bias",
                                         "bottom.1",    "top.0",           "top.1.weight",
                                         "top.1.bias",  "bottom",          "top"};

TEST(PvfDlrm, PerLayerComponentsNameTheirTensors) {
  SmallDlrm s(0, 96, 0.1, kPerLayer);
  const dlrm::DlrmConfig& c = s.config;
  ASSERT_EQ(s.target->components(), kDlrmComponents + static_cast<int>(kPerLayer.size()));
  for (int k = 0; k < s.target->components(); ++k) {
    const std::string n = s.target->component_name(k);
    EXPECT_EQ(s.target->elements(k), dlrm_component_elements(c, parse_dlrm_component(n, c))) << n;
  }
  auto index = [&](const std::string& n) {
    for (int k = 0; k < s.target->components(); ++k)
      if (s.target->component_name(k) == n) return k;
    ADD_FAILURE() << n;
    return 0;
  };
  const int iw = c.interaction_width();
  EXPECT_EQ(s.target->elements(index("embedding.2")), 300u * 8);
  EXPECT_EQ(s.target->parameter(index("embedding.2"), 8 + 3), s.model->table(2).row(1) + 3);
  EXPECT_EQ(s.target->elements(index("bottom.0.weight")), 13u * 32);
  EXPECT_EQ(s.target->parameter(index("bottom.0.weight"), 0), s.model->bottom().weight(0));
  EXPECT_EQ(s.target->elements(index("bottom.1.bias")), 8u);
  EXPECT_EQ(s.target->parameter(index("bottom.1.bias"), 7), s.model->bottom().bias(1) + 7);
  // A whole layer: its weights, then its bias.
  EXPECT_EQ(s.target->elements(index("bottom.1")), 32u * 8 + 8);
  EXPECT_EQ(s.target->parameter(index("bottom.1"), 32 * 8), s.model->bottom().bias(1));
  EXPECT_EQ(s.target->elements(index("top.0")), static_cast<uint64_t>(iw) * 16 + 16);
  EXPECT_EQ(s.target->elements(index("top.1.weight")), 16u);
  EXPECT_EQ(s.target->parameter(index("top.1.bias"), 0), s.model->top().bias(1));
  // A whole MLP: every layer's weights and bias, layer by layer.
  EXPECT_EQ(s.target->elements(index("top")),
            s.target->elements(kTopWeight) + s.target->elements(kTopBias));
  EXPECT_EQ(s.target->parameter(index("top"), static_cast<uint64_t>(iw) * 16 + 16),
            s.model->top().weight(1));
  // The layers of a part add up to it.
  EXPECT_EQ(dlrm_component_elements(c, parse_dlrm_component("bottom.0.weight", c)) +
                dlrm_component_elements(c, parse_dlrm_component("bottom.1.weight", c)),
            s.target->elements(kBottomWeight));
}

TEST(PvfDlrm, ComponentNamesParse) {
  const dlrm::DlrmConfig c = test::small_config();
  EXPECT_EQ(parse_dlrm_component("top.weight", c).name, "top.weight");
  EXPECT_EQ(parse_dlrm_component("embedding.03", c).name, "embedding.3");
  const DlrmComponent l = parse_dlrm_component("top.1", c);
  EXPECT_EQ(l.block, DlrmBlock::top);
  EXPECT_EQ(l.index, 1);
  EXPECT_TRUE(l.weight && l.bias);
  const DlrmComponent b = parse_dlrm_component("bottom.0.bias", c);
  EXPECT_EQ(b.block, DlrmBlock::bottom);
  EXPECT_TRUE(!b.weight && b.bias);
  auto message = [&](const std::string& n) {
    try {
      parse_dlrm_component(n, c);
    } catch (const UsageError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(message("bottom.2.weight")
                .find("layer 2 out of range (the model has 2 bottom MLP "
                      "layers: 0 to 1)"),
            std::string::npos);
  EXPECT_NE(message("top.2").find("layer 2 out of range (the model has 2 top MLP layers"),
            std::string::npos);
  EXPECT_NE(message("embedding.4").find("table 4 out of range (the model has 4 tables: 0 to 3)"),
            std::string::npos);
  for (const char* bad : {"interaction", "bottom.x", "bottom.-1", "bottom.0.gain", "top.weight.0",
                          "embedding.0.weight", "embedding.weight", "bottom.", "top..bias", ""})
    EXPECT_NE(message(bad).find("unknown DLRM component"), std::string::npos) << bad;
}

// The core exactness test: for every component (the five and per-layer
// ones), type and fault model, the partial logits are the full forward's, bit
// for bit (NaN and Inf included), and the model is bit-identical afterwards.
TEST(PvfDlrm, PartialRecomputationEqualsFullForward) {
  SmallDlrm s(40, 96, 0.1, kPerLayer);
  int nonclean = 0;
  for (DType d : {DType::fp32, DType::bf16, DType::fp16, DType::int8}) {
    s.target->prepare(d);
    const std::vector<float> before = snapshot(*s.model);
    for (const char* model : {"flip", "burst:5", "stuck1", "ber:2e-4"})
      for (int k = 0; k < s.target->components(); ++k)
        for (int trial = 0; trial < 25; ++trial) {
          Rng rng(trial_seed(9, static_cast<uint64_t>(k), static_cast<uint64_t>(trial)));
          const auto faults =
              sample_faults(parse_fault_model(model), d, BitClass::any, s.target->elements(k), rng);
          const auto partial = s.target->logits_partial(k, faults);
          const auto full = s.target->logits_full(k, faults);
          ASSERT_TRUE(same_bits(partial, full))
              << name(d) << " " << model << " " << s.target->component_name(k) << " trial "
              << trial;
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
