// Every layer's backward against central finite differences of its forward,
// in FP32 on tiny sizes. The objective is sum(r * output) for a fixed random
// r (so backward runs with d(output) = r); inputs and parameters are
// perturbed one element at a time.
#include <gtest/gtest.h>

#include <vector>

#include "model/attention.hpp"
#include "model/block.hpp"
#include "model/layers.hpp"
#include "model_test_support.hpp"

namespace paralab::model::test {
namespace {

TEST(LayerGradients, Embedding) {
  Parameters params(Precision::fp32);
  Embedding emb(params, "embed", 7, 5);
  params.init_normal(emb.table(), 1, 0.5);
  const std::vector<int32_t> tokens = {3, 1, 3, 6, 0};  // token 3 twice: gradients add
  const std::vector<float> r = random_vector(tokens.size() * 5, 2);
  std::vector<float> out(r.size());
  auto f = [&] {
    emb.forward(tokens, out.data());
    return dot(r, out);
  };
  emb.backward(tokens, r.data());
  const std::vector<float> g = grad_of(emb.table());
  for (int j = 0; j < 5; ++j) EXPECT_FLOAT_EQ(g[3 * 5 + j], r[0 * 5 + j] + r[2 * 5 + j]);
  expect_gradient("embedding", emb.table().values(), g, pick_indices(g, 100, 3), f);
}

TEST(LayerGradients, RmsNorm) {
  const int n = 4, d = 12;
  Parameters params(Precision::fp32);
  RmsNorm norm(params, "norm", d, 1e-5f);
  const std::vector<float> gain = random_vector(d, 4, 0.5f);
  for (int j = 0; j < d; ++j) norm.gain().set(j, 1.0f + gain[j]);
  std::vector<float> x = random_vector(n * d, 5), y(n * d), rstd(n), dx(n * d, 1.0f);
  const std::vector<float> r = random_vector(n * d, 6);
  auto f = [&] {
    norm.forward(x.data(), n, y.data(), rstd.data());
    return dot(r, y);
  };
  f();
  norm.backward(x.data(), rstd.data(), r.data(), n, dx.data(), /*accumulate=*/true);
  for (float& v : dx) v -= 1.0f;  // accumulate added to the ones
  expect_gradient("rmsnorm.dx", x, dx, pick_indices(dx, 100, 7), f);
  const std::vector<float> dg = grad_of(norm.gain());
  expect_gradient("rmsnorm.dgain", norm.gain().values(), dg, pick_indices(dg, 100, 8), f);
}

// The tolerances are tight enough to catch a plausible bug: an RMSNorm
// backward that forgets the term through the normaliser (treats rstd as a
// constant) is off by a few percent of the largest gradient, and must fail.
TEST(LayerGradients, CheckCatchesAMissingTerm) {
  const int n = 4, d = 12;
  Parameters params(Precision::fp32);
  RmsNorm norm(params, "norm", d, 1e-5f);
  std::vector<float> x = random_vector(n * d, 5), y(n * d), rstd(n);
  const std::vector<float> r = random_vector(n * d, 6);
  auto f = [&] {
    norm.forward(x.data(), n, y.data(), rstd.data());
    return dot(r, y);
  };
  f();
  std::vector<float> wrong(n * d);
  for (int i = 0; i < n * d; ++i) wrong[i] = r[i] * rstd[i / d];  // gain 1, no second term
  const GradError e = gradient_error(x, wrong, pick_indices(wrong, 100, 7), f, GradCheck{}.h);
  EXPECT_GT(e.worst, 10 * GradCheck{}.rtol);
}

TEST(LayerGradients, Linear) {
  const int n = 4, in = 6, out = 5;
  Parameters params(Precision::fp32);
  Linear lin(params, "lin", in, out);
  params.init_normal(lin.weight(), 9, 0.5);
  std::vector<float> x = random_vector(n * in, 10), y(n * out), dx(n * in);
  const std::vector<float> r = random_vector(n * out, 11);
  auto f = [&] {
    lin.forward({x.data()}, n, y.data());
    return dot(r, y);
  };
  lin.backward({x.data()}, {r.data()}, n, dx.data());
  expect_gradient("linear.dx", x, dx, pick_indices(dx, 100, 12), f);
  const std::vector<float> dw = grad_of(lin.weight());
  expect_gradient("linear.dw", lin.weight().values(), dw, pick_indices(dw, 100, 13), f);

  // accumulate adds to y and dx; the weight gradient always accumulates.
  std::vector<float> y2(n * out, 2.0f);
  lin.forward({x.data()}, n, y2.data(), true);
  f();
  for (int i = 0; i < n * out; ++i) EXPECT_FLOAT_EQ(y2[i], y[i] + 2.0f);
  lin.backward({x.data()}, {r.data()}, n, nullptr);
  for (size_t i = 0; i < dw.size(); ++i) EXPECT_FLOAT_EQ(lin.weight().grad()[i], 2 * dw[i]);
}

ModelConfig attention_config() {
  ModelConfig c;
  c.d_model = 64;
  c.heads = 4;
  c.kv_heads = 2;  // GQA: two query heads per key/value head; head_dim 16 (AVX-512 paths)
  c.ffn = 24;
  c.context = 16;
  return c;
}

// B = 2 sequences of T = 7: the first packs documents [0, 3) and [3, 7).
struct Layout {
  std::vector<std::vector<int64_t>> docs = {{0, 3}, {}};
  std::vector<int32_t> positions;
  SequenceLayout layout;
  explicit Layout(int batch = 2, int seq = 7) {
    Batch b;
    b.batch = batch;
    b.seq = seq;
    b.doc_starts = docs;
    positions = document_positions(b);
    layout = {batch, seq, docs, positions};
  }
};

TEST(LayerGradients, AttentionWithGqaAndDocuments) {
  const ModelConfig c = attention_config();
  Parameters params(Precision::fp32);
  Attention att(params, "attn", c);
  for (Parameter& p : params) params.init_normal(p, 14, 0.2);
  const Layout l;
  const int n = l.layout.tokens();
  std::vector<float> x = random_vector(n * c.d_model, 15), y(n * c.d_model), dx(n * c.d_model);
  const std::vector<float> r = random_vector(n * c.d_model, 16);
  Attention::Saved saved;
  auto f = [&] {
    Attention::Saved s;
    att.forward({x.data()}, l.layout, s, y.data(), false);
    return dot(r, y);
  };
  att.forward({x.data()}, l.layout, saved, y.data(), false);
  att.backward({x.data()}, l.layout, saved, r.data(), dx.data(), false);
  expect_gradient("attention.dx", x, dx, pick_indices(dx, 150, 17), f);
  for (Parameter& p : params) {
    const std::vector<float> g = grad_of(p);
    expect_gradient(p.name(), p.values(), g, pick_indices(g, 60, 18), f);
  }
}

// Attention never crosses a document and RoPE positions restart at each one,
// so the second document of a packed sequence gives the same output as the
// same tokens alone at the start of a sequence; and no gradient reaches the
// first document from the second's outputs.
TEST(LayerGradients, DocumentsAreIndependent) {
  const ModelConfig c = attention_config();
  Parameters params(Precision::fp32);
  Attention att(params, "attn", c);
  for (Parameter& p : params) params.init_normal(p, 19, 0.2);
  const int d = c.d_model;
  const Layout packed(1, 7);  // documents [0, 3) and [3, 7)
  std::vector<std::vector<int64_t>> alone_docs = {{}};
  std::vector<int32_t> alone_positions = {0, 1, 2, 3};
  const SequenceLayout alone{1, 4, alone_docs, alone_positions};

  const std::vector<float> x = random_vector(7 * d, 20);
  std::vector<float> y(7 * d), y_alone(4 * d);
  Attention::Saved saved;
  att.forward({x.data()}, packed.layout, saved, y.data(), false);
  Attention::Saved saved_alone;
  att.forward({x.data() + 3 * d}, alone, saved_alone, y_alone.data(), false);
  for (int i = 0; i < 4 * d; ++i) EXPECT_NEAR(y[3 * d + i], y_alone[i], 1e-5f) << i;

  std::vector<float> r(7 * d, 0.0f), dx(7 * d);
  for (int i = 3 * d; i < 7 * d; ++i) r[i] = 1.0f;  // the second document's outputs only
  att.backward({x.data()}, packed.layout, saved, r.data(), dx.data(), false);
  for (int i = 0; i < 3 * d; ++i) EXPECT_EQ(dx[i], 0.0f) << i;
  double second = 0;
  for (int i = 3 * d; i < 7 * d; ++i) second += std::fabs(dx[i]);
  EXPECT_GT(second, 0.0);
}

TEST(LayerGradients, SwiGluMlp) {
  const int n = 5, d = 16, ffn = 24;
  Parameters params(Precision::fp32);
  Mlp mlp(params, "mlp", d, ffn);
  for (Parameter& p : params) params.init_normal(p, 21, 0.3);
  std::vector<float> x = random_vector(n * d, 22), y(n * d), dx(n * d);
  const std::vector<float> r = random_vector(n * d, 23);
  auto f = [&] {
    Mlp::Saved s;
    mlp.forward({x.data()}, n, s, y.data(), false);
    return dot(r, y);
  };
  Mlp::Saved saved;
  mlp.forward({x.data()}, n, saved, y.data(), false);
  mlp.backward({x.data()}, saved, r.data(), n, dx.data(), false);
  expect_gradient("mlp.dx", x, dx, pick_indices(dx, 100, 24), f);
  for (Parameter& p : params) {
    const std::vector<float> g = grad_of(p);
    expect_gradient(p.name(), p.values(), g, pick_indices(g, 80, 25), f);
  }
}

TEST(LayerGradients, LmHeadAndCrossEntropy) {
  const int n = 6, d = 8, vocab = 11;
  Parameters params(Precision::fp32);
  Linear head(params, "lm_head", d, vocab);
  params.init_normal(head.weight(), 26, 0.5);
  const std::vector<int32_t> targets = {3, -1, 0, 10, 3, 7};  // row 1 is padding
  std::vector<float> x = random_vector(n * d, 27), logits(n * vocab), dx(n * d);
  auto f = [&] {
    head.forward({x.data()}, n, logits.data());
    return cross_entropy(logits.data(), targets, vocab, false, 0).mean();
  };
  const double loss = f();
  // The loss by hand: mean over the five counted rows of lse - logit[target].
  double expected = 0;
  for (int i = 0; i < n; ++i) {
    if (targets[i] < 0) continue;
    double sum = 0;
    for (int j = 0; j < vocab; ++j) sum += std::exp(double{logits[i * vocab + j]});
    expected += std::log(sum) - logits[i * vocab + targets[i]];
  }
  EXPECT_NEAR(loss, expected / 5, 1e-6);

  const LossSum sum = cross_entropy(logits.data(), targets, vocab, true, 1.0 / 5);
  EXPECT_EQ(sum.count, 5);
  for (int j = 0; j < vocab; ++j) EXPECT_EQ(logits[1 * vocab + j], 0.0f);  // ignored row
  head.backward({x.data()}, {logits.data()}, n, dx.data());
  for (int j = 0; j < d; ++j) EXPECT_EQ(dx[1 * d + j], 0.0f);
  expect_gradient("lm_head.dx", x, dx, pick_indices(dx, 100, 28), f);
  const std::vector<float> dw = grad_of(head.weight());
  expect_gradient("lm_head.dw", head.weight().values(), dw, pick_indices(dw, 100, 29), f);
}

TEST(LayerGradients, TransformerLayer) {
  ModelConfig c = attention_config();
  c.d_model = 32;
  c.heads = 4;
  c.kv_heads = 2;
  c.ffn = 48;
  Parameters params(Precision::fp32);
  TransformerLayer layer(params, "layers.0", c);
  for (Parameter& p : params) {
    if (p.decays()) params.init_normal(p, 30, 0.2);
  }
  // Gains away from 1, so their gradients are tested in general position.
  for (Parameter& p : params) {
    if (p.decays()) continue;
    const std::vector<float> g = random_vector(p.size(), 31, 0.3f);
    for (size_t i = 0; i < p.size(); ++i) p.set(i, 1.0f + g[i]);
  }
  const Layout l;
  const int n = l.layout.tokens();
  std::vector<float> x = random_vector(n * c.d_model, 32);
  const std::vector<float> r = random_vector(n * c.d_model, 33);
  auto f = [&] {
    TransformerLayer::Saved s;
    std::vector<float> y = x;
    layer.forward(y.data(), l.layout, s);
    return dot(r, y);
  };
  TransformerLayer::Saved saved;
  std::vector<float> y = x, dx = r;
  layer.forward(y.data(), l.layout, saved);
  layer.backward(dx.data(), l.layout, saved);
  expect_gradient("layer.dx", x, dx, pick_indices(dx, 100, 34), f);
  for (Parameter& p : params) {
    const std::vector<float> g = grad_of(p);
    expect_gradient(p.name(), p.values(), g, pick_indices(g, 30, 35), f);
  }
}

}  // namespace
}  // namespace paralab::model::test
