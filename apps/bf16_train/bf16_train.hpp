// The bf16_train app's parts: options, data sets, the training loop of one
// precision policy, and its report (table rows, summary, HDF5 point).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "harness/app.hpp"
#include "harness/table.hpp"
#include "model/data.hpp"
#include "model/data_parallel.hpp"
#include "model/model.hpp"
#include "model/optimizer.hpp"
#include "model/precision.hpp"
#include "results/output_file.hpp"

namespace paralab::bf16_train {

struct Options {
  std::vector<std::string> precisions = {"all"};
  std::string grad_dtype = "f32";
  // Data.
  std::string data = "markov";
  int vocab = 16;
  int order = 2;
  double concentration = 0.2;
  std::string corpus = "/usr/share/games/fortunes";
  double heldout_fraction = 0.1;
  // Model.
  int layers = 2;
  int d_model = 128;
  int heads = 4;
  int kv_heads = 2;
  int ffn = 344;
  int context = 128;
  // Training.
  int batch = 16;
  int steps = 600;
  double lr = 3e-3;
  int warmup = -1;     // -1: 10% of --steps
  double min_lr = -1;  // -1: --lr / 10
  double weight_decay = 0.01;
  double clip = 1.0;
  std::string optimizer = "adamw";
  double momentum = 0.9;
  int eval_every = 50;
  int eval_batches = 8;
  // Checkpoints.
  std::string checkpoint;
  int checkpoint_every = 0;
  std::string resume;
  int stop_at = 0;         // 0: train all --steps
  int64_t init_seed = -1;  // -1: from --seed
  int threads = 0;
  bool allow_divergence = false;
};

void add_options(CLI::App& cli, Options& o);
// Fills the defaults that depend on other options (--warmup, --min-lr).
void resolve_defaults(Options& o);

// The policies asked for, in order ("all": the five of precision.hpp).
std::vector<model::Precision> policies_of(const Options& o);
model::ModelConfig model_config_of(const Options& o, int vocab);
model::LrSchedule schedule_of(const Options& o);
std::unique_ptr<model::Optimizer> make_optimizer(const Options& o, uint64_t seed);
// Everything a resumed run must share with the run that wrote the
// checkpoint, as JSON (model, policy, data, optimizer, schedule, batch, seed,
// gradient type).
std::string run_config_json(const Options& o, model::Precision policy, uint64_t seed);
// A checkpoint path of one policy: the path itself with one policy, else
// "<stem>.<policy><extension>".
std::string policy_path(const std::string& path, model::Precision policy, bool several);

// Seeds derived from --seed: the data (the Markov language and every
// sampled batch); and from --init-seed (default --seed) the initial weights
// and the stochastic-rounding stream.
struct Seeds {
  uint64_t data, init, rounding;
};
Seeds seeds_of(const Options& o, uint64_t seed);

// Training and held-out batches of either data set. Batch i of a run is the
// same for every policy and rank count (data.hpp).
class DataSet {
 public:
  // Throws UsageError for an unreadable corpus or a context that does not fit it.
  DataSet(const Options& o, uint64_t seed);
  int vocab() const;
  std::string name() const { return name_; }
  // The entropy rate of the Markov source, nats per token (the loss floor);
  // nullopt for text.
  std::optional<double> floor_nats() const;
  model::SampledBatch train(int64_t step, int batch, int seq) const;
  model::SampledBatch heldout(int64_t index, int batch, int seq) const;
  size_t train_bytes() const;    // text only
  size_t heldout_bytes() const;  // text only

 private:
  std::string name_;
  uint64_t seed_;
  std::optional<model::MarkovSource> markov_;
  std::optional<model::TextCorpus> text_;
};

// The curves of one policy's run, step by step (and at the evaluations).
struct History {
  std::vector<double> loss, lr, grad_norm, lost_fraction, step_time_s, compute_s, allreduce_s,
      update_s;
  std::vector<double> eval_step, heldout_loss;
};

// One policy's run and its summary.
struct PolicyResult {
  model::Precision policy = model::Precision::fp32;
  History history;
  int64_t resumed_from = -1;  // step the run resumed at, -1: from scratch
  int64_t steps_done = 0;     // --steps, or --stop-at
  int64_t params = 0;         // parameter count
  double flops_per_step = 0;  // Model::train_flops of the global batch
  int64_t tokens_per_step = 0;
  double final_train_loss = 0;    // mean over the last 10% of the steps
  double final_heldout_loss = 0;  // at the last step
  double lost_fraction = 0;       // mean over steps
  double tokens_per_s = 0;        // global tokens / summed step time
  double step_time_s = 0;         // median
  double rank_tflops = 0;         // flops_per_step / ranks / median step time
  bool replicas_agree = true;
  int64_t diverged_at = -1;  // the first step with a non-finite or exploding loss; -1: none
  std::string divergence;    // what diverged (StepWatch::reason)
};

// The rates the step is compared with, measured on every rank at once with
// the run's threads: square GEMMs (SGEMM: OpenBLAS; BF16: the kernel
// library's), and the step's own GEMM shapes replayed alone.
struct Limits {
  int size = 0;  // of the square GEMMs
  double sgemm_tflops = 0, bf16_gemm_tflops = 0;
  double step_gemm_f32_tflops = 0, step_gemm_bf16_tflops = 0;
  double step_gemm_flops = 0;  // per rank and step
};
Limits measure_limits(MPI_Comm comm, const model::ModelConfig& config, int rows, int seq);

Table make_table(const World& world);
void print_row(const Table& table, model::Precision policy, const History& h, size_t eval_index,
               int64_t tokens_per_step);
void print_summary(const World& world, const std::vector<PolicyResult>& results,
                   const Limits& limits, std::optional<double> floor);
void record(App& app, const Options& o, const DataSet& data, const Limits& limits,
            const PolicyResult& result, const PolicyResult* fp32);
void record_limits(App& app, const Limits& limits);

// Trains one policy from --seed's initial weights (or from the checkpoint at `resume`, when not
// empty) for --steps steps, evaluating, checkpointing into `checkpoint` (rank 0; null: none)
// and printing rows as it goes. Stops early at a divergence (unless --allow-divergence) and,
// after saving the checkpoint, at a termination signal (throws Interrupted). Collective.
PolicyResult train_policy(App& app, const Options& o, const DataSet& data, comm::Communicator& comm,
                          model::Precision policy, const Table& table, const std::string& resume,
                          results::OutputFile* checkpoint);

}  // namespace paralab::bf16_train
