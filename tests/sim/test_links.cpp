// test_links.cpp: alpha-beta costs of ring collectives, the least-squares
// fit, and calibration from comm_bench-style samples.
#include <gtest/gtest.h>

#include <random>
#include <stdexcept>
#include <vector>

#include "sim/calibrate.hpp"
#include "sim/links.hpp"

namespace paralab::sim {
namespace {

// Powers of two keep every expected value exact in binary floating point.
const LinkModel kLink{"test", 0.5, 0.25};  // 0.5 s per message, 4 bytes/s

TEST(Links, TimeIsAlphaPlusBytesTimesBeta) {
  EXPECT_DOUBLE_EQ(kLink.time(0), 0.5);
  EXPECT_DOUBLE_EQ(kLink.time(8), 0.5 + 2.0);
  EXPECT_DOUBLE_EQ(kLink.bandwidth_bytes_per_s(), 4.0);
  EXPECT_DOUBLE_EQ(sendrecv_s(kLink, 8), 2.5);
}

TEST(Links, RingCollectivesCountStepsOfBytesOverN) {
  // n = 4, 16 bytes: each step moves 4 bytes, costing 0.5 + 1 = 1.5 s.
  EXPECT_DOUBLE_EQ(ring_allgather_s(kLink, 4, 16), 3 * 1.5);
  EXPECT_DOUBLE_EQ(ring_reduce_scatter_s(kLink, 4, 16), 3 * 1.5);
  EXPECT_DOUBLE_EQ(ring_allreduce_s(kLink, 4, 16), 6 * 1.5);
  EXPECT_DOUBLE_EQ(alltoall_s(kLink, 4, 16), 3 * 1.5);
}

TEST(Links, OneRankMovesNothing) {
  EXPECT_EQ(ring_allgather_s(kLink, 1, 16), 0);
  EXPECT_EQ(ring_allreduce_s(kLink, 1, 16), 0);
  EXPECT_EQ(alltoall_s(kLink, 1, 16), 0);
}

TEST(Links, BadArgumentsThrow) {
  EXPECT_THROW(ring_allgather_s(kLink, 0, 16), std::invalid_argument);
  EXPECT_THROW(ring_allreduce_s(kLink, 4, -1), std::invalid_argument);
  EXPECT_THROW(sendrecv_s(kLink, -1), std::invalid_argument);
}

TEST(FitAlphaBeta, RecoversExactLineWithBothWeightings) {
  const std::vector<double> bytes{1e3, 1e4, 1e5, 1e6, 1e7};
  std::vector<double> seconds;
  for (double b : bytes) seconds.push_back(5e-6 + b / 40e9);
  for (auto weighting : {FitWeighting::relative, FitWeighting::absolute}) {
    const AlphaBetaFit fit = fit_alpha_beta(bytes, seconds, "rdma", weighting);
    EXPECT_EQ(fit.link.name, "rdma");
    EXPECT_NEAR(fit.link.alpha_s, 5e-6, 1e-12);
    EXPECT_NEAR(fit.link.beta_s_per_byte, 1 / 40e9, 1e-18);
    EXPECT_FALSE(fit.alpha_clamped);
    EXPECT_LT(fit.max_relative_error, 1e-9);
  }
}

TEST(FitAlphaBeta, RecoversAlphaBetaFromNoisyPoints) {
  // 3% multiplicative noise, 5 repeats of 9 sizes from 1 KiB to 64 MiB.
  std::mt19937 rng(42);
  std::uniform_real_distribution<double> noise(-0.03, 0.03);
  const double alpha_s = 8e-6, beta = 1 / 370e9;
  std::vector<double> bytes, seconds;
  for (int repeat = 0; repeat < 5; ++repeat)
    for (double b = 1024; b <= 64.0 * 1024 * 1024; b *= 4) {
      bytes.push_back(b);
      seconds.push_back((alpha_s + b * beta) * (1 + noise(rng)));
    }
  const AlphaBetaFit fit = fit_alpha_beta(bytes, seconds);
  EXPECT_NEAR(fit.link.alpha_s, alpha_s, 0.05 * alpha_s);
  EXPECT_NEAR(fit.link.beta_s_per_byte, beta, 0.05 * beta);
  EXPECT_FALSE(fit.alpha_clamped);
  EXPECT_LT(fit.max_relative_error, 0.07);
}

TEST(FitAlphaBeta, NegativeAlphaIsClampedAndBetaRefitted) {
  // t = -1 + 2x exactly: the unconstrained fit gives alpha = -1.
  const std::vector<double> bytes{1, 2, 3};
  const std::vector<double> seconds{1, 3, 5};
  const AlphaBetaFit fit = fit_alpha_beta(bytes, seconds, "x", FitWeighting::absolute);
  EXPECT_TRUE(fit.alpha_clamped);
  EXPECT_NEAR(fit.unclamped_alpha_s, -1, 1e-12);
  EXPECT_EQ(fit.link.alpha_s, 0);
  // Absolute weights through the origin: beta = sum(xy)/sum(x^2) = 22/14.
  EXPECT_NEAR(fit.link.beta_s_per_byte, 22.0 / 14.0, 1e-12);
}

TEST(FitAlphaBeta, RejectsBadInput) {
  const std::vector<double> one{1}, two{1, 2}, same{4, 4}, three{1, 2, 3};
  EXPECT_THROW(fit_alpha_beta(one, one), std::invalid_argument);    // < 2 points
  EXPECT_THROW(fit_alpha_beta(two, three), std::invalid_argument);  // length mismatch
  EXPECT_THROW(fit_alpha_beta(same, two), std::invalid_argument);   // one distinct size
  EXPECT_THROW(fit_alpha_beta(two, std::vector<double>{1, 0}), std::invalid_argument);
  // Time falling with size: beta would be negative.
  EXPECT_THROW(fit_alpha_beta(three, std::vector<double>{3, 2, 1}), std::invalid_argument);
}

TEST(Calibrate, BusFactorsMatchCommBench) {
  EXPECT_DOUBLE_EQ(bus_factor("sendrecv", 4), 1.0);
  EXPECT_DOUBLE_EQ(bus_factor("allreduce", 4), 2.0 * 3 / 4);
  EXPECT_DOUBLE_EQ(bus_factor("allgather", 4), 3.0 / 4);
  EXPECT_DOUBLE_EQ(bus_factor("reducescatter", 8), 7.0 / 8);
  EXPECT_DOUBLE_EQ(bus_factor("alltoallv", 2), 1.0 / 2);
  EXPECT_THROW(bus_factor("broadcast", 4), std::invalid_argument);
  EXPECT_THROW(bus_factor("allreduce", 1), std::invalid_argument);
}

TEST(Calibrate, SendrecvAndCollectivesFitTheSameLink) {
  const LinkModel truth{"nvlink", 4e-6, 1 / 300e9};
  std::vector<CommSample> samples;
  for (double b = 1 << 12; b <= (1 << 26); b *= 4) {
    samples.push_back({"sendrecv", 2, b, sendrecv_s(truth, b)});
    samples.push_back({"allreduce", 8, b, ring_allreduce_s(truth, 8, b)});
    samples.push_back({"allgather", 4, b, ring_allgather_s(truth, 4, b)});
  }
  // The default uses sendrecv only.
  const AlphaBetaFit p2p = calibrate_link(samples);
  EXPECT_NEAR(p2p.link.alpha_s, truth.alpha_s, 1e-12);
  EXPECT_NEAR(p2p.link.beta_s_per_byte, truth.beta_s_per_byte, 1e-18);
  EXPECT_EQ(p2p.link.name, "calibrated");
  // Collectives converted to per-step points recover the same alpha and beta.
  CalibrationOptions options;
  options.ops = {"allreduce", "allgather"};
  options.link_name = "nvlink";
  const AlphaBetaFit ring = calibrate_link(samples, options);
  EXPECT_NEAR(ring.link.alpha_s, truth.alpha_s, 1e-12);
  EXPECT_NEAR(ring.link.beta_s_per_byte, truth.beta_s_per_byte, 1e-18);
  EXPECT_EQ(ring.link.name, "nvlink");
}

TEST(Calibrate, TooFewSelectedSamplesOrUnknownOpThrows) {
  const std::vector<CommSample> samples{{"allreduce", 4, 1024, 1e-5}, {"sendrecv", 2, 1024, 1e-5}};
  EXPECT_THROW(calibrate_link(samples), std::invalid_argument);  // one sendrecv only
  CalibrationOptions options;
  options.ops = {"gather"};
  EXPECT_THROW(calibrate_link(samples, options), std::invalid_argument);
}

}  // namespace
}  // namespace paralab::sim
