#include <gtest/gtest.h>

#include <limits>
#include <vector>

#include "core/stats.hpp"

using paralab::percentile;
using paralab::summarize;

TEST(Percentile, InterpolatesBetweenClosestRanksLikeNumpy) {
  const std::vector<double> v = {4, 1, 3, 2};  // sorted 1 2 3 4
  EXPECT_DOUBLE_EQ(percentile(v, 0), 1);
  EXPECT_DOUBLE_EQ(percentile(v, 100), 4);
  EXPECT_DOUBLE_EQ(percentile(v, 50), 2.5);
  EXPECT_DOUBLE_EQ(percentile(v, 95), 3.85);  // numpy.percentile([1,2,3,4], 95)
  EXPECT_DOUBLE_EQ(percentile(v, 25), 1.75);
}

TEST(Percentile, SingleValue) {
  const std::vector<double> v = {7};
  EXPECT_DOUBLE_EQ(percentile(v, 0), 7);
  EXPECT_DOUBLE_EQ(percentile(v, 95), 7);
}

TEST(Percentile, RejectsEmptyAndOutOfRange) {
  const std::vector<double> empty;
  const std::vector<double> v = {1, 2};
  EXPECT_THROW(percentile(empty, 50), std::invalid_argument);
  EXPECT_THROW(percentile(v, -1), std::invalid_argument);
  EXPECT_THROW(percentile(v, 101), std::invalid_argument);
  EXPECT_THROW(percentile(v, std::numeric_limits<double>::quiet_NaN()), std::invalid_argument);
}

TEST(Summarize, AllFields) {
  const std::vector<double> v = {5, 1, 9, 3, 7};
  auto s = summarize(v);
  EXPECT_EQ(s.count, 5u);
  EXPECT_DOUBLE_EQ(s.min, 1);
  EXPECT_DOUBLE_EQ(s.max, 9);
  EXPECT_DOUBLE_EQ(s.median, 5);
  EXPECT_DOUBLE_EQ(s.mean, 5);
  EXPECT_DOUBLE_EQ(s.p95, 8.6);
}

TEST(Summarize, EmptyIsAllZero) {
  auto s = summarize(std::vector<double>{});
  EXPECT_EQ(s.count, 0u);
  EXPECT_EQ(s.median, 0);
}

TEST(TimeMatrix, ReducesOverRanksPerIteration) {
  paralab::TimeMatrix m{2, 3, {1, 5, 3, 2, 2, 8}};
  EXPECT_DOUBLE_EQ(m.at(1, 2), 8);
  EXPECT_EQ(m.max_over_ranks(), (std::vector<double>{5, 8}));
  EXPECT_EQ(m.mean_over_ranks(), (std::vector<double>{3, 4}));
}

TEST(Stats, MeanAfterFirstSkipsTheWarmUpStep) {
  const std::vector<double> steps = {100, 2, 4};
  EXPECT_DOUBLE_EQ(paralab::mean_after_first(steps), 3);
  EXPECT_DOUBLE_EQ(paralab::mean_after_first(std::vector<double>{7}), 7);
  EXPECT_DOUBLE_EQ(paralab::mean_after_first(std::vector<double>{}), 0);
}
