// Options, seeds, the run configuration checkpoints compare, and the data sets.
#include <nlohmann/json.hpp>

#include <filesystem>

#include "bf16_train.hpp"
#include "core/errors.hpp"
#include "core/options.hpp"
#include "harness/training.hpp"

namespace paralab::bf16_train {

void add_options(CLI::App& cli, Options& o) {
  cli.add_option("--precision", o.precisions,
                 "Precision policies, a comma list: fp32, bf16-mixed, bf16-pure-rne, "
                 "bf16-pure-sr, bf16-pure-kahan; or all (each in turn from the same initial "
                 "weights and data, one result file)")
      ->delimiter(',')
      ->capture_default_str();
  cli.add_option("--grad-dtype", o.grad_dtype,
                 "Type of the data-parallel gradient all-reduce: f32, or bf16 (rounded to "
                 "nearest even, summed in BF16)")
      ->check(CLI::IsMember({"f32", "bf16"}))
      ->capture_default_str();
  auto* data = "Data";
  cli.add_option("--data", o.data,
                 "markov (synthetic language of known entropy rate) or text (bytes of --corpus)")
      ->check(CLI::IsMember({"markov", "text"}))
      ->capture_default_str()
      ->group(data);
  cli.add_option("--vocab", o.vocab, "markov: tokens of the language")
      ->check(CLI::Range(2, 65536))
      ->capture_default_str()
      ->group(data);
  cli.add_option("--order", o.order, "markov: tokens of context the next token depends on")
      ->check(positive_number())
      ->capture_default_str()
      ->group(data);
  cli.add_option("--concentration", o.concentration,
                 "markov: Dirichlet concentration of the transition rows (smaller: more "
                 "predictable, a lower entropy floor)")
      ->capture_default_str()
      ->group(data);
  cli.add_option("--corpus", o.corpus, "text: files or folders of text (byte-level, vocab 256)")
      ->capture_default_str()
      ->group(data);
  cli.add_option("--heldout-fraction", o.heldout_fraction,
                 "text: the tail of the corpus held out for evaluation")
      ->capture_default_str()
      ->group(data);
  auto* model = "Model";
  cli.add_option("--layers", o.layers, "Transformer layers")->capture_default_str()->group(model);
  cli.add_option("--d-model", o.d_model, "Width of the residual stream")
      ->capture_default_str()
      ->group(model);
  cli.add_option("--heads", o.heads, "Query heads (divide --d-model)")
      ->capture_default_str()
      ->group(model);
  cli.add_option("--kv-heads", o.kv_heads, "Key/value heads (divide --heads)")
      ->capture_default_str()
      ->group(model);
  cli.add_option("--ffn", o.ffn, "Hidden width of the SwiGLU MLP")
      ->capture_default_str()
      ->group(model);
  cli.add_option("--context", o.context, "Tokens per training sequence")
      ->capture_default_str()
      ->group(model);
  auto* train = "Training";
  cli.add_option("--batch", o.batch, "Sequences per step, global (split over the ranks)")
      ->check(positive_number())
      ->capture_default_str()
      ->group(train);
  cli.add_option("--steps", o.steps, "Optimizer steps")
      ->check(positive_number())
      ->capture_default_str()
      ->group(train);
  cli.add_option("--lr", o.lr, "Peak learning rate")->capture_default_str()->group(train);
  cli.add_option("--warmup", o.warmup,
                 "Linear warm-up steps, then cosine decay to --min-lr; default 10% of --steps")
      ->check(non_negative_number())
      ->group(train);
  cli.add_option("--min-lr", o.min_lr, "Learning rate at the last step; default --lr / 10")
      ->check(non_negative_number())
      ->group(train);
  cli.add_option("--weight-decay", o.weight_decay, "Decoupled weight decay of the matrices")
      ->check(non_negative_number())
      ->capture_default_str()
      ->group(train);
  cli.add_option("--clip", o.clip, "Global gradient-norm clipping; 0: none")
      ->check(non_negative_number())
      ->capture_default_str()
      ->group(train);
  cli.add_option("--optimizer", o.optimizer, "adamw (betas 0.9, 0.95) or sgd (with --momentum)")
      ->check(CLI::IsMember({"adamw", "sgd"}))
      ->capture_default_str()
      ->group(train);
  cli.add_option("--momentum", o.momentum, "sgd: momentum")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str()
      ->group(train);
  cli.add_option("--eval-every", o.eval_every,
                 "Held-out loss (and a table row) every this many steps, and at the last")
      ->check(positive_number())
      ->capture_default_str()
      ->group(train);
  cli.add_option("--eval-batches", o.eval_batches,
                 "Held-out batches (of --batch sequences, the same ones every time) per evaluation")
      ->check(positive_number())
      ->capture_default_str()
      ->group(train);
  auto* state = "Checkpoints";
  cli.add_option("--checkpoint", o.checkpoint,
                 "Save the training state to this HDF5 file (with several policies: "
                 "<stem>.<policy>.h5) at the end and every --checkpoint-every steps")
      ->group(state);
  cli.add_option("--checkpoint-every", o.checkpoint_every,
                 "Steps between checkpoints; 0: at the end")
      ->check(non_negative_number())
      ->capture_default_str()
      ->group(state);
  cli.add_option("--resume", o.resume,
                 "Continue from this checkpoint (named like --checkpoint's), bit-identically; "
                 "the run's options must match the ones that wrote it")
      ->group(state);
  cli.add_option(
         "--stop-at", o.stop_at,
         "Stop each policy after this many steps (as a job's time limit would), with a "
         "checkpoint when --checkpoint is given; --resume continues it. 0: train all --steps")
      ->check(non_negative_number())
      ->capture_default_str()
      ->group(state);
  cli.add_option("--init-seed", o.init_seed,
                 "Seed of the initial weights and the stochastic rounding, to vary them with the "
                 "data fixed; default: --seed");
  cli.add_option("--threads", o.threads,
                 "Kernel threads per rank; default: this host's cores / its ranks")
      ->check(CLI::Range(0, 4096));
  add_divergence_option(cli, o.allow_divergence);
}

void resolve_defaults(Options& o) {
  if (o.warmup < 0) o.warmup = o.steps / 10;
  if (o.min_lr < 0) o.min_lr = o.lr / 10;
}

std::vector<model::Precision> policies_of(const Options& o) {
  std::vector<model::Precision> out;
  auto add = [&](model::Precision p) {
    for (model::Precision q : out)
      if (q == p) return;
    out.push_back(p);
  };
  for (const std::string& name : o.precisions) {
    if (name == "all") {
      for (model::Precision p : model::all_precisions()) add(p);
    } else {
      add(model::parse_precision(name));
    }
  }
  if (out.empty()) throw UsageError("--precision: no policy given");
  return out;
}

model::ModelConfig model_config_of(const Options& o, int vocab) {
  model::ModelConfig c;
  c.vocab = vocab;
  c.layers = o.layers;
  c.d_model = o.d_model;
  c.heads = o.heads;
  c.kv_heads = o.kv_heads;
  c.ffn = o.ffn;
  c.context = o.context;
  model::validate(c);
  return c;
}

model::LrSchedule schedule_of(const Options& o) {
  model::LrSchedule s;
  s.peak = static_cast<float>(o.lr);
  s.floor = static_cast<float>(o.min_lr);
  s.warmup = o.warmup;
  s.total = o.steps;
  model::validate(s);
  return s;
}

std::unique_ptr<model::Optimizer> make_optimizer(const Options& o, uint64_t seed) {
  const float decay = static_cast<float>(o.weight_decay);
  if (o.optimizer == "sgd")
    return std::make_unique<model::Sgd>(model::SgdConfig{static_cast<float>(o.momentum), decay},
                                        seed);
  return std::make_unique<model::AdamW>(model::AdamWConfig{0.9f, 0.95f, 1e-8f, decay}, seed);
}

std::string run_config_json(const Options& o, model::Precision policy, uint64_t seed) {
  nlohmann::json j;
  j["precision"] = std::string(model::to_string(policy));
  j["grad_dtype"] = o.grad_dtype;
  j["data"] = o.data;
  if (o.data == "markov") {
    j["vocab"] = o.vocab;
    j["order"] = o.order;
    j["concentration"] = o.concentration;
  } else {
    j["corpus"] = o.corpus;
    j["heldout_fraction"] = o.heldout_fraction;
  }
  j["layers"] = o.layers;
  j["d_model"] = o.d_model;
  j["heads"] = o.heads;
  j["kv_heads"] = o.kv_heads;
  j["ffn"] = o.ffn;
  j["context"] = o.context;
  j["batch"] = o.batch;
  j["steps"] = o.steps;
  j["lr"] = o.lr;
  j["warmup"] = o.warmup;
  j["min_lr"] = o.min_lr;
  j["weight_decay"] = o.weight_decay;
  j["clip"] = o.clip;
  j["optimizer"] = o.optimizer;
  if (o.optimizer == "sgd") j["momentum"] = o.momentum;
  j["seed"] = seed;
  j["init_seed"] = o.init_seed;
  // The kernels' thread count splits sums differently: another one resumes correctly but not
  // bit-identically (main.cpp warns, it does not refuse).
  j["threads"] = o.threads;
  return j.dump();
}

std::string policy_path(const std::string& path, model::Precision policy, bool several) {
  if (!several || path.empty()) return path;
  const std::filesystem::path p(path);
  std::filesystem::path out = p.parent_path() / p.stem();
  out += "." + std::string(model::to_string(policy)) + p.extension().string();
  return out.string();
}

Seeds seeds_of(const Options& o, uint64_t seed) {
  const uint64_t base = o.init_seed >= 0 ? static_cast<uint64_t>(o.init_seed) : seed;
  return {seed, base * 0x9e3779b97f4a7c15ull + 1, base * 0xbf58476d1ce4e5b9ull + 2};
}

// --- data sets ---------------------------------------------------------------

namespace {
// Held-out Markov samples use streams far beyond any training step.
constexpr uint64_t kHeldoutStream = uint64_t{1} << 40;
}  // namespace

DataSet::DataSet(const Options& o, uint64_t seed) : name_(o.data), seed_(seed) {
  if (o.data == "markov") {
    markov_.emplace(o.vocab, o.order, o.concentration, seed);
    return;
  }
  text_.emplace(model::TextCorpus::load({o.corpus}, o.heldout_fraction));
  using Split = model::TextCorpus::Split;
  for (Split split : {Split::train, Split::heldout}) {
    const size_t bytes = text_->size(split);
    if (size_t(o.context) + 1 > bytes)
      throw UsageError("--context " + std::to_string(o.context) + " is longer than the " +
                       (split == Split::train ? "training" : "held-out") + " text of '" + o.corpus +
                       "' (" + std::to_string(bytes) +
                       " bytes); lower --context or change --heldout-fraction");
  }
}

int DataSet::vocab() const {
  return markov_ ? markov_->vocab() : model::TextCorpus::kVocab;
}

std::optional<double> DataSet::floor_nats() const {
  if (markov_) return markov_->entropy_rate_nats();
  return std::nullopt;
}

model::SampledBatch DataSet::train(int64_t step, int batch, int seq) const {
  if (markov_) return markov_->sample(batch, seq, static_cast<uint64_t>(step));
  return text_->sample(model::TextCorpus::Split::train, batch, seq, static_cast<uint64_t>(step),
                       seed_);
}

model::SampledBatch DataSet::heldout(int64_t index, int batch, int seq) const {
  if (markov_) return markov_->sample(batch, seq, kHeldoutStream + static_cast<uint64_t>(index));
  return text_->sample(model::TextCorpus::Split::heldout, batch, seq, static_cast<uint64_t>(index),
                       seed_);
}

size_t DataSet::train_bytes() const {
  return text_ ? text_->size(model::TextCorpus::Split::train) : 0;
}

size_t DataSet::heldout_bytes() const {
  return text_ ? text_->size(model::TextCorpus::Split::heldout) : 0;
}

}  // namespace paralab::bf16_train
