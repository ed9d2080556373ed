// Document-length generators: ranges, seeds, shapes, the spec parser's
// messages, length files and global batches.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "core/errors.hpp"
#include "packing/packing.hpp"

namespace paralab::packing {
namespace {

std::vector<int64_t> draw(std::string_view spec, int64_t context, int64_t max_length, uint64_t seed,
                          int count) {
  auto source = make_length_source(spec, context, max_length, seed);
  std::vector<int64_t> lengths;
  for (int i = 0; i < count; ++i) lengths.push_back(source->next());
  return lengths;
}

double median(std::vector<int64_t> values) {
  std::sort(values.begin(), values.end());
  return double(values[values.size() / 2]);
}

// The message of the UsageError `spec` raises.
std::string spec_error(std::string_view spec) {
  try {
    make_length_source(spec, 1000, 1000, 1);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Lengths, EveryGeneratorStaysInRange) {
  const int64_t context = 4096, max_length = 3000;
  for (const char* spec :
       {"lognormal:mu=8,sigma=1.5", "pareto:alpha=1.2,min=256", "normal:mean=0.5,std=0.5",
        "mix:0.9*lognormal:mu=7,sigma=1|0.1*pareto:alpha=1,min=2048", "uniform:min=1,max=9000",
        "const:length=5000"}) {
    const auto lengths = draw(spec, context, max_length, 11, 5000);
    for (int64_t length : lengths) {
      ASSERT_GE(length, 1) << spec;
      ASSERT_LE(length, max_length) << spec;
    }
  }
}

TEST(Lengths, NormalIsClippedToTheContextEvenWhenLongerAreAllowed) {
  const auto lengths = draw("normal:mean=0.5,std=0.5", 1000, 5000, 12, 5000);
  EXPECT_EQ(*std::max_element(lengths.begin(), lengths.end()), 1000);
}

TEST(Lengths, SameSeedSameLengthsOtherSeedOthers) {
  const std::string spec = paper_like_spec(131072);
  EXPECT_EQ(draw(spec, 131072, 131072, 5, 300), draw(spec, 131072, 131072, 5, 300));
  EXPECT_NE(draw(spec, 131072, 131072, 5, 300), draw(spec, 131072, 131072, 6, 300));
}

TEST(Lengths, ShapesFollowTheirParameters) {
  // lognormal: the median is exp(mu).
  EXPECT_NEAR(median(draw("lognormal:mu=8,sigma=1", 1 << 20, 1 << 20, 1, 20000)), std::exp(8.0),
              0.05 * std::exp(8.0));
  // pareto: never below min; P(X > 2 min) = 2^-alpha.
  const auto pareto = draw("pareto:alpha=1.5,min=100", 1 << 20, 1 << 20, 2, 20000);
  EXPECT_GE(*std::min_element(pareto.begin(), pareto.end()), 100);
  const double above =
      double(std::count_if(pareto.begin(), pareto.end(), [](int64_t x) { return x > 200; })) /
      double(pareto.size());
  EXPECT_NEAR(above, std::pow(2.0, -1.5), 0.015);
  // normal(0.5, 0.5) x context clipped: about 16% at each clip bound.
  const auto normal = draw("normal:mean=0.5,std=0.5", 1000, 1000, 3, 20000);
  const double at_top = double(std::count(normal.begin(), normal.end(), 1000)) / 20000.0;
  const double at_bottom = double(std::count(normal.begin(), normal.end(), 1)) / 20000.0;
  EXPECT_NEAR(at_top, 0.159, 0.015);
  EXPECT_NEAR(at_bottom, 0.159, 0.015);
  // A mixture takes its parts by weight.
  const auto mix = draw("mix:3*const:length=10|1*const:length=20", 100, 100, 4, 20000);
  EXPECT_NEAR(double(std::count(mix.begin(), mix.end(), 10)) / 20000.0, 0.75, 0.015);
}

TEST(Lengths, PaperLikeIsMostlyShortWithAFewAtTheContext) {
  const int64_t context = 131072;
  const auto lengths = draw(paper_like_spec(context), context, context, 9, 20000);
  EXPECT_LT(median(lengths), double(context) / 16);
  const double at_context =
      double(std::count(lengths.begin(), lengths.end(), context)) / double(lengths.size());
  EXPECT_GT(at_context, 0.01);
  EXPECT_LT(at_context, 0.10);
  double long_tokens = 0, tokens = 0;
  for (int64_t length : lengths) {
    tokens += double(length);
    if (length >= context / 8) long_tokens += double(length);
  }
  EXPECT_GT(long_tokens / tokens, 0.5);  // the tail holds most tokens
}

TEST(Lengths, BadSpecsSayWhatIsWrong) {
  EXPECT_NE(spec_error("gamma:k=2").find("unknown distribution 'gamma'"), std::string::npos);
  EXPECT_NE(spec_error("lognormal:mu=8").find("needs the parameter 'sigma'"), std::string::npos);
  EXPECT_NE(spec_error("lognormal:mu=8,sigma=x").find("'sigma' ('x') is not a number"),
            std::string::npos);
  EXPECT_NE(spec_error("lognormal:mu=8,sigma=1,theta=2").find("has no parameter 'theta'"),
            std::string::npos);
  EXPECT_NE(spec_error("pareto:alpha=0,min=5").find("'alpha' must be positive"), std::string::npos);
  EXPECT_NE(spec_error("lognormal:mu").find("not KEY=VALUE"), std::string::npos);
  EXPECT_NE(spec_error("mix:0.5*const:length=3|const:length=4").find("is not WEIGHT*SPEC"),
            std::string::npos);
  EXPECT_NE(spec_error("mix:-1*const:length=3").find("must be positive"), std::string::npos);
  EXPECT_NE(spec_error("").find("empty distribution name"), std::string::npos);
  EXPECT_NE(spec_error("file:/nonexistent/lengths.txt").find("cannot be read"), std::string::npos);
  EXPECT_NE(spec_error("uniform:min=9,max=3").find("at least min"), std::string::npos);
  // Every message names the spec.
  EXPECT_NE(spec_error("gamma:k=2").find("length spec 'gamma:k=2'"), std::string::npos);
  EXPECT_THROW(make_length_source("const:length=3", 0, 10, 1), UsageError);
  EXPECT_THROW(make_length_source("const:length=3", 10, 0, 1), UsageError);
}

class LengthFile : public ::testing::Test {
 protected:
  // One file per test: ctest runs the tests of this fixture in parallel processes.
  std::string path = ::testing::TempDir() + "packing_lengths_" +
                     ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".txt";
  void write(const std::string& text) { std::ofstream(path) << text; }
  void TearDown() override { std::remove(path.c_str()); }
};

TEST_F(LengthFile, CyclesItsLengthsClipped) {
  write("# lengths\n5\n\n70  # long\n3\n");
  const auto lengths = draw("file:" + path, 100, 50, 0, 7);
  EXPECT_EQ(lengths, (std::vector<int64_t>{5, 50, 3, 5, 50, 3, 5}));
  // The seed rotates the starting line.
  EXPECT_EQ(draw("file:" + path, 100, 50, 1, 3), (std::vector<int64_t>{50, 3, 5}));
}

TEST_F(LengthFile, BadLinesAreNamed) {
  write("5\nabc\n");
  try {
    make_length_source("file:" + path, 100, 100, 0);
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
  }
  write("5\n-4\n");
  EXPECT_THROW(make_length_source("file:" + path, 100, 100, 0), UsageError);
  write("# nothing\n");
  EXPECT_THROW(make_length_source("file:" + path, 100, 100, 0), UsageError);
}

TEST(GlobalBatch, ReachesItsTokensWithWholeDocuments) {
  auto source = make_length_source("uniform:min=1,max=1000", 1000, 1000, 4);
  int64_t next_id = 10;
  const auto docs = next_global_batch(*source, 10000, 3, next_id);
  int64_t sum = 0;
  for (size_t i = 0; i < docs.size(); ++i) {
    EXPECT_EQ(docs[i].id, 10 + int64_t(i));
    EXPECT_EQ(docs[i].arrival, 3);
    sum += docs[i].length;
  }
  EXPECT_GE(sum, 10000);
  EXPECT_LT(sum - docs.back().length, 10000);
  EXPECT_EQ(next_id, 10 + int64_t(docs.size()));
  EXPECT_THROW(next_global_batch(*source, 0, 0, next_id), UsageError);
}

TEST(GlobalBatch, BatchesBringTheirTokensOnAverage) {
  // Each batch draws until the running total reaches (batches + 1) x tokens:
  // its overshoot comes off the next one, so the total after k batches is
  // within one document of k x tokens, while next_global_batch overshoots
  // every time.
  const int64_t tokens = 5000;
  GlobalBatches batches(make_length_source("uniform:min=1,max=1000", 1000, 1000, 4), tokens);
  auto reference = make_length_source("uniform:min=1,max=1000", 1000, 1000, 4);
  int64_t total = 0, next_id = 0, reference_id = 0, reference_total = 0;
  for (int64_t k = 1; k <= 50; ++k) {
    const std::vector<Document> docs = batches.next();
    EXPECT_EQ(batches.iteration(), k);
    for (const Document& doc : docs) {
      EXPECT_EQ(doc.arrival, k - 1);
      EXPECT_EQ(doc.id, next_id++);
      EXPECT_EQ(doc.offset, 0);
      total += doc.length;
    }
    EXPECT_GE(total, k * tokens);
    EXPECT_LT(total - docs.back().length, k * tokens);
    for (const Document& doc : next_global_batch(*reference, tokens, k - 1, reference_id))
      reference_total += doc.length;
  }
  EXPECT_LT(total, 50 * tokens + 1000);
  EXPECT_GT(reference_total, 50 * tokens + 50 * 100);  // ~ +333 per batch on average
  EXPECT_THROW(GlobalBatches(make_length_source("const:length=5", 10, 10, 0), 0), UsageError);
}

}  // namespace
}  // namespace paralab::packing
