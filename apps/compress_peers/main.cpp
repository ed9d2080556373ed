// compress_peers: our error-bounded compressor beside ZFP's fixed-accuracy
// mode on real DLRM embedding data, at the same absolute bound (issue 5:
// "peers side by side on the same embedding data ... ratio and throughput
// table"; Feng et al., SC'24).
//
// 1. Builds the Criteo-Kaggle-like DLRM (lib/dlrm preset), trains it --steps
//    steps on the synthetic click logs (one rank, table-wise), so the tables
//    are no longer their initial values.
// 2. Captures, on one more forward pass, the forward exchange's payload as
//    the exchange sends it (each table's pooled embeddings [batch, d]), and
//    each table's rows [rows, d].
// 3. For each kind of data, each bound and each peer (peers.hpp), compresses
//    and decompresses every table's block on one thread: ratio, median
//    compress and decompress GB/s of FP32 input, max |error| / bound. Per
//    table and overall (bytes and seconds summed over the tables).
// 4. Writes the blocks and the results to HDF5, where
//    scripts/compress_peers.py adds SZ3 (pysz) on the same blocks and bounds.
//
// Bounds: --bound-mode rel (default) takes each value of --bounds times each
// block's value range (max - min) as that block's absolute bound, the same
// for every peer; abs takes the values as absolute bounds. Our codecs must
// meet the bound on every value (else exit 2, no result file); ZFP's
// accuracy mode is a tolerance, and the table shows how far it is met.
// docs/compress_peers.md has the measured tables.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "comm/comm.hpp"
#include "core/errors.hpp"
#include "core/options.hpp"
#include "dlrm/compressed_exchange.hpp"
#include "dlrm/data.hpp"
#include "dlrm/distributed.hpp"
#include "dlrm/model.hpp"
#include "dlrm/sharding.hpp"
#include "harness/app.hpp"
#include "harness/table.hpp"
#include "kernels/threads.hpp"
#include "peers.hpp"

namespace paralab::compress_peers {
namespace {

struct Options {
  int embedding_dim = 32;
  int64_t max_rows = 5000;
  int pooling = 1;
  int batch = 2048;
  int steps = 30;
  double lr = 0.1;
  std::vector<double> bounds{1e-2, 1e-3, 1e-4};
  std::string bound_mode = "rel";
  std::vector<std::string> data{"pooled", "rows"};
  int repeats = 5;
  double link_GBps = 1.25;
  int threads = 0;
};

void add_options(CLI::App& cli, Options& o) {
  const char* model = "Model and training";
  cli.add_option("--embedding-dim", o.embedding_dim, "Embedding dimension d")
      ->check(positive_number())
      ->capture_default_str()
      ->group(model);
  cli.add_option("--max-rows", o.max_rows, "Cap on the rows of a Criteo Kaggle table")
      ->check(positive_number())
      ->capture_default_str()
      ->group(model);
  cli.add_option("--pooling", o.pooling, "Indices per lookup (bag size; 1 in Criteo)")
      ->check(positive_number())
      ->capture_default_str()
      ->group(model);
  cli.add_option("--batch", o.batch, "Samples per training step, and of the captured exchange")
      ->check(positive_number())
      ->capture_default_str()
      ->group(model);
  cli.add_option("--steps", o.steps, "Training steps before the capture")
      ->check(non_negative_number())
      ->capture_default_str()
      ->group(model);
  cli.add_option("--lr", o.lr, "SGD learning rate (MLPs and tables)")
      ->capture_default_str()
      ->group(model);
  cli.add_option("--threads", o.threads,
                 "Training threads (default: the cores); compression always runs on one")
      ->check(CLI::Range(0, 4096))
      ->group(model);
  const char* comp = "Compression";
  cli.add_option("--bounds", o.bounds, "Error bounds, a comma list (see --bound-mode)")
      ->delimiter(',')
      ->capture_default_str()
      ->group(comp);
  cli.add_option("--bound-mode", o.bound_mode,
                 "rel: each bound times each block's value range (max - min) is that block's "
                 "absolute bound, for every peer; abs: the bounds are absolute")
      ->check(CLI::IsMember({"rel", "abs"}))
      ->capture_default_str()
      ->group(comp);
  cli.add_option("--data", o.data,
                 "Blocks to compress, a comma list: pooled (each table's pooled embeddings as "
                 "the forward exchange sends them, [batch, d]) and rows (each table, [rows, d])")
      ->delimiter(',')
      ->check(CLI::IsMember({"pooled", "rows"}))
      ->capture_default_str()
      ->group(comp);
  cli.add_option("--repeats", o.repeats, "Timed compressions and decompressions per block (median)")
      ->check(positive_number())
      ->capture_default_str()
      ->group(comp);
  cli.add_option("--link-GBps", o.link_GBps,
                 "auto: the link rate its choice between quantize_huffman and "
                 "dedup_quantize_huffman assumes (GB/s)")
      ->capture_default_str()
      ->group(comp);
}

// Records the forward exchange's send buffer, block by block, on the call
// after capture_next() (then sends it as the plain exchange does).
class CapturingExchange : public dlrm::EmbeddingExchange {
 public:
  void capture_next() { capture_ = true; }
  std::vector<Block>& blocks() { return blocks_; }

  void forward(comm::Communicator& comm, const dlrm::ExchangeLayout& layout,
               std::span<const float> send, std::span<float> recv, int64_t iteration) override {
    if (capture_) {
      for (const auto& peer_blocks : layout.send_blocks)
        for (const dlrm::ExchangeBlock& b : peer_blocks) {
          Block block{b.table, static_cast<size_t>(b.rows), static_cast<size_t>(b.cols), {}};
          const auto first = send.begin() + static_cast<std::ptrdiff_t>(b.offset);
          block.values.assign(first, first + static_cast<std::ptrdiff_t>(b.floats()));
          blocks_.push_back(std::move(block));
        }
      capture_ = false;
    }
    EmbeddingExchange::forward(comm, layout, send, recv, iteration);
  }

 private:
  bool capture_ = false;
  std::vector<Block> blocks_;
};

struct Captured {
  std::vector<Block> pooled, rows;
  std::vector<double> loss;  // per training step
};

// Steps 1 and 2 of the top of the file.
Captured train_and_capture(App& app, const Options& o, const dlrm::DlrmConfig& config) {
  auto comm = comm::make_mpi_communicator(app.world().comm());
  const dlrm::ShardingPlan plan = dlrm::plan_sharding(config, 1);
  dlrm::DistributedDlrm model(config, plan, *comm, app.common().seed);
  CapturingExchange exchange;
  model.set_exchange(&exchange);
  dlrm::DataConfig dc;
  dc.seed = app.common().seed;
  dlrm::SyntheticClicks data(config, dc);
  dlrm::OptimizerConfig opt;
  opt.mlp_lr = opt.embedding_lr = static_cast<float>(o.lr);

  Captured c;
  c.loss = dlrm::train(model, data, o.steps, o.batch, opt);
  // The next training batch through the trained model: what step steps + 1 would send.
  const dlrm::BatchSplit split = dlrm::split_batch(o.batch, 1);
  const dlrm::Batch batch = data.make_batch(dlrm::Split::train, o.steps, 0, o.batch);
  std::vector<float> logits(static_cast<size_t>(o.batch));
  exchange.capture_next();
  model.forward(batch, split, logits);
  c.pooled = std::move(exchange.blocks());
  std::sort(c.pooled.begin(), c.pooled.end(),
            [](const Block& a, const Block& b) { return a.table < b.table; });
  for (size_t i = 0; i < model.shard_count(); ++i) {
    const dlrm::EmbeddingShard& shard = model.shard(i);
    const auto w = shard.weights();
    c.rows.push_back({shard.table(),
                      static_cast<size_t>(shard.rows()),
                      static_cast<size_t>(shard.cols()),
                      {w.begin(), w.end()}});
  }
  std::sort(c.rows.begin(), c.rows.end(),
            [](const Block& a, const Block& b) { return a.table < b.table; });
  return c;
}

// One peer on every block of one kind at one bound.
struct PeerRun {
  std::string data, peer;
  double bound_value = 0;
  bool available = true;
  std::string note;
  std::vector<double> table_bound;  // absolute, per block
  std::vector<Measurement> tables;
  Measurement overall;
  double max_error_over_bound = 0;  // max over the blocks
};

double error_over_bound(double error, double bound) {
  if (error == 0) return 0;
  return bound > 0 ? error / bound : INFINITY;
}

PeerRun run_peer(const Peer& peer, const std::string& kind, const std::vector<Block>& blocks,
                 double bound_value, bool relative, int repeats) {
  PeerRun r;
  r.data = kind;
  r.peer = peer.name;
  r.bound_value = bound_value;
  r.available = peer.available;
  if (!peer.available) {
    r.note = peer.unavailable_reason;
    return r;
  }
  std::vector<std::string> chosen;
  for (const Block& block : blocks) {
    const double bound = relative ? bound_value * block.range() : bound_value;
    const Measurement m = peer.measure(block, bound, repeats);
    r.table_bound.push_back(bound);
    r.tables.push_back(m);
    r.overall.input_bytes += m.input_bytes;
    r.overall.compressed_bytes += m.compressed_bytes;
    r.overall.compress_s += m.compress_s;
    r.overall.decompress_s += m.decompress_s;
    r.overall.max_error = std::max(r.overall.max_error, m.max_error);
    r.max_error_over_bound = std::max(r.max_error_over_bound, error_over_bound(m.max_error, bound));
    if (std::find(chosen.begin(), chosen.end(), m.detail) == chosen.end())
      chosen.push_back(m.detail);
  }
  if (peer.name == "auto") {
    for (const auto& name : chosen) {
      int count = 0;
      for (const auto& m : r.tables) count += m.detail == name;
      r.note += (r.note.empty() ? "" : ", ") + std::to_string(count) + " x " + name;
    }
  }
  if (r.max_error_over_bound > 1)
    r.note += std::string(r.note.empty() ? "" : "; ") + "EXCEEDS the bound";
  return r;
}

double ratio_of(const Measurement& m) {
  return m.compressed_bytes ? static_cast<double>(m.input_bytes) / m.compressed_bytes : 0;
}
double GBps(size_t bytes, double seconds) {
  return seconds > 0 ? bytes / seconds / 1e9 : 0;
}

Table make_table(const World& world) {
  return Table(world, {{"data", "", 7},
                       {"bound", "", 8},
                       {"codec", "", 22},
                       {"ratio", "", 8},
                       {"compress", "(GB/s)", 9},
                       {"decomp", "(GB/s)", 9},
                       {"max err", "/ bound", 9},
                       {"note", "", 4}});
}

void print_run(const Table& table, const PeerRun& r) {
  if (!r.available) {
    table.print_row({r.data, cell("%.0e", r.bound_value), r.peer, "-", "-", "-", "-", r.note});
    return;
  }
  const Measurement& m = r.overall;
  table.print_row({r.data, cell("%.0e", r.bound_value), r.peer, cell("%.2f", ratio_of(m)),
                   cell("%.3f", GBps(m.input_bytes, m.compress_s)),
                   cell("%.3f", GBps(m.input_bytes, m.decompress_s)),
                   cell("%.3f", r.max_error_over_bound), r.note});
}

void record_blocks(App& app, const std::string& kind, const std::vector<Block>& blocks) {
  results::Group g = app.add_group("blocks_" + kind);
  g.attr("kind", kind);
  g.attr("units", "FP32 values stored as float64 (exact)");
  for (const Block& b : blocks) {
    const std::vector<double> values(b.values.begin(), b.values.end());
    char name[32];
    std::snprintf(name, sizeof name, "table_%02d", b.table);
    g.dataset(name, values, {b.rows, b.cols}, "1", "row,col");
  }
}

void record_run(App& app, const Options& o, const PeerRun& r) {
  results::Group g = app.add_point();
  g.attr("data", r.data);
  g.attr("codec", r.peer);
  g.attr("bound_value", r.bound_value);
  g.attr("bound_mode", o.bound_mode);
  g.attr("repeats", o.repeats);
  g.attr("available", static_cast<int64_t>(r.available));
  g.attr("note", r.note);
  g.attr("parameters", std::vector<std::string>{"data", "codec", "bound_value", "bound_mode"});
  if (!r.available) {
    g.attr("metrics", std::vector<std::string>{});
    return;
  }
  const Measurement& m = r.overall;
  g.attr("ratio", ratio_of(m));
  g.attr("compress_GBps", GBps(m.input_bytes, m.compress_s));
  g.attr("decompress_GBps", GBps(m.input_bytes, m.decompress_s));
  g.attr("max_error_over_bound", r.max_error_over_bound);
  g.attr("input_bytes", static_cast<int64_t>(m.input_bytes));
  g.attr("compressed_bytes", static_cast<int64_t>(m.compressed_bytes));
  g.attr("metrics",
         std::vector<std::string>{"ratio", "compress_GBps", "decompress_GBps",
                                  "max_error_over_bound", "input_bytes", "compressed_bytes"});
  const size_t n = r.tables.size();
  std::vector<int64_t> table, input, compressed;
  std::vector<double> comp_s, decomp_s, error;
  for (const Measurement& t : r.tables) {
    input.push_back(static_cast<int64_t>(t.input_bytes));
    compressed.push_back(static_cast<int64_t>(t.compressed_bytes));
    comp_s.push_back(t.compress_s);
    decomp_s.push_back(t.decompress_s);
    error.push_back(t.max_error);
  }
  for (size_t t = 0; t < n; ++t) table.push_back(static_cast<int64_t>(t));
  g.dataset("table", table, {n}, "table id", "table");
  g.dataset("table_bound", r.table_bound, {n}, "1", "table");
  g.dataset("table_input_bytes", input, {n}, "bytes", "table");
  g.dataset("table_compressed_bytes", compressed, {n}, "bytes", "table");
  g.dataset("table_compress_s", comp_s, {n}, "s", "table");
  g.dataset("table_decompress_s", decomp_s, {n}, "s", "table");
  g.dataset("table_max_error", error, {n}, "1", "table");
  if (r.peer == "auto") {
    std::vector<std::string> chosen;
    for (const Measurement& t : r.tables) chosen.push_back(t.detail);
    g.attr("table_codec", chosen);
  }
}

void run(App& app) {
  Options o;
  add_options(app.cli(), o);
  app.parse();
  World& world = app.world();
  if (app.common().device != Device::cpu)
    throw UsageError("compress_peers runs on the CPU (--device cpu)");
  if (world.size() != 1)
    throw UsageError("compress_peers measures one core: run it on 1 rank (it has " +
                     std::to_string(world.size()) + ")");
  if (o.bounds.empty()) throw UsageError("--bounds: give at least one bound");
  for (const double b : o.bounds)
    if (!(b > 0) || !std::isfinite(b))
      throw UsageError(cell("--bounds: %g is not a positive bound", b));
  if (!(o.link_GBps > 0)) throw UsageError("--link-GBps must be positive");
  const dlrm::DlrmConfig config = dlrm::criteo_kaggle(o.embedding_dim, o.max_rows, 1.0, o.pooling);

  kernels::set_threads(o.threads > 0 ? o.threads : kernels::default_threads(world.local_size()));
  app.open_results("mpi");
  world.printf("# compress_peers: model %s\n", config.describe().c_str());
  world.printf(
      "# training %d steps of batch %d (%d threads), then capturing one forward exchange\n",
      o.steps, o.batch, kernels::threads());
  const Captured captured = train_and_capture(app, o, config);
  if (!captured.loss.empty())
    world.printf("# train loss: step 1 %.4f, step %zu %.4f\n", captured.loss.front(),
                 captured.loss.size(), captured.loss.back());
  world.printf(
      "# one thread; %d repeats, medians; bounds %s (%s); ZFP %s; auto assumes a %.3g GB/s "
      "link\n",
      o.repeats, o.bound_mode == "rel" ? "x each block's value range" : "absolute",
      o.bound_mode.c_str(), zfp_version().c_str(), o.link_GBps);

  AutoOptions automatic;
  automatic.link_bytes_per_s = o.link_GBps * 1e9;
  automatic.decide_every = dlrm::CompressedExchangeConfig{}.decide_every;
  std::vector<Peer> peers = our_peers(automatic);
  for (Peer& p : zfp_peers()) peers.push_back(std::move(p));
  const Table table = make_table(world);
  table.print_header();
  std::vector<PeerRun> runs;
  std::string violations;
  for (const std::string& kind : o.data) {
    const std::vector<Block>& blocks = kind == "pooled" ? captured.pooled : captured.rows;
    for (const double bound : o.bounds) {
      for (const Peer& peer : peers) {
        runs.push_back(run_peer(peer, kind, blocks, bound, o.bound_mode == "rel", o.repeats));
        print_run(table, runs.back());
        // Ours is error bounded: every value within the bound, always.
        const bool ours = peer.name.rfind("zfp", 0) != 0;
        if (ours && runs.back().max_error_over_bound > 1)
          violations += cell(" %s %s at %g (max error / bound %.4f);", kind.c_str(),
                             peer.name.c_str(), bound, runs.back().max_error_over_bound);
      }
    }
  }
  if (!violations.empty()) throw CheckFailed("our codecs missed the error bound:" + violations);

  for (const std::string& kind : o.data)
    record_blocks(app, kind, kind == "pooled" ? captured.pooled : captured.rows);
  results::Group model = app.add_group("model");
  model.attr("config", config.describe());
  model.attr("zfp_version", zfp_version());
  model.dataset("train_loss", captured.loss, {captured.loss.size()}, "nats", "step");
  for (const PeerRun& r : runs) record_run(app, o, r);
  app.finish();
}

}  // namespace
}  // namespace paralab::compress_peers

int main(int argc, char** argv) {
  return paralab::run_app(argc, argv,
                          {.name = "compress_peers",
                           .description = "paralab compress_peers: our error-bounded compressor "
                                          "beside ZFP on DLRM embedding data, same absolute bound",
                           .has_sweep_repeats = false},
                          paralab::compress_peers::run);
}
