// Threads in the model tests.
//
// The tests run tiny models, where threads cost more than they give, and on a
// shared two-core machine OpenBLAS's own (pthreads) workers and the OpenMP
// pool of the attention kernels fight over the cores: one FP32 training test
// took 23 s instead of 0.7 s under load. So every model test runs on one
// thread (set before the first test), except the test below, which checks
// that the engine's own parallel loops give the single-thread result.
#include <gtest/gtest.h>

#include <vector>

#include "kernels/threads.hpp"
#include "model/model.hpp"
#include "model_test_support.hpp"

namespace paralab::model::test {
namespace {

class OneThread : public ::testing::Environment {
 public:
  void SetUp() override { kernels::set_threads(1); }
};
const auto* const kOneThread = ::testing::AddGlobalTestEnvironment(new OneThread);

// Sizes above the engine's threading threshold (64k elements per loop):
// N = 4 * 128 tokens of width 128. BF16 compute keeps OpenBLAS out of it.
TEST(Threads, ParallelLoopsMatchOneThread) {
  ModelConfig c;
  c.vocab = 64;
  c.layers = 1;
  c.d_model = 128;
  c.heads = 4;
  c.kv_heads = 2;
  c.ffn = 256;
  c.context = 128;
  MarkovChain chain(64, 0.9, 3);
  const MarkovChain::Data data = chain.sample(4, 128);
  auto gradients = [&](int threads, double& loss) {
    kernels::set_threads(threads);
    Model model(c, Precision::bf16_mixed, 11);
    model.parameters().zero_grads();
    loss = model.forward_backward(data.batch(4, 128));
    kernels::set_threads(1);
    return std::vector<float>(model.parameters().grads().begin(), model.parameters().grads().end());
  };
  double loss1 = 0, loss2 = 0, loss2_again = 0;
  const std::vector<float> g1 = gradients(1, loss1);
  const std::vector<float> g2 = gradients(2, loss2);
  const std::vector<float> g2_again = gradients(2, loss2_again);
  EXPECT_EQ(loss2, loss2_again);  // reproducible for a given thread count
  EXPECT_EQ(g2, g2_again);
  EXPECT_NEAR(loss1, loss2, 1e-5 * loss1);
  double diff = 0, norm = 0;
  for (size_t i = 0; i < g1.size(); ++i) {
    diff += (double{g1[i]} - g2[i]) * (double{g1[i]} - g2[i]);
    norm += double{g1[i]} * g1[i];
  }
  EXPECT_LT(std::sqrt(diff / norm), 1e-3);  // summation order only; a race is far larger
}

}  // namespace
}  // namespace paralab::model::test
