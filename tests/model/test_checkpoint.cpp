// Checkpoints (lib/model/checkpoint.hpp): train k steps, save, continue m
// steps; a fresh model and optimizer that load the checkpoint continue the
// same m steps bit for bit (losses, weights, Kahan compensation, optimizer
// state). Bad files and mismatched runs are clear UsageErrors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "core/errors.hpp"
#include "model/checkpoint.hpp"
#include "model/data.hpp"
#include "model/data_parallel.hpp"
#include "model/trainer.hpp"
#include "model_test_support.hpp"
#include "results/writer.hpp"

namespace paralab::model {
namespace {

namespace fs = std::filesystem;

ModelConfig config() {
  return test::small_model(16);
}

constexpr int kBatch = 4, kSeq = 16;
const LrSchedule kSchedule{3e-3f, 3e-4f, 2, 12};

class Checkpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("paralab_checkpoint_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

const MarkovSource& source() {
  static const MarkovSource s(16, 2, 0.3, 5);
  return s;
}

// Steps [first, last) on batch streams first..last-1; returns the losses.
std::vector<double> train(Trainer& trainer, int first, int last) {
  std::vector<double> losses;
  for (int step = first; step < last; ++step)
    losses.push_back(trainer.step(source().sample(kBatch, kSeq, uint64_t(step)).view()).loss);
  return losses;
}

// Two spans (of any constness) hold the same bytes.
template <class A, class B>
bool bitwise_equal(A a, B b) {
  // memcmp of an empty span's null pointer is undefined (UBSan): size 0 is equal by length.
  return a.size_bytes() == b.size_bytes() &&
         (a.size_bytes() == 0 || std::memcmp(a.data(), b.data(), a.size_bytes()) == 0);
}

void expect_bit_identical_resume(Precision precision, const std::string& file) {
  constexpr int k = 3, m = 3;
  Model model(config(), precision, 21);
  AdamW optimizer(AdamWConfig{0.9f, 0.95f, 1e-8f, 0.01f}, 8);
  Trainer trainer(model, optimizer, kSchedule, 1.0);
  train(trainer, 0, k);
  CheckpointInfo info;
  info.data_position = k;
  info.run_config = R"({"precision":"x"})";
  info.history = {{"loss", {1.5, 2.5, 3.5}}, {"empty", {}}};
  save_checkpoint(file, model, optimizer, info);
  if (precision == Precision::bf16_pure_kahan) {
    size_t nonzero = 0;
    for (bf16 c : model.parameters().kahan()) nonzero += c.bits != 0;
    EXPECT_GT(nonzero, 0u) << "the compensation should carry something to restore";
  }
  const std::vector<double> want = train(trainer, k, k + m);

  // A fresh model from another seed: everything must come from the file.
  Model resumed(config(), precision, 999);
  AdamW resumed_optimizer(AdamWConfig{0.9f, 0.95f, 1e-8f, 0.01f}, 8);
  const CheckpointInfo loaded = load_checkpoint(file, resumed, resumed_optimizer);
  EXPECT_EQ(loaded.step, k);
  EXPECT_EQ(loaded.data_position, k);
  EXPECT_EQ(loaded.run_config, info.run_config);
  ASSERT_NE(loaded.find("loss"), nullptr);
  EXPECT_EQ(*loaded.find("loss"), (std::vector<double>{1.5, 2.5, 3.5}));
  ASSERT_NE(loaded.find("empty"), nullptr);
  EXPECT_TRUE(loaded.find("empty")->empty());
  EXPECT_EQ(loaded.find("missing"), nullptr);
  EXPECT_EQ(resumed_optimizer.steps(), k);
  Trainer resumed_trainer(resumed, resumed_optimizer, kSchedule, 1.0);
  const std::vector<double> got = train(resumed_trainer, k, k + m);

  EXPECT_EQ(got, want) << "losses after resuming differ";
  const Parameters& a = model.parameters();
  const Parameters& b = resumed.parameters();
  EXPECT_TRUE(bitwise_equal(a.values(), b.values()));
  EXPECT_TRUE(bitwise_equal(a.bf16_values(), b.bf16_values()));
  EXPECT_TRUE(bitwise_equal(model.parameters().kahan(), resumed.parameters().kahan()));
  EXPECT_EQ(state_fingerprint(a, optimizer), state_fingerprint(b, resumed_optimizer));
}

TEST_F(Checkpoint, Fp32ResumesBitIdentically) {
  expect_bit_identical_resume(Precision::fp32, path("fp32.h5"));
}

TEST_F(Checkpoint, Bf16MixedResumesBitIdentically) {
  expect_bit_identical_resume(Precision::bf16_mixed, path("mixed.h5"));
}

TEST_F(Checkpoint, PureKahanResumesBitIdenticallyWithItsCompensation) {
  expect_bit_identical_resume(Precision::bf16_pure_kahan, path("kahan.h5"));
}

TEST_F(Checkpoint, PureSrResumesBitIdentically) {
  expect_bit_identical_resume(Precision::bf16_pure_sr, path("sr.h5"));
}

TEST_F(Checkpoint, SgdMomentumResumes) {
  Model model(config(), Precision::fp32, 4);
  Sgd sgd(SgdConfig{0.9f, 0.0f});
  Trainer trainer(model, sgd, kSchedule, 1.0);
  train(trainer, 0, 2);
  save_checkpoint(path("sgd.h5"), model, sgd, {});
  const auto want = train(trainer, 2, 4);
  Model resumed(config(), Precision::fp32, 4);
  Sgd resumed_sgd(SgdConfig{0.9f, 0.0f});
  load_checkpoint(path("sgd.h5"), resumed, resumed_sgd);
  Trainer resumed_trainer(resumed, resumed_sgd, kSchedule, 1.0);
  EXPECT_EQ(train(resumed_trainer, 2, 4), want);
}

// Saved before the first step: the optimizer state is still empty.
TEST_F(Checkpoint, BeforeTheFirstStep) {
  Model model(config(), Precision::bf16_pure_rne, 4);
  AdamW optimizer;
  save_checkpoint(path("zero.h5"), model, optimizer, {});
  Model resumed(config(), Precision::bf16_pure_rne, 5);
  AdamW resumed_optimizer;
  EXPECT_EQ(load_checkpoint(path("zero.h5"), resumed, resumed_optimizer).step, 0);
  EXPECT_TRUE(bitwise_equal(model.parameters().bf16_values(), resumed.parameters().bf16_values()));
  Trainer a(model, optimizer, kSchedule), b(resumed, resumed_optimizer, kSchedule);
  EXPECT_EQ(train(a, 0, 2), train(b, 0, 2));
}

TEST_F(Checkpoint, WritesAtomicallyAndReplaces) {
  Model model(config(), Precision::fp32, 4);
  AdamW optimizer;
  const std::string file = path("sub/dir/ck.h5");  // folders are created
  save_checkpoint(file, model, optimizer, {});
  CheckpointInfo info;
  info.data_position = 42;
  save_checkpoint(file, model, optimizer, info);  // replaces
  EXPECT_EQ(read_checkpoint_info(file).data_position, 42);
  for (const auto& entry : fs::directory_iterator(fs::path(file).parent_path()))
    EXPECT_EQ(entry.path().filename(), "ck.h5") << "a temporary file was left behind";
  EXPECT_THROW(save_checkpoint("/dev/null/ck.h5", model, optimizer, {}), RuntimeError);
}

// The message of the UsageError that `f` throws ("" when it throws none).
template <class F>
std::string usage_error(F&& f) {
  try {
    f();
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

TEST_F(Checkpoint, BadFilesAreClearErrors) {
  Model model(config(), Precision::fp32, 4);
  AdamW optimizer;
  EXPECT_NE(usage_error([&] {
              load_checkpoint(path("none.h5"), model, optimizer);
            }).find("does not exist"),
            std::string::npos);
  std::ofstream(path("text.h5")) << "not hdf5\n";
  EXPECT_NE(usage_error([&] {
              load_checkpoint(path("text.h5"), model, optimizer);
            }).find("not an HDF5 file"),
            std::string::npos);
  {
    results::ResultFile other(path("results.h5"));  // HDF5, but a result file
    other.commit();
  }
  EXPECT_NE(usage_error([&] {
              load_checkpoint(path("results.h5"), model, optimizer);
            }).find("not a paralab checkpoint"),
            std::string::npos);
  // Truncated: the first kilobytes of a real checkpoint.
  save_checkpoint(path("full.h5"), model, optimizer, {});
  std::ifstream in(path("full.h5"), std::ios::binary);
  std::vector<char> head(2048);
  in.read(head.data(), std::streamsize(head.size()));
  std::ofstream(path("cut.h5"), std::ios::binary).write(head.data(), in.gcount());
  EXPECT_THROW(load_checkpoint(path("cut.h5"), model, optimizer), UsageError);
}

// Any flipped bit (weights, optimizer state, loss history, attributes, HDF5's own metadata,
// the checksum itself), a cut and an extension are refused before anything is loaded.
TEST_F(Checkpoint, DamageIsRefused) {
  Model model(config(), Precision::fp32, 4);
  AdamW optimizer;
  Trainer trainer(model, optimizer, kSchedule);
  train(trainer, 0, 2);
  CheckpointInfo info;
  info.history = {{"loss", {2.5, 2.25}}};
  save_checkpoint(path("good.h5"), model, optimizer, info);
  std::ifstream in(path("good.h5"), std::ios::binary);
  const std::vector<char> good((std::istreambuf_iterator<char>(in)), {});
  ASSERT_GT(good.size(), 4096u);
  auto refused = [&](const std::vector<char>& bytes) {
    std::ofstream(path("bad.h5"), std::ios::binary)
        .write(bytes.data(), std::streamsize(bytes.size()));
    Model m(config(), Precision::fp32, 4);
    AdamW o;
    return usage_error([&] { load_checkpoint(path("bad.h5"), m, o); });
  };
  std::mt19937 generator(7);
  int flips = 0;
  const size_t stride = 2 * good.size() / 150;  // about 150 flips, spread over the file
  for (size_t at = 8; at < good.size(); at += 1 + generator() % stride, ++flips) {
    std::vector<char> bytes = good;
    bytes[at] = static_cast<char>(bytes[at] ^ (1 << (generator() % 8)));
    const std::string message = refused(bytes);
    EXPECT_TRUE(message.find("damaged") != std::string::npos ||
                message.find("checksum") != std::string::npos)
        << "byte " << at << ": " << message;
  }
  EXPECT_GT(flips, 20);
  std::vector<char> cut(good.begin(), good.end() - 1);
  EXPECT_NE(refused(cut).find("truncated"), std::string::npos);
  std::vector<char> longer = good;
  longer.push_back('x');
  EXPECT_NE(refused(longer).find("truncated or extended"), std::string::npos);
  // The intact file still loads.
  Model resumed(config(), Precision::fp32, 4);
  AdamW resumed_optimizer;
  EXPECT_EQ(load_checkpoint(path("good.h5"), resumed, resumed_optimizer).history, info.history);
}

TEST_F(Checkpoint, MismatchedRunsAreClearErrors) {
  Model model(config(), Precision::bf16_mixed, 4);
  AdamW optimizer;
  Trainer trainer(model, optimizer, kSchedule);
  train(trainer, 0, 1);
  save_checkpoint(path("ck.h5"), model, optimizer, {});

  ModelConfig wider = config();
  wider.d_model = 64;
  Model wide(wider, Precision::bf16_mixed, 4);
  AdamW o1;
  EXPECT_NE(usage_error([&] {
              load_checkpoint(path("ck.h5"), wide, o1);
            }).find("written for d_model 32, this run has 64"),
            std::string::npos);

  Model pure(config(), Precision::bf16_pure_sr, 4);
  AdamW o2;
  EXPECT_NE(usage_error([&] {
              load_checkpoint(path("ck.h5"), pure, o2);
            }).find("precision bf16-mixed, this run trains bf16-pure-sr"),
            std::string::npos);

  Model same(config(), Precision::bf16_mixed, 4);
  Sgd sgd;
  EXPECT_NE(usage_error([&] { load_checkpoint(path("ck.h5"), same, sgd); }).find("optimizer"),
            std::string::npos);
}

}  // namespace
}  // namespace paralab::model
