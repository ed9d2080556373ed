#include <gtest/gtest.h>

#include "core/dtype.hpp"
#include "core/errors.hpp"
#include "core/grid.hpp"
#include "core/options.hpp"

using paralab::parse_size;
using paralab::parse_sweep;
using paralab::UsageError;

TEST(ParseSize, PlainAndBinarySuffixes) {
  EXPECT_EQ(parse_size("0"), 0u);
  EXPECT_EQ(parse_size("4096"), 4096u);
  EXPECT_EQ(parse_size("8k"), 8192u);
  EXPECT_EQ(parse_size("8K"), 8192u);
  EXPECT_EQ(parse_size("1M"), 1048576u);
  EXPECT_EQ(parse_size("1m"), 1048576u);
  EXPECT_EQ(parse_size("2G"), 2147483648u);
  EXPECT_EQ(parse_size("1T"), 1099511627776u);
  EXPECT_EQ(parse_size("64KiB"), 65536u);
  EXPECT_EQ(parse_size("64kB"), 65536u);
  EXPECT_EQ(parse_size("100B"), 100u);
  EXPECT_EQ(parse_size("128k"), 131072u);
}

TEST(ParseSize, RejectsMalformed) {
  for (const char* bad : {"", "-1", "-8k", "k", "8q", "8kk", "1.5k", " 8", "8 ", "0x10", "8KiBs"})
    EXPECT_THROW(parse_size(bad), UsageError) << "'" << bad << "'";
}

TEST(ParseSize, RejectsOverflow) {
  EXPECT_EQ(parse_size("18446744073709551615"), 18446744073709551615u);
  EXPECT_THROW(parse_size("18446744073709551616"), UsageError);
  EXPECT_THROW(parse_size("16777216T"), UsageError);  // 2^24 * 2^40 = 2^64
  EXPECT_EQ(parse_size("16777215T"), 16777215ull << 40);
}

TEST(ParseSize, MessageNamesTheOption) {
  try {
    parse_size("12x", "--max-bytes");
    FAIL() << "no exception";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("--max-bytes '12x'"), std::string::npos) << e.what();
  }
}

TEST(ParseSweep, CommaLists) {
  EXPECT_EQ(parse_sweep("1k,4k,16k"), (std::vector<uint64_t>{1024, 4096, 16384}));
  EXPECT_EQ(parse_sweep("7"), (std::vector<uint64_t>{7}));
  EXPECT_THROW(parse_sweep("1k,,4k"), UsageError);
  EXPECT_THROW(parse_sweep("1k,"), UsageError);
  EXPECT_THROW(parse_sweep(",1k"), UsageError);
}

TEST(FormatSize, RoundTrips) {
  EXPECT_EQ(paralab::format_size(8192), "8k");
  EXPECT_EQ(paralab::format_size(1000), "1000");
  EXPECT_EQ(paralab::format_size(0), "0");
  EXPECT_EQ(paralab::format_size(3ull << 30), "3G");
  for (uint64_t v : {1ull, 1536ull, 1ull << 20, 5ull << 40, 123456789ull})
    EXPECT_EQ(parse_size(paralab::format_size(v)), v);
  EXPECT_EQ(paralab::format_bytes(1536), "1.5 KiB");
  EXPECT_EQ(paralab::format_bytes(100), "100 B");
}

TEST(CliSizeOption, TransformsSuffixesAndLists) {
  CLI::App app;
  uint64_t one = 0;
  std::vector<uint64_t> many;
  paralab::add_size_option(app, "--one", one, "one size");
  paralab::add_size_option(app, "--many", many, "sweep");
  app.parse(std::vector<std::string>{"4k,1M,7", "--many", "2k", "--one"});
  EXPECT_EQ(one, 2048u);
  EXPECT_EQ(many, (std::vector<uint64_t>{4096, 1048576, 7}));
  CLI::App bad;
  uint64_t v = 0;
  paralab::add_size_option(bad, "--v", v, "v");
  EXPECT_THROW(bad.parse(std::vector<std::string>{"12z", "--v"}), CLI::ValidationError);
}

TEST(ParseGrid, NamesAndSizes) {
  auto dims = paralab::parse_grid("tp=2,cp=4,pp=1,dp=3");
  ASSERT_EQ(dims.size(), 4u);
  EXPECT_EQ(dims[0].name, "tp");
  EXPECT_EQ(dims[1].size, 4);
  EXPECT_EQ(dims[3].name, "dp");
  EXPECT_EQ(dims[3].size, 3);
  for (const char* bad : {"", "tp", "tp=", "=2", "tp=0", "tp=-1", "tp=2,tp=2", "tp=2,", "tp=x"})
    EXPECT_THROW(paralab::parse_grid(bad), UsageError) << "'" << bad << "'";
}

TEST(DType, NamesSizesAliases) {
  EXPECT_EQ(paralab::dtype_size(paralab::parse_dtype("bf16")), 2u);
  EXPECT_EQ(paralab::dtype_size(paralab::parse_dtype("double")), 8u);
  EXPECT_EQ(paralab::dtype_name(paralab::DType::u8), "u8");
  EXPECT_THROW(paralab::parse_dtype("fp8"), UsageError);
}
