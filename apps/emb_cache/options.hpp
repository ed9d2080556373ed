// The emb_cache app's options and what they turn into: the DLRM, the data,
// the optimizer and the list of table variants (format x policy x rounding)
// to train, all checked before any training (one clear UsageError).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dlrm/data.hpp"
#include "dlrm/model.hpp"
#include "emb/train.hpp"
#include "harness/app.hpp"

namespace paralab::emb_cache {

struct Options {
  std::string model = "custom";
  int embedding_dim = 16;
  int64_t max_rows = 100'000;
  int tables = 8;
  int64_t rows = 100'000;
  int pooling = 1;
  double zipf = 1.05;
  int batch = 256;
  int steps = 200;
  int eval_every = 100;
  int eval_batches = 4;
  std::string optimizer = "sgd";
  double lr = 0.1;
  double embedding_lr = -1;  // -1: --lr
  std::vector<std::string> formats{"fp32", "fp16", "bf16", "int8", "int4"};
  double cache_fraction = 0.05;
  int assoc = 32;
  std::vector<std::string> policies{"lru"};
  std::vector<std::string> roundings{"nearest"};
  bool no_prefetch = false;
  int progress_every = 0;  // 0: a tenth of the steps when there are at least 100
  int threads = 0;
  std::string criteo;  // a Criteo TSV file instead of synthetic data
  // --mode simulate (docs/emb_cache.md: every default and its source)
  std::string profile = "cluster-400g-rdma";
  std::string sim_model = "zionex-12t";
  std::vector<int> sim_gpus{32, 128};
  int64_t sim_batch = 65'536;
  std::vector<double> sim_cache_fractions{0.01, 0.05};
  std::vector<double> sim_hit_rates;  // empty: measured by a calibration run here
  double sim_hbm_GB = 80;             // H100 SXM5 80 GB
  double sim_host_GBps = 50;          // PCIe Gen5 x16: 63 GB/s per direction, 80% achieved
};

void add_options(CLI::App& cli, Options& o);

// One table variant to train.
struct Variant {
  emb::TableOptions table;
  std::string label() const;  // "int8 lru nearest"
};

struct Setup {
  dlrm::DlrmConfig config;
  std::vector<emb::CriteoSample> criteo;  // with --criteo: every line of the file
  size_t criteo_train = 0;                // the first lines train, the rest are held out
  dlrm::DataConfig data;
  emb::RunConfig run;
  std::vector<Variant> variants;
  dlrm::DlrmConfig sim_config;  // --mode simulate: the simulated model
};

// Parses the harness's and the app's options, checks them, builds the setup.
Setup parse_and_validate(App& app, Options& o);

}  // namespace paralab::emb_cache
