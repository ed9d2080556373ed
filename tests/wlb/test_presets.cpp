// The paper's model and grid presets (lib/wlb/presets).
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "core/errors.hpp"
#include "wlb/presets.hpp"

namespace paralab::wlb {
namespace {

TEST(ModelPresets, ParameterCountsMatchTheirNames) {
  const std::vector<std::pair<std::string, double>> expected = {
      {"550M", 550e6}, {"7B", 7e9}, {"30B", 30e9}, {"70B", 70e9}};
  ASSERT_EQ(model_presets().size(), expected.size());
  for (const auto& [name, count] : expected) {
    const ModelPreset model = find_model_preset(name);
    EXPECT_EQ(model.shape.name, name);
    EXPECT_LT(std::abs(double(model.parameters()) / count - 1), 0.05)
        << name << ": " << model.parameters();
  }
  // Llama 2 7B's published count.
  EXPECT_EQ(find_model_preset("7B").parameters(), 6738415616);
}

TEST(ModelPresets, UnknownNameIsAUsageErrorNamingTheKnownOnes) {
  try {
    find_model_preset("13B");
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("550M, 7B, 30B, 70B"), std::string::npos) << e.what();
  }
}

TEST(PaperConfigs, TheEightGridsFitTheirModels) {
  const std::vector<PaperConfig> configs = paper_configs();
  ASSERT_EQ(configs.size(), 8u);
  const std::vector<int> gpus = {32, 32, 32, 64, 64, 128, 256, 256};
  for (size_t i = 0; i < configs.size(); ++i) {
    const PaperConfig& config = configs[i];
    EXPECT_NO_THROW(validate_grid(config.grid, find_model_preset(config.model).shape))
        << config.name;
    EXPECT_EQ(config.grid.gpus(), gpus[i]) << config.name;
    EXPECT_EQ(config.context, (i % 2 == 0 ? 64 : 128) * 1024) << config.name;
    EXPECT_EQ(find_paper_config(config.name).grid.tp, config.grid.tp);
  }
  EXPECT_EQ(find_paper_config("7B-128K").grid.describe(), "tp8 cp2 pp4 dp1");
  EXPECT_THROW(find_paper_config("7B-256K"), UsageError);
}

TEST(PaperConfigs, GridsThatDoNotFitAreUsageErrors) {
  const sim::TransformerShape shape = find_model_preset("7B").shape;  // 32 layers, 32 heads
  EXPECT_THROW(validate_grid({1, 1, 64, 1}, shape), UsageError);      // pp > layers
  EXPECT_THROW(validate_grid({1, 1, 3, 1}, shape), UsageError);       // unequal stages
  EXPECT_THROW(validate_grid({3, 1, 1, 1}, shape), UsageError);       // heads over TP
  EXPECT_THROW(validate_grid({1, 0, 1, 1}, shape), UsageError);
  EXPECT_NO_THROW(validate_grid({8, 4, 8, 2}, shape));
}

}  // namespace
}  // namespace paralab::wlb
