// test_hardware.cpp: built-in profiles, lookup errors, JSON round trips and
// validation of user profiles.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/errors.hpp"
#include "sim/compute.hpp"
#include "sim/hardware.hpp"

namespace paralab::sim {
namespace {

void expect_same(const HardwareProfile& a, const HardwareProfile& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.description, b.description);
  EXPECT_EQ(a.bf16_peak_flops, b.bf16_peak_flops);
  EXPECT_EQ(a.fp32_peak_flops, b.fp32_peak_flops);
  EXPECT_EQ(a.attention_efficiency, b.attention_efficiency);
  EXPECT_EQ(a.gemm_efficiency, b.gemm_efficiency);
  EXPECT_EQ(a.memory_bytes_per_s, b.memory_bytes_per_s);
  EXPECT_EQ(a.kernel_overhead_s, b.kernel_overhead_s);
  EXPECT_EQ(a.attention_efficiency_by_keys, b.attention_efficiency_by_keys);
  EXPECT_EQ(a.gpus_per_node, b.gpus_per_node);
  for (auto [x, y] : {std::pair{&a.intra_node, &b.intra_node}, {&a.inter_node, &b.inter_node}}) {
    EXPECT_EQ(x->name, y->name);
    EXPECT_EQ(x->alpha_s, y->alpha_s);
    EXPECT_EQ(x->beta_s_per_byte, y->beta_s_per_byte);
  }
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("paralab_sim_" + name)).string();
}

TEST(Hardware, BuiltinProfilesCarryThePapersNumbers) {
  const HardwareProfile gtt = find_profile("h100-gtt");
  EXPECT_EQ(gtt.bf16_peak_flops, 800e12);
  EXPECT_EQ(gtt.gpus_per_node, 8);
  EXPECT_DOUBLE_EQ(gtt.inter_node.bandwidth_bytes_per_s(), 40e9);  // 80% of 400 Gb/s
  EXPECT_DOUBLE_EQ(gtt.intra_node.bandwidth_bytes_per_s(), 370e9);
  const HardwareProfile gti = find_profile("h100-gti");
  EXPECT_DOUBLE_EQ(gti.inter_node.bandwidth_bytes_per_s(), 3e9);  // the paper's achieved TCP
  EXPECT_EQ(gti.intra_node.beta_s_per_byte, gtt.intra_node.beta_s_per_byte);
  EXPECT_EQ(
      builtin_profile_names(),
      (std::vector<std::string>{"h100-gtt", "h100-gti", "cluster-100g-tcp", "cluster-400g-rdma"}));
}

TEST(Hardware, LinkBetweenRanksDependsOnTheNode) {
  const HardwareProfile gtt = find_profile("h100-gtt");
  EXPECT_EQ(gtt.link_between(0, 7).name, gtt.intra_node.name);
  EXPECT_EQ(gtt.link_between(7, 8).name, gtt.inter_node.name);
  EXPECT_EQ(gtt.link_between(9, 15).name, gtt.intra_node.name);
}

TEST(Hardware, UnknownProfileNamesTheKnownOnes) {
  try {
    find_profile("a100");
    FAIL() << "found a profile that does not exist";
  } catch (const UsageError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("'a100'"), std::string::npos) << message;
    EXPECT_NE(message.find("h100-gtt"), std::string::npos) << message;
    EXPECT_NE(message.find("h100-gti"), std::string::npos) << message;
  }
}

TEST(Hardware, JsonRoundTripInMemoryAndOnDisk) {
  for (const auto& profile : builtin_profiles()) {
    expect_same(profile_from_json(profile_to_json(profile)), profile);
    const std::string path = temp_path(profile.name + ".json");
    save_profile(profile, path);
    expect_same(load_profile(path), profile);
    expect_same(resolve_profile(path), profile);
    std::remove(path.c_str());
  }
  expect_same(resolve_profile("h100-gti"), find_profile("h100-gti"));
}

TEST(Hardware, AttentionRateFollowsTheCurveByKeys) {
  HardwareProfile hw = find_profile("h100-gtt");
  EXPECT_DOUBLE_EQ(compute_model(hw, Precision::bf16).attention_rate(4096), 800e12 * 0.63);
  hw.attention_efficiency_by_keys = {{1024, 0.8}, {4096, 0.6}};
  const ComputeModel m = compute_model(hw, Precision::bf16);
  EXPECT_DOUBLE_EQ(m.attention_rate(512), 800e12 * 0.8);  // held past the ends
  EXPECT_DOUBLE_EQ(m.attention_rate(8192), 800e12 * 0.6);
  EXPECT_NEAR(m.attention_rate(2048), 800e12 * 0.7, 1e3);  // halfway in log(keys)
  EXPECT_DOUBLE_EQ(m.attention_rate(0), 800e12 * 0.63);    // unknown keys: the flat rate
  expect_same(profile_from_json(profile_to_json(hw)), hw);
}

TEST(Hardware, JsonAcceptsBandwidthInsteadOfBeta) {
  nlohmann::json j = profile_to_json(find_profile("h100-gtt"));
  j["inter_node"].erase("beta_s_per_byte");
  j["inter_node"]["bandwidth_bytes_per_s"] = 25e9;
  EXPECT_DOUBLE_EQ(profile_from_json(j).inter_node.beta_s_per_byte, 1 / 25e9);
}

TEST(Hardware, JsonValidationNamesTheField) {
  const nlohmann::json good = profile_to_json(find_profile("h100-gtt"));
  auto expect_rejected = [](const nlohmann::json& j, const std::string& field) {
    try {
      profile_from_json(j);
      ADD_FAILURE() << "accepted a profile with a bad " << field;
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  nlohmann::json j = good;
  j["gemm_efficiency"] = 1.5;
  expect_rejected(j, "gemm_efficiency");
  j = good;
  j.erase("bf16_peak_flops");
  expect_rejected(j, "bf16_peak_flops");
  j = good;
  j["gpus_per_nodes"] = 8;  // a typo must not pass silently
  expect_rejected(j, "gpus_per_nodes");
  j = good;
  j["gpus_per_node"] = 0;
  expect_rejected(j, "gpus_per_node");
  j = good;
  j["attention_efficiency_by_keys"] = {{4096, 0.8}, {1024, 0.9}};  // not ascending
  expect_rejected(j, "attention_efficiency_by_keys");
  j["attention_efficiency_by_keys"] = {{1024, 1.5}};
  expect_rejected(j, "attention_efficiency_by_keys");
  j = good;
  j["memory_bytes_per_s"] = 0;
  expect_rejected(j, "memory_bytes_per_s");
  j = good;
  j["kernel_overhead_s"] = -1e-6;
  expect_rejected(j, "kernel_overhead_s");
  j = good;
  j["intra_node"]["alpha_s"] = -1;
  expect_rejected(j, "intra_node.alpha_s");
  j = good;
  j["inter_node"]["bandwidth_bytes_per_s"] = 1e9;  // both beta and bandwidth
  expect_rejected(j, "inter_node");
}

TEST(Hardware, UnreadableOrMalformedFilesThrowUsageError) {
  EXPECT_THROW(load_profile(temp_path("does_not_exist.json")), UsageError);
  const std::string path = temp_path("malformed.json");
  std::ofstream(path) << "{ not json";
  try {
    load_profile(path);
    ADD_FAILURE() << "accepted malformed JSON";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  std::remove(path.c_str());
}

}  // namespace
}  // namespace paralab::sim
