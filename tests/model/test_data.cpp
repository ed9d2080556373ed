// The engine's data: the Markov source's entropy rate against an empirical
// estimate, sampling determinism, and the byte corpus.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "core/errors.hpp"
#include "model/data.hpp"

namespace paralab::model {
namespace {

TEST(MarkovSource, EntropyRateMatchesTheEmpiricalConditionalEntropy) {
  for (int order : {1, 2}) {
    const MarkovSource source(4, order, 0.5, 7);
    // Counts of (context, next) over long sequences estimate H(next | context).
    std::map<std::pair<int, int>, double> pairs;
    std::map<int, double> contexts;
    const SampledBatch b = source.sample(64, 4096, 1);
    for (int row = 0; row < b.batch; ++row)
      for (int i = order - 1; i < b.seq; ++i) {
        int context = 0;
        for (int j = i - order + 1; j <= i; ++j) context = context * 4 + b.tokens[row * b.seq + j];
        pairs[{context, b.targets[row * b.seq + i]}] += 1;
        contexts[context] += 1;
      }
    double total = 0, entropy = 0;
    for (const auto& [c, n] : contexts) total += n;
    for (const auto& [key, n] : pairs) entropy -= n / total * std::log(n / contexts[key.first]);
    EXPECT_NEAR(entropy, source.entropy_rate_nats(), 0.01) << "order " << order;
    EXPECT_GT(source.entropy_rate_nats(), 0.1);
    EXPECT_LT(source.entropy_rate_nats(), std::log(4.0));
  }
}

TEST(MarkovSource, ConcentrationSetsTheEntropy) {
  EXPECT_LT(MarkovSource(16, 1, 0.01, 1).entropy_rate_nats(), 0.5);
  EXPECT_NEAR(MarkovSource(16, 1, 1e4, 1).entropy_rate_nats(), std::log(16.0), 0.01);
}

TEST(MarkovSource, TargetsAreTheNextInputsAndRowsDoNotDependOnTheBatch) {
  const MarkovSource source(8, 2, 0.3, 3);
  const SampledBatch four = source.sample(4, 33, 5), two = source.sample(2, 33, 5);
  EXPECT_EQ(four.rows(0, 2).tokens, two.tokens);
  EXPECT_EQ(four.rows(0, 2).targets, two.targets);
  for (int row = 0; row < 4; ++row)
    for (int i = 0; i + 1 < 33; ++i)
      EXPECT_EQ(four.targets[row * 33 + i], four.tokens[row * 33 + i + 1]);
  EXPECT_NE(source.sample(2, 33, 6).tokens, two.tokens);
}

TEST(MarkovSource, BadParametersAreUsageErrors) {
  EXPECT_THROW(MarkovSource(1, 1, 1, 1), UsageError);
  EXPECT_THROW(MarkovSource(4, 0, 1, 1), UsageError);
  EXPECT_THROW(MarkovSource(4, 1, 0, 1), UsageError);
  EXPECT_THROW(MarkovSource(256, 3, 1, 1), UsageError);  // 2^24 contexts
}

TEST(TextCorpus, LoadsFilesSkipsIndexesAndSplitsTheTail) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "paralab_corpus_test";
  fs::create_directories(dir);
  std::ofstream(dir / "a") << std::string(900, 'a');
  std::ofstream(dir / "b") << std::string(100, 'b');
  std::ofstream(dir / "a.dat") << "index bytes that must not be read";
  const TextCorpus corpus = TextCorpus::load({dir.string()}, 0.1);
  EXPECT_EQ(corpus.size(TextCorpus::Split::train), 900u);
  EXPECT_EQ(corpus.size(TextCorpus::Split::heldout), 100u);
  const SampledBatch held = corpus.sample(TextCorpus::Split::heldout, 3, 50, 1, 9);
  for (int32_t t : held.tokens) EXPECT_EQ(t, 'b');
  const SampledBatch train = corpus.sample(TextCorpus::Split::train, 3, 50, 1, 9);
  for (int32_t t : train.targets) EXPECT_EQ(t, 'a');
  EXPECT_THROW(corpus.sample(TextCorpus::Split::heldout, 1, 100, 1, 9), UsageError);
  EXPECT_THROW(TextCorpus::load({(dir / "missing").string()}, 0.1), UsageError);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace paralab::model
