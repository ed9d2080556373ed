// Micro-batch basics, the workload model and its fit, imbalance metrics and
// the name parsers.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <utility>
#include <vector>

#include "core/errors.hpp"
#include "packing/packing.hpp"

namespace paralab::packing {
namespace {

MicroBatch batch_of(std::vector<int64_t> lengths) {
  MicroBatch mb;
  int64_t id = 0;
  for (int64_t length : lengths) mb.docs.push_back(Document{id++, length, 0});
  return mb;
}

TEST(MicroBatch, TokensAndStarts) {
  const MicroBatch mb = batch_of({5, 1, 7});
  EXPECT_EQ(mb.tokens(), 13);
  EXPECT_EQ(mb.doc_starts(), (std::vector<int64_t>{0, 5, 6}));
  EXPECT_EQ(MicroBatch{}.tokens(), 0);
  EXPECT_TRUE(MicroBatch{}.doc_starts().empty());
}

TEST(WorkloadModel, SumsItsDocuments) {
  const WorkloadModel w{2.0, 3.0};
  EXPECT_DOUBLE_EQ(w(10), 2.0 * 100 + 3.0 * 10);
  EXPECT_DOUBLE_EQ(w.of(batch_of({10, 4})), w(10) + w(4));
}

TEST(FitWorkload, RecoversExactCoefficients) {
  std::vector<std::pair<int64_t, double>> samples;
  for (int64_t d : {512, 1024, 4096, 16384, 65536, 131072})
    samples.push_back({d, 3e-12 * double(d) * double(d) + 2e-7 * double(d)});
  const WorkloadModel w = fit_workload(samples);
  EXPECT_NEAR(w.attention_coef / 3e-12, 1.0, 1e-9);
  EXPECT_NEAR(w.linear_coef / 2e-7, 1.0, 1e-9);
}

TEST(FitWorkload, RecoversCoefficientsFromNoisySamples) {
  std::mt19937_64 rng(3);
  std::normal_distribution<double> noise(1.0, 0.01);
  std::vector<std::pair<int64_t, double>> samples;
  for (int repeat = 0; repeat < 20; ++repeat)
    for (int64_t d = 1024; d <= 131072; d *= 2)
      samples.push_back({d, (5e-12 * double(d) * double(d) + 4e-7 * double(d)) * noise(rng)});
  const WorkloadModel w = fit_workload(samples);
  EXPECT_NEAR(w.attention_coef / 5e-12, 1.0, 0.01);
  EXPECT_NEAR(w.linear_coef / 4e-7, 1.0, 0.05);
}

TEST(FitWorkload, NeedsTwoDistinctLengths) {
  const std::vector<std::pair<int64_t, double>> one = {{1024, 1.0}, {1024, 1.1}};
  try {
    fit_workload(one);
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("two distinct lengths"), std::string::npos) << e.what();
  }
  const std::vector<std::pair<int64_t, double>> negative = {{-5, 1.0}, {10, 1.0}};
  EXPECT_THROW(fit_workload(negative), UsageError);
}

TEST(Imbalance, MaxOverMean) {
  const WorkloadModel w{1.0, 0.0};
  Step step;
  step.micro_batches = {batch_of({4}), batch_of({2, 2}), batch_of({2})};  // 16, 8, 4
  EXPECT_DOUBLE_EQ(imbalance(step, w), 16.0 / (28.0 / 3.0));
  Step balanced;
  balanced.micro_batches = {batch_of({3}), batch_of({3})};
  EXPECT_DOUBLE_EQ(imbalance(balanced, w), 1.0);
  EXPECT_DOUBLE_EQ(imbalance(Step{}, w), 1.0);
}

TEST(Imbalance, LatencyForm) {
  const std::vector<double> latencies = {1.0, 2.0, 3.0, 2.0};
  EXPECT_DOUBLE_EQ(latency_imbalance(latencies), 3.0 * 4 / 8.0);
  EXPECT_DOUBLE_EQ(latency_imbalance(std::vector<double>{}), 1.0);
}

TEST(Names, ParseAndPrint) {
  for (PackingKind kind : {PackingKind::plain, PackingKind::fixed, PackingKind::wlb})
    EXPECT_EQ(parse_packing_kind(to_string(kind)), kind);
  for (CpSharding s : {CpSharding::per_sequence, CpSharding::per_document, CpSharding::adaptive})
    EXPECT_EQ(parse_cp_sharding(to_string(s)), s);
  EXPECT_THROW(parse_packing_kind("best"), UsageError);
  EXPECT_THROW(parse_cp_sharding("per_sequence"), UsageError);
}

}  // namespace
}  // namespace paralab::packing
