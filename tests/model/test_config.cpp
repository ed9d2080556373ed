// Configurations, batches and precision names: bad input is a UsageError
// whose message names the problem.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "core/errors.hpp"
#include "model/model.hpp"

namespace paralab::model::test {
namespace {

// Expects f to throw a UsageError whose message contains `needle`.
void expect_usage_error(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no UsageError (expected one mentioning '" << needle << "')";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
        << "message '" << e.what() << "' does not mention '" << needle << "'";
  }
}

ModelConfig good() {
  ModelConfig c;
  c.vocab = 32;
  c.layers = 1;
  c.d_model = 32;
  c.heads = 4;
  c.kv_heads = 2;
  c.ffn = 48;
  c.context = 16;
  return c;
}

TEST(ModelConfig, RejectsImpossibleSizes) {
  EXPECT_NO_THROW(validate(good()));
  auto with = [](auto change) {
    ModelConfig c = good();
    change(c);
    return [c] { validate(c); };
  };
  expect_usage_error(with([](ModelConfig& c) { c.heads = 5; }),
                     "heads (5) must divide d_model (32)");
  expect_usage_error(with([](ModelConfig& c) { c.kv_heads = 3; }),
                     "kv_heads (3) must divide heads (4)");
  expect_usage_error(with([](ModelConfig& c) { c.vocab = 1; }), "vocab");
  expect_usage_error(with([](ModelConfig& c) { c.layers = 0; }), "layers");
  expect_usage_error(with([](ModelConfig& c) { c.d_model = -8; }), "d_model");
  expect_usage_error(with([](ModelConfig& c) { c.heads = 0; }), "heads must be positive");
  expect_usage_error(with([](ModelConfig& c) { c.kv_heads = 0; }), "kv_heads");
  expect_usage_error(with([](ModelConfig& c) { c.ffn = 0; }), "ffn");
  expect_usage_error(with([](ModelConfig& c) { c.context = 0; }), "context");
  expect_usage_error(with([](ModelConfig& c) { c.norm_eps = 0; }), "norm_eps");
  expect_usage_error(with([](ModelConfig& c) { c.init_std = -1; }), "init_std");
  // head_dim 32 / 32 = 1 is odd: fine without RoPE only.
  expect_usage_error(with([](ModelConfig& c) { c.heads = c.kv_heads = 32; }),
                     "RoPE needs an even head dimension");
  ModelConfig no_rope = good();
  no_rope.heads = no_rope.kv_heads = 32;
  no_rope.rope_theta = 0;
  EXPECT_NO_THROW(validate(no_rope));
  // The model constructor validates too.
  expect_usage_error(
      [] {
        ModelConfig c = good();
        c.kv_heads = 3;
        Model m(c, Precision::fp32, 1);
      },
      "kv_heads");
}

TEST(Batch, RejectsWhatDoesNotFit) {
  Model model(good(), Precision::fp32, 1);
  std::vector<int32_t> tokens(2 * 8, 1), targets(2 * 8, 2);
  std::vector<std::vector<int64_t>> docs = {{0, 5}, {}};
  auto run = [&](Batch b) { return [&model, b] { model.evaluate(b); }; };
  EXPECT_NO_THROW(model.evaluate(Batch{2, 8, tokens, targets, docs}));
  expect_usage_error(run(Batch{2, 9, tokens, targets}), "tokens has 16 ids but B * T = 18");
  expect_usage_error(run(Batch{1, 32, std::span(tokens).first(16), targets}),
                     "exceeds the model context 16");
  expect_usage_error(run(Batch{0, 8, {}, {}}), "batch (B) must be at least 1");
  expect_usage_error(run(Batch{2, 8, tokens, std::span(targets).first(10)}), "targets has 10");
  tokens[3] = 32;
  expect_usage_error(run(Batch{2, 8, tokens, targets}), "token id 32 at 3 is outside 0..31");
  tokens[3] = 1;
  targets[5] = 40;
  expect_usage_error(run(Batch{2, 8, tokens, targets}), "target id 40");
  targets[5] = -1;  // padding is fine
  EXPECT_NO_THROW(model.evaluate(Batch{2, 8, tokens, targets}));
  std::vector<std::vector<int64_t>> unsorted = {{0, 5, 2}, {}};
  expect_usage_error(run(Batch{2, 8, tokens, targets, unsorted}), "not ascending");
  std::vector<std::vector<int64_t>> outside = {{0}, {0, 8}};
  expect_usage_error(run(Batch{2, 8, tokens, targets, outside}), "document start 8 of sequence 1");
  std::vector<std::vector<int64_t>> one_list = {{0}};
  expect_usage_error(run(Batch{2, 8, tokens, targets, one_list}), "doc_starts has 1 lists");
}

TEST(Batch, AllPaddingGivesZeroLossAndNoGradient) {
  Model model(good(), Precision::fp32, 1);
  std::vector<int32_t> tokens(8, 1), targets(8, -1);
  model.parameters().zero_grads();
  EXPECT_EQ(model.forward_backward(Batch{1, 8, tokens, targets}), 0.0);
  for (float g : model.parameters().grads()) ASSERT_EQ(g, 0.0f);
}

TEST(Batch, DocumentPositionsRestartAtEachDocument) {
  std::vector<std::vector<int64_t>> docs = {{0, 3, 3, 5}, {2}};
  Batch b{2, 6, {}, {}, docs};
  EXPECT_EQ(document_positions(b), (std::vector<int32_t>{0, 1, 2, 0, 1, 0, 0, 1, 0, 1, 2, 3}));
  Batch plain{1, 4, {}, {}};
  EXPECT_EQ(document_positions(plain), (std::vector<int32_t>{0, 1, 2, 3}));
}

TEST(PrecisionNames, ParseAndPrint) {
  const std::vector<std::string> names = {"fp32", "bf16-mixed", "bf16-pure-rne", "bf16-pure-sr",
                                          "bf16-pure-kahan"};
  ASSERT_EQ(all_precisions().size(), names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(parse_precision(names[i]), all_precisions()[i]);
    EXPECT_EQ(to_string(all_precisions()[i]), names[i]);
  }
  expect_usage_error([] { parse_precision("bf16"); },
                     "unknown precision 'bf16' (expected one of: fp32, bf16-mixed");
  EXPECT_FALSE(computes_in_bf16(Precision::fp32));
  EXPECT_TRUE(computes_in_bf16(Precision::bf16_mixed));
  EXPECT_FALSE(stores_bf16_weights(Precision::bf16_mixed));
  EXPECT_TRUE(stores_bf16_weights(Precision::bf16_pure_sr));
}

}  // namespace
}  // namespace paralab::model::test
