// The compressed embedding exchange: lossless codecs (raw, dedup, a bound of
// 0) deliver exactly what the plain alltoallv delivers, in the exchange and
// through training; with a bound every received value is within the table's
// bound of the plain exchange's (forward and backward layouts, every codec
// choice, classes and a schedule); Zipf data compresses; a corrupted stream
// raises an error on every rank instead of a hang; and short training at
// the base bound reaches the uncompressed AUC to ~0.01.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "comm/comm.hpp"
#include "core/errors.hpp"
#include "dlrm/compressed_exchange.hpp"
#include "dlrm/distributed.hpp"
#include "dlrm_test_support.hpp"
#include "kernels/threads.hpp"

namespace paralab::dlrm::test {
namespace {

namespace compress = kernels::compress;
using compress::Codec;

PlannerOptions mixed_planner() {
  PlannerOptions o;
  o.per_table = {ShardingType::column_wise, ShardingType::table_wise, ShardingType::row_wise,
                 ShardingType::table_wise, ShardingType::row_wise};
  return o;
}

// A send buffer like pooled embeddings of Zipf lookups: each block's rows are
// drawn from a few distinct rows (row i repeats row hash(i) % 5 half the time).
std::vector<float> zipf_like(const ExchangeLayout& layout, int rank, uint64_t seed) {
  std::vector<float> v(layout.send_total);
  std::mt19937_64 rng(seed * 31 + static_cast<uint64_t>(rank));
  std::normal_distribution<float> normal(0.0f, 0.05f);
  for (const auto& peer : layout.send_blocks)
    for (const ExchangeBlock& b : peer) {
      float* out = v.data() + b.offset;
      const auto cols = static_cast<size_t>(b.cols);
      for (int r = 0; r < b.rows; ++r) {
        float* row = out + static_cast<size_t>(r) * cols;
        if (r >= 5 && rng() % 2 == 0) {
          std::memcpy(row, out + (rng() % 5) * cols, cols * sizeof(float));
        } else {
          for (size_t j = 0; j < cols; ++j) row[j] = normal(rng);
        }
      }
    }
  return v;
}

struct Exchanged {
  std::vector<float> plain, compressed;
};

Exchanged exchange(comm::Communicator& comm, const ExchangeLayout& layout,
                   const std::vector<float>& send, CompressedExchange& ex, Direction d,
                   int64_t iteration) {
  Exchanged r{std::vector<float>(layout.recv_total, NAN),
              std::vector<float>(layout.recv_total, NAN)};
  EmbeddingExchange plain;
  if (d == Direction::forward) {
    plain.forward(comm, layout, send, r.plain, iteration);
    ex.forward(comm, layout, send, r.compressed, iteration);
  } else {
    plain.backward(comm, layout, send, r.plain, iteration);
    ex.backward(comm, layout, send, r.compressed, iteration);
  }
  return r;
}

TEST(DlrmCompressedExchange, LosslessEqualsPlain) {
  auto comm = comm::make_mpi_communicator(MPI_COMM_WORLD);
  const int n = comm->size(), rank = comm->rank();
  const DlrmConfig c = small_config(7);
  const ShardingPlan plan = plan_sharding(c, n, mixed_planner());
  const ExchangeLayout fwd = forward_exchange_layout(plan, split_batch(29, n), rank);
  for (const char* name : {"raw", "dedup", "quantize_huffman", "dedup_quantize_huffman", "auto"}) {
    CompressedExchangeConfig cfg;
    cfg.codec = parse_codec_choice(name);
    cfg.policy.forward_base = {compress::ErrorBound::absolute, 0};
    cfg.policy.backward_base = {compress::ErrorBound::relative, 0};
    CompressedExchange ex(c.tables(), cfg);
    for (Direction d : {Direction::forward, Direction::backward}) {
      const ExchangeLayout layout = d == Direction::forward ? fwd : fwd.transposed();
      const std::vector<float> send = zipf_like(layout, rank, 3);
      const Exchanged r = exchange(*comm, layout, send, ex, d, 0);
      ASSERT_EQ(std::memcmp(r.plain.data(), r.compressed.data(), r.plain.size() * sizeof(float)), 0)
          << name;
    }
  }
}

TEST(DlrmCompressedExchange, EveryValueWithinItsBound) {
  auto comm = comm::make_mpi_communicator(MPI_COMM_WORLD);
  const int n = comm->size(), rank = comm->rank();
  const DlrmConfig c = small_config(7);
  const ShardingPlan plan = plan_sharding(c, n, mixed_planner());
  const ExchangeLayout fwd = forward_exchange_layout(plan, split_batch(57, n), rank);
  for (const char* name : {"quantize_huffman", "dedup_quantize_huffman", "auto"}) {
    CompressedExchangeConfig cfg;
    cfg.codec = parse_codec_choice(name);
    cfg.policy.forward_base = {compress::ErrorBound::absolute, 2e-3};
    cfg.policy.backward_base = {compress::ErrorBound::absolute, 5e-4};
    cfg.policy.schedule = {ScheduleKind::step, 4, 2, 1};
    cfg.policy.classes = {BoundClass::tight, BoundClass::loose, BoundClass::base, BoundClass::loose,
                          BoundClass::tight};
    cfg.measure_error = true;
    cfg.link_bytes_per_s = 1e8;  // slow link: auto compresses
    CompressedExchange ex(c.tables(), cfg);
    for (int64_t it : {0, 3, 10})
      for (Direction d : {Direction::forward, Direction::backward}) {
        const ExchangeLayout layout = d == Direction::forward ? fwd : fwd.transposed();
        const std::vector<float> send = zipf_like(layout, rank, 7 + static_cast<uint64_t>(it));
        const Exchanged r = exchange(*comm, layout, send, ex, d, it);
        double worst = 0;
        for (const auto& peer : layout.recv_blocks)
          for (const ExchangeBlock& b : peer) {
            const double eb = cfg.policy.bound(b.table, it, d).value;
            for (size_t i = b.offset; i < b.offset + b.floats(); ++i) {
              const double e = std::abs(double{r.compressed[i]} - r.plain[i]);
              ASSERT_LE(e, eb) << name << " table " << b.table << " iteration " << it;
              worst = std::max(worst, e / eb);
            }
          }
        // The quantising codecs are lossy; auto may pick a lossless codec
        // for small blocks (dedup or raw are cheaper there).
        if (layout.recv_total > 0 && std::string(name) != "auto") {
          EXPECT_GT(worst, 0.1) << name;
        }
        const ExchangeStats& st = ex.last(d);
        for (size_t t = 0; t < st.tables.size(); ++t)
          EXPECT_LE(st.tables[t].max_error, cfg.policy.bound(static_cast<int>(t), it, d).value);
        EXPECT_EQ(st.calls, 1);
      }
    EXPECT_EQ(ex.total(Direction::forward).calls, 3);
  }
}

// Auto keeps each table's codec for decide_every calls: one codec per table
// and direction over the calls in between, decided again afterwards.
TEST(DlrmCompressedExchange, AutoKeepsItsChoiceBetweenDecisions) {
  auto comm = comm::make_mpi_communicator(MPI_COMM_WORLD);
  const int n = comm->size(), rank = comm->rank();
  const DlrmConfig c = small_config(7);
  const ShardingPlan plan = plan_sharding(c, n, mixed_planner());
  const ExchangeLayout layout = forward_exchange_layout(plan, split_batch(57, n), rank);
  CompressedExchangeConfig cfg;
  cfg.codec = parse_codec_choice("auto");
  cfg.policy.forward_base = {compress::ErrorBound::absolute, 2e-3};
  cfg.link_bytes_per_s = 1e8;
  cfg.decide_every = 4;
  CompressedExchange ex(c.tables(), cfg);
  for (int64_t it = 0; it < 4; ++it) {
    // Different data every call; the choice made at call 0 stays.
    const std::vector<float> send = zipf_like(layout, rank, 100 + static_cast<uint64_t>(it));
    exchange(*comm, layout, send, ex, Direction::forward, it);
  }
  for (const TableExchangeStats& t : ex.total(Direction::forward).tables) {
    size_t codecs_used = 0;
    for (size_t blocks : t.codec_blocks) codecs_used += blocks > 0 ? 1 : 0;
    EXPECT_LE(codecs_used, 1u);
  }
  cfg.decide_every = 0;
  EXPECT_THROW(cfg.validate(), UsageError);
}

DlrmConfig zipf_config() {
  DlrmConfig c;
  c.dense_features = 8;
  c.embedding_dim = 16;
  c.bottom_layers = {32, 16};
  c.top_layers = {32, 1};
  c.table_rows = {500, 60, 2000, 12, 300, 1000};
  c.pooling = {1, 2, 1, 1, 3, 1};
  return c;
}

// Training with compression: raw and bound 0 equal the plain exchange bit
// for bit; Zipf pooled embeddings compress.
TEST(DlrmCompressedExchange, TrainingLosslessAndRatios) {
  auto comm = comm::make_mpi_communicator(MPI_COMM_WORLD);
  const int n = comm->size(), rank = comm->rank();
  const DlrmConfig c = zipf_config();
  DataConfig dc;
  dc.seed = 5;
  dc.calibration_samples = 256;
  SyntheticClicks data(c, dc);
  const ShardingPlan plan = plan_sharding(c, n);
  const BatchSplit split = split_batch(512, n);
  OptimizerConfig opt;
  opt.embedding = EmbeddingOptimizer::rowwise_adagrad;
  auto run = [&](CompressedExchange* ex, std::vector<double>& losses) {
    auto model = std::make_unique<DistributedDlrm>(c, plan, *comm, 11);
    model->set_exchange(ex);
    for (int step = 0; step < 3; ++step) {
      const Batch local =
          data.make_batch(Split::train, step, split.first[static_cast<size_t>(rank)],
                          split.counts[static_cast<size_t>(rank)]);
      losses.push_back(model->train_step(local, split, opt).loss);
    }
    return model;
  };
  std::vector<double> plain_losses;
  auto plain = run(nullptr, plain_losses);
  struct Entry {
    const char* name;
    bool zero;  // bound 0: lossless
  };
  for (const Entry& e :
       {Entry{"raw", false}, Entry{"quantize_huffman", true}, Entry{"quantize_huffman", false},
        Entry{"dedup_quantize_huffman", false}, Entry{"dedup", false}, Entry{"fp16", false},
        Entry{"bf16", false}, Entry{"int8", false}, Entry{"auto", false}}) {
    const std::string name = std::string(e.name) + (e.zero ? " (bound 0)" : "");
    const bool zero = e.zero;
    CompressedExchangeConfig cfg;
    cfg.codec = parse_codec_choice(e.name);
    const bool lossless =
        !cfg.codec.automatic && (cfg.codec.codec == Codec::raw || cfg.codec.codec == Codec::dedup);
    if (zero) {
      cfg.policy.forward_base.value = 0;
      cfg.policy.backward_base.value = 0;
    }
    CompressedExchange ex(c.tables(), cfg);
    std::vector<double> losses;
    auto model = run(&ex, losses);
    const ExchangeStats& f = ex.total(Direction::forward);
    const ExchangeStats& b = ex.total(Direction::backward);
    if (rank == 0)
      std::printf("  %-32s forward ratio %.2f backward ratio %.2f loss %.6f (plain %.6f)\n",
                  name.c_str(), f.ratio(), b.ratio(), losses.back(), plain_losses.back());
    if (lossless || zero) {
      EXPECT_EQ(losses, plain_losses) << name;
      EXPECT_EQ(
          std::vector<float>(model->top().parameters().begin(), model->top().parameters().end()),
          std::vector<float>(plain->top().parameters().begin(), plain->top().parameters().end()))
          << name;
      for (size_t i = 0; i < model->shard_count(); ++i)
        EXPECT_EQ(std::memcmp(model->shard(i).weights().data(), plain->shard(i).weights().data(),
                              model->shard(i).weights().size_bytes()),
                  0)
            << name;
    } else {
      EXPECT_NEAR(losses.back(), plain_losses.back(), 0.01) << name;
    }
    // The lossy codecs shrink the data; the lossless ones (and auto, which
    // picks one at a fast link) need not on small blocks of many ranks.
    if (!lossless && !zero && !cfg.codec.automatic && f.raw_bytes > 0) {
      EXPECT_GT(f.ratio(), 1.0) << name;
      EXPECT_GT(b.ratio(), 1.0) << name;
    }
  }
}

TEST(DlrmCompressedExchange, CorruptStreamFailsOnEveryRank) {
  auto comm = comm::make_mpi_communicator(MPI_COMM_WORLD);
  const int n = comm->size(), rank = comm->rank();
  const DlrmConfig c = small_config(7);
  const ShardingPlan plan = plan_sharding(c, n, mixed_planner());
  const ExchangeLayout layout = forward_exchange_layout(plan, split_batch(29, n), rank);
  const std::vector<float> send = zipf_like(layout, rank, 1);
  std::vector<float> recv(layout.recv_total);
  CompressedExchangeConfig cfg;
  cfg.policy.forward_base = {compress::ErrorBound::absolute, 1e-3};
  cfg.tamper = [rank, n](int peer, std::vector<std::byte>& bytes) {
    if (rank == 0 && peer == n - 1 && bytes.size() > 100) bytes[bytes.size() / 2] ^= std::byte{4};
  };
  CompressedExchange bad(c.tables(), cfg);
  try {
    bad.forward(*comm, layout, send, recv, 0);
    ADD_FAILURE() << "no error";
  } catch (const RuntimeError& e) {
    EXPECT_EQ(e.scope(), Scope::all_ranks);
    EXPECT_NE(std::string(e.what()).find("rank " + std::to_string(n - 1) + " could not decode"),
              std::string::npos)
        << e.what();
    // The receiver names the stream problem: a flipped payload byte fails
    // the checksum, one in a later stream's header its magic or sizes.
    if (rank == n - 1) {
      EXPECT_NE(std::string(e.what()).find("from a peer's data: compress"), std::string::npos)
          << e.what();
    }
  }
  // A bad bound fails while compressing: every rank hears of it.
  CompressedExchangeConfig nan_cfg;
  nan_cfg.policy.forward_base = {compress::ErrorBound::absolute, 1e-3};
  CompressedExchange nan_ex(c.tables(), nan_cfg);
  if (rank == 0) nan_ex.policy().forward_base.value = -1;
  EXPECT_THROW(nan_ex.forward(*comm, layout, send, recv, 0), RuntimeError);
  // The communicator still works.
  cfg.tamper = nullptr;
  CompressedExchange good(c.tables(), cfg);
  EXPECT_NO_THROW(good.forward(*comm, layout, send, recv, 0));
}

// Short training at the base bound (relative 1e-2 both ways, classes from
// the measured sensitivity, a linear schedule from 4x) reaches the
// uncompressed AUC.
TEST(DlrmCompressedExchange, TrainingAtBaseBoundKeepsAuc) {
  auto comm = comm::make_mpi_communicator(MPI_COMM_WORLD);
  const int n = comm->size();
  const int threads = kernels::threads();
  kernels::set_threads(1);
  const DlrmConfig c = zipf_config();
  DataConfig dc;
  dc.seed = 12;
  dc.calibration_samples = 1024;
  SyntheticClicks data(c, dc);
  const ShardingPlan plan = plan_sharding(c, n);
  OptimizerConfig opt;
  opt.mlp_lr = 0.5f;
  opt.embedding_lr = 0.1f;
  opt.embedding = EmbeddingOptimizer::rowwise_adagrad;
  const int steps = 150, batch = 256;

  DistributedDlrm plain(c, plan, *comm, 34);
  train(plain, data, steps, batch, opt);
  const EvalResult a = evaluate(plain, data, 4, 512);

  CompressedExchangeConfig cfg;
  cfg.codec = parse_codec_choice("dedup_quantize_huffman");
  cfg.policy.schedule = {ScheduleKind::linear, 4, steps / 2, 1};
  {
    const Dlrm probe(c, 34);
    std::vector<double> s = measure_table_sensitivity(
        probe, data.make_batch(Split::calibration, 0, 0, 512), cfg.policy.forward_base);
    agree_on_rank0(*comm, s);
    cfg.policy.classes = assign_classes(s);
  }
  CompressedExchange ex(c.tables(), cfg);
  DistributedDlrm lossy(c, plan, *comm, 34);
  lossy.set_exchange(&ex);
  train(lossy, data, steps, batch, opt);
  const EvalResult b = evaluate(lossy, data, 4, 512);
  if (comm->rank() == 0)
    std::printf(
        "  %d ranks: AUC plain %.4f compressed %.4f; forward ratio %.2f backward %.2f; %s\n", n,
        a.auc, b.auc, ex.total(Direction::forward).ratio(), ex.total(Direction::backward).ratio(),
        cfg.policy.describe().c_str());
  EXPECT_GT(a.auc, 0.65);
  EXPECT_NEAR(b.auc, a.auc, 0.01);
  kernels::set_threads(threads);
}

}  // namespace
}  // namespace paralab::dlrm::test
