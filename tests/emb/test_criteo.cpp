// The Criteo TSV reader (criteo.hpp) on a small file the test writes:
// labels, log-transformed integers, hex categories, empty fields, errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>

#include "emb/criteo.hpp"

namespace paralab::emb {
namespace {

// A line with the given label, first integer and first and last categories;
// the other integers are 1..12, the other categories alternate empty and "a".
// (Built with append: GCC 12's -Wrestrict misfires on chains of operator+.)
std::string line(const std::string& label, const std::string& first_int,
                 const std::string& first_cat, const std::string& last_cat) {
  std::string s = label;
  s.append("\t").append(first_int);
  for (int i = 1; i < kCriteoDense; ++i) s.append("\t").append(std::to_string(i));
  s.append("\t").append(first_cat);
  for (int i = 1; i < kCriteoCategorical - 1; ++i) s.append(i % 2 ? "\t" : "\ta");
  s.append("\t").append(last_cat);
  return s;
}

TEST(EmbCriteo, ParsesFieldsAndEmptyOnes) {
  const CriteoSample s = parse_criteo_line(line("1", "", "68fd1e64", "ff"));
  EXPECT_EQ(s.label, 1.0f);
  EXPECT_EQ(s.dense[0], 0.0f);  // empty integer
  EXPECT_FLOAT_EQ(s.dense[3], static_cast<float>(std::log1p(3.0)));
  EXPECT_EQ(s.category[0], 0x68fd1e64u);
  EXPECT_EQ(s.category[1], 0u);  // empty category
  EXPECT_EQ(s.category[2], 0xau);
  EXPECT_EQ(s.category[25], 0xffu);
  EXPECT_EQ(parse_criteo_line(line("0", "-5", "", "") + "\r").dense[0], 0.0f);  // negative: 0
}

TEST(EmbCriteo, RefusesBadLines) {
  EXPECT_THROW(parse_criteo_line("1\t2\t3"), std::invalid_argument);
  EXPECT_THROW(parse_criteo_line(line("2", "1", "a", "b")), std::invalid_argument);
  EXPECT_THROW(parse_criteo_line(line("0", "x1", "a", "b")), std::invalid_argument);
  EXPECT_THROW(parse_criteo_line(line("0", "1", "zz", "b")), std::invalid_argument);
}

TEST(EmbCriteo, ReadsAFileIntoBatches) {
  const std::string path = ::testing::TempDir() + "emb_criteo_test.tsv";
  {
    std::ofstream out(path);
    const char* first_cats[] = {"10", "11", "12", "13", "14"};
    for (int i = 0; i < 5; ++i)
      out << line(i % 2 ? "1" : "0", std::to_string(i), first_cats[i], "") << "\n";
  }
  const auto samples = read_criteo(path);
  ASSERT_EQ(samples.size(), 5u);
  dlrm::DlrmConfig config = dlrm::criteo_kaggle(4, 7);
  dlrm::Batch batch;
  criteo_batch(samples, config, 3, 4, batch);  // wraps: samples 3, 4, 0, 1
  dlrm::check_batch(config, batch);
  EXPECT_EQ(batch.labels, (std::vector<float>{1, 0, 0, 1}));
  EXPECT_EQ(batch.tables[0].indices[1], static_cast<int32_t>(0x14 % 7));
  EXPECT_EQ(batch.tables[25].indices[0], 0);
  EXPECT_FLOAT_EQ(batch.dense[0], static_cast<float>(std::log1p(3.0)));
  std::remove(path.c_str());
}

TEST(EmbCriteo, NamesTheBadLineOfAFile) {
  const std::string path = ::testing::TempDir() + "emb_criteo_bad.tsv";
  {
    std::ofstream out(path);
    out << line("0", "1", "a", "b") << "\n"
        << "1\tnot enough\n";
  }
  try {
    read_criteo(path);
    FAIL() << "no error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("line 2: 2 tab-separated fields, expected 40"),
              std::string::npos)
        << e.what();
  }
  std::remove(path.c_str());
  EXPECT_THROW(read_criteo(path), std::exception);  // gone
}

}  // namespace
}  // namespace paralab::emb
