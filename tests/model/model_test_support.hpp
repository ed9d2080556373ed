// model_test_support.hpp: helpers shared by the training-engine tests: random
// buffers, central finite differences in FP32 and a gradient comparison.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "../common/gradient_check.hpp"

#include "model/config.hpp"
#include "model/parameters.hpp"

namespace paralab::model::test {

// The small model the training, checkpoint and data-parallel tests share:
// two layers, d 32, GQA 4:2, vocabulary 16, `context` tokens.
inline ModelConfig small_model(int context) {
  ModelConfig c;
  c.vocab = 16;
  c.layers = 2;
  c.d_model = 32;
  c.heads = 4;
  c.kv_heads = 2;
  c.ffn = 64;
  c.context = context;
  return c;
}

using ::paralab::test::dot;
using ::paralab::test::random_vector;

// (f(x + h) - f(x - h)) / (the FP32 step actually taken), x restored.
inline double central_difference(const std::function<float()>& get,
                                 const std::function<void(float)>& set,
                                 const std::function<double()>& f, float h) {
  const float x0 = get();
  const float up = x0 + h, down = x0 - h;
  set(up);
  const double f_up = f();
  set(down);
  const double f_down = f();
  set(x0);
  return (f_up - f_down) / (double{up} - double{down});
}

// Compares analytic gradients with central differences at `indices` of a
// buffer x: |fd - analytic| <= atol + rtol * max |analytic| over the
// buffer (a relative error that stays meaningful for near-zero entries).
struct GradCheck {
  float h = 1e-2f;
  double rtol = 2e-3;
  double atol = 1e-5;
};

// The worst |fd - analytic| over `indices`, relative to max |analytic|.
struct GradError {
  double worst = 0;  // relative to scale
  double scale = 0;  // max |analytic| over the buffer
  size_t index = 0;  // where the worst is
  double fd = 0, analytic = 0;
};

inline GradError gradient_error(std::span<float> x, std::span<const float> analytic,
                                const std::vector<size_t>& indices,
                                const std::function<double()>& f, float h) {
  GradError e;
  for (float g : analytic) e.scale = std::max(e.scale, double{std::fabs(g)});
  for (size_t i : indices) {
    const double fd = central_difference([&] { return x[i]; }, [&](float v) { x[i] = v; }, f, h);
    const double err = std::fabs(fd - analytic[i]) / e.scale;
    if (err >= e.worst) e = {err, e.scale, i, fd, analytic[i]};
  }
  return e;
}

inline void expect_gradient(const std::string& what, std::span<float> x,
                            std::span<const float> analytic, const std::vector<size_t>& indices,
                            const std::function<double()>& f, const GradCheck& check = {}) {
  const GradError e = gradient_error(x, analytic, indices, f, check.h);
  ASSERT_GT(e.scale, 0) << what << ": the analytic gradient is all zero";
  EXPECT_LE(e.worst * e.scale, check.atol + check.rtol * e.scale)
      << what << "[" << e.index << "]: finite difference " << e.fd << ", analytic " << e.analytic
      << " (largest |gradient| " << e.scale << ")";
  if (std::getenv("PARALAB_MODEL_TEST_VERBOSE")) {
    std::printf("  %-28s worst |fd - analytic| / max|g| = %.2e\n", what.c_str(), e.worst);
  }
}

// All indices of a small buffer, or `count` random ones plus the index of
// the largest |gradient| (so a check never sees only near-zero entries).
inline std::vector<size_t> pick_indices(std::span<const float> analytic, size_t count,
                                        uint64_t seed) {
  std::vector<size_t> indices;
  if (analytic.size() <= count) {
    for (size_t i = 0; i < analytic.size(); ++i) indices.push_back(i);
    return indices;
  }
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<size_t> dist(0, analytic.size() - 1);
  for (size_t k = 0; k < count; ++k) indices.push_back(dist(rng));
  size_t largest = 0;
  for (size_t i = 1; i < analytic.size(); ++i) {
    if (std::fabs(analytic[i]) > std::fabs(analytic[largest])) largest = i;
  }
  indices.push_back(largest);
  return indices;
}

// A copy of a tensor's gradient (backward accumulates into the registry).
inline std::vector<float> grad_of(Parameter& p) {
  return {p.grad().begin(), p.grad().end()};
}

}  // namespace paralab::model::test

namespace paralab::model::test {

// Token streams from a fixed random order-1 Markov chain: from token a the
// next token is successor[a] with probability `stay`, otherwise uniform. The
// best achievable loss is the chain's entropy rate (about 0.6 nats for 16
// tokens and stay = 0.9), far below log(vocab) where training starts.
class MarkovChain {
 public:
  MarkovChain(int vocab, double stay, uint64_t seed) : vocab_(vocab), stay_(stay), rng_(seed) {
    successor_.resize(vocab);
    for (int a = 0; a < vocab; ++a) successor_[a] = a;
    std::shuffle(successor_.begin(), successor_.end(), rng_);
  }
  double entropy_rate() const {
    const double other = (1 - stay_) / vocab_;
    const double p_succ = stay_ + other;
    return -(p_succ * std::log(p_succ) + (vocab_ - 1) * other * std::log(other));
  }
  // B sequences of T + 1 tokens give tokens and next-token targets.
  struct Data {
    std::vector<int32_t> tokens, targets;
    Batch batch(int b, int t) const { return Batch{b, t, tokens, targets}; }
  };
  Data sample(int batch, int seq) {
    Data d;
    std::uniform_real_distribution<double> u(0, 1);
    std::uniform_int_distribution<int> any(0, vocab_ - 1);
    for (int b = 0; b < batch; ++b) {
      int cur = any(rng_);
      for (int t = 0; t <= seq; ++t) {
        if (t < seq) d.tokens.push_back(cur);
        if (t > 0) d.targets.push_back(cur);
        cur = u(rng_) < stay_ ? successor_[cur] : any(rng_);
      }
    }
    return d;
  }

 private:
  int vocab_;
  double stay_;
  std::mt19937_64 rng_;
  std::vector<int> successor_;
};

}  // namespace paralab::model::test
