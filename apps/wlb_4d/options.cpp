// wlb_4d's command line and its cross-option checks.
#include "core/options.hpp"
#include "core/errors.hpp"
#include "harness/training.hpp"
#include "model/precision.hpp"
#include "wlb_4d.hpp"

namespace paralab::wlb_4d {

namespace {

void add_grid_options(CLI::App& cli, Options& o) {
  auto* grid = "Grid (measure: tp x cp x pp x dp = ranks)";
  cli.add_option("--tp", o.tp, "Tensor-parallel degree (divides --kv-heads)")
      ->check(positive_number())
      ->capture_default_str()
      ->group(grid);
  cli.add_option("--cp", o.cp, "Context-parallel degree")
      ->check(positive_number())
      ->capture_default_str()
      ->group(grid);
  cli.add_option("--pp", o.pp, "Pipeline stages (at most --layers)")
      ->check(positive_number())
      ->capture_default_str()
      ->group(grid);
  cli.add_option("--dp", o.dp, "Data-parallel replicas")
      ->check(positive_number())
      ->capture_default_str()
      ->group(grid);
}

void add_packing_options(CLI::App& cli, Options& o) {
  auto* pack = "Packing";
  cli.add_option("--packing", o.packings,
                 "Packings, a comma list of plain (arrival order), fixed (fixed-length, "
                 "balanced over --window global batches), wlb (variable-length with outlier "
                 "queues); each in turn on the same documents and initial weights")
      ->delimiter(',')
      ->capture_default_str()
      ->group(pack);
  cli.add_option("--cp-sharding", o.cp_sharding,
                 "Context-parallel sharding: per-sequence, per-document, adaptive, or auto "
                 "(plain and fixed per-sequence as the paper's baseline, wlb adaptive)")
      ->check(CLI::IsMember({"auto", "per-sequence", "per-document", "adaptive"}))
      ->capture_default_str()
      ->group(pack);
  cli.add_option("--lengths", o.lengths,
                 "Document lengths: lognormal:mu=..,sigma=.. | pareto:alpha=..,min=.. | "
                 "normal:mean=..,std=.. (fractions of the context) | mix:w*SPEC|w*SPEC | "
                 "file:PATH; default the paper-like long-tailed mixture")
      ->group(pack);
  add_size_option(cli, "--context", o.context,
                  "Context length: the fixed micro-batch length (sizes: 64k)")
      ->check(positive_number())
      ->group(pack);
  cli.add_option("--max-document", o.max_document,
                 "Longest document the lengths may produce (longer ones are clipped); default "
                 "--context. plain cuts documents at the context; fixed and wlb keep them whole, "
                 "so they need it at most --context (fixed) or the wlb micro-batch limit")
      ->check(non_negative_number())
      ->group(pack);
  cli.add_option("--max-length-factor", o.max_length_factor,
                 "wlb: longest micro-batch as a multiple of --context (>= 1)")
      ->capture_default_str()
      ->group(pack);
  cli.add_option("--micro-batches", o.micro_batches,
                 "Micro-batches per data-parallel replica and step; default 2 x --pp (simulate: "
                 "2 x each configuration's PP)")
      ->check(non_negative_number())
      ->group(pack);
  cli.add_option("--window", o.window, "fixed: global batches balanced together (1..64)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str()
      ->group(pack);
  cli.add_option("--queues", o.queues, "wlb: outlier-delay queues (0..8)")
      ->check(CLI::Range(0, 8))
      ->capture_default_str()
      ->group(pack);
  cli.add_option("--load", o.load,
                 "Tokens each global batch brings over the step's capacity (micro-batches x "
                 "context), in (0, 1]")
      ->capture_default_str()
      ->group(pack);
}

void add_model_options(CLI::App& cli, Options& o) {
  auto* model = "Model and data (measure)";
  cli.add_option("--layers", o.layers, "Transformer layers")->capture_default_str()->group(model);
  cli.add_option("--d-model", o.d_model, "Width of the residual stream")
      ->capture_default_str()
      ->group(model);
  cli.add_option("--heads", o.heads, "Query heads")->capture_default_str()->group(model);
  cli.add_option("--kv-heads", o.kv_heads, "Key/value heads")->capture_default_str()->group(model);
  cli.add_option("--ffn", o.ffn, "Hidden width of the SwiGLU MLP")
      ->capture_default_str()
      ->group(model);
  cli.add_option("--vocab", o.vocab, "Tokens of the synthetic Markov language")
      ->check(CLI::Range(2, 65536))
      ->capture_default_str()
      ->group(model);
  cli.add_option("--order", o.order, "Markov order of the language")
      ->check(positive_number())
      ->capture_default_str()
      ->group(model);
  cli.add_option("--concentration", o.concentration,
                 "Dirichlet concentration of the language's transition rows")
      ->capture_default_str()
      ->group(model);
  cli.add_option("--precision", o.precision, "fp32 or bf16-mixed")
      ->check(CLI::IsMember({"fp32", "bf16-mixed"}))
      ->capture_default_str()
      ->group(model);
}

void add_training_options(CLI::App& cli, Options& o) {
  auto* train = "Training";
  cli.add_option("--steps", o.steps,
                 "Steps per packing (measure: trained, default 8; simulate: packed and "
                 "simulated, default 64)")
      ->check(positive_number())
      ->group(train);
  cli.add_option("--lr", o.lr, "AdamW learning rate")->capture_default_str()->group(train);
  cli.add_option("--clip", o.clip, "Global gradient-norm clipping (0: none)")
      ->check(non_negative_number())
      ->capture_default_str()
      ->group(train);
  cli.add_option("--threads", o.threads, "Kernel threads per rank; default: cores / local ranks")
      ->check(CLI::Range(0, 4096))
      ->group(train);
  add_divergence_option(cli, o.allow_divergence);
}

void add_simulate_options(CLI::App& cli, Options& o) {
  auto* sim = "Simulate";
  cli.add_option("--profile", o.profile, "Hardware profile: h100-gtt, h100-gti or a JSON file")
      ->capture_default_str()
      ->group(sim);
  cli.add_option("--config", o.configs,
                 "The paper's configurations, a comma list (550M-64K ... 70B-128K); default all")
      ->delimiter(',')
      ->group(sim);
  cli.add_option("--sim-model", o.sim_model,
                 "Simulate one configuration of your own instead of the paper's: this model "
                 "(550M, 7B, 30B or 70B) on the grid --tp/--cp/--pp/--dp at --context, under each "
                 "--packing with --cp-sharding")
      ->group(sim);
  cli.add_flag("!--no-imbalance-table", o.imbalance_table,
               "Skip the 7B-128K imbalance table (plain, fixed 1/2/4/8, wlb 1/2/3 queues)")
      ->group(sim);
}

}  // namespace

void add_options(CLI::App& cli, Options& o) {
  add_grid_options(cli, o);
  add_packing_options(cli, o);
  add_model_options(cli, o);
  add_training_options(cli, o);
  add_simulate_options(cli, o);
}

void validate(const Options& o, Mode mode) {
  packings_of(o);
  if (o.load <= 0 || o.load > 1)
    throw UsageError("--load " + std::to_string(o.load) + " is outside (0, 1]");
  if (o.max_length_factor < 1)
    throw UsageError("--max-length-factor " + std::to_string(o.max_length_factor) +
                     " is below 1 (a micro-batch must hold a context-long document)");
  // Parses the length spec (the simulate contexts are the paper's: any positive one will do).
  packing::make_length_source(o.lengths.empty() ? packing::paper_like_spec(o.context) : o.lengths,
                              o.context, max_document_of(o), 1);
  if (mode == Mode::simulate) return;
  if (o.context < 32)
    throw UsageError("--context " + std::to_string(o.context) +
                     " is below 32: measure mode fits its workload model to attention timed at "
                     "32 tokens and longer");
  for (packing::PackingKind kind : packings_of(o)) {
    const auto limit =
        kind == packing::PackingKind::wlb
            ? static_cast<int64_t>(static_cast<double>(o.context) * o.max_length_factor)
            : o.context;
    if (kind != packing::PackingKind::plain && max_document_of(o) > limit)
      throw UsageError("--context " + std::to_string(o.context) +
                       " is too small for --max-document " + std::to_string(max_document_of(o)) +
                       ": " + packing::to_string(kind) +
                       " packing keeps documents whole, so its micro-batches (at most " +
                       std::to_string(limit) + " tokens) must hold the longest document");
  }
  model::validate(model_config_of(o));
  if (o.pp > o.layers)
    throw UsageError("--pp " + std::to_string(o.pp) + " is larger than --layers " +
                     std::to_string(o.layers) + " (every stage needs a layer)");
  if (o.kv_heads % o.tp != 0)
    throw UsageError("--tp " + std::to_string(o.tp) + " does not divide --kv-heads " +
                     std::to_string(o.kv_heads));
}

std::vector<packing::PackingKind> packings_of(const Options& o) {
  if (o.packings.empty()) throw UsageError("--packing: give at least one packing");
  std::vector<packing::PackingKind> kinds;
  for (const auto& name : o.packings) kinds.push_back(packing::parse_packing_kind(name));
  return kinds;
}

packing::CpSharding sharding_for(const Options& o, packing::PackingKind kind) {
  if (o.cp_sharding != "auto") return packing::parse_cp_sharding(o.cp_sharding);
  return kind == packing::PackingKind::wlb ? packing::CpSharding::adaptive
                                           : packing::CpSharding::per_sequence;
}

model::ModelConfig model_config_of(const Options& o) {
  model::ModelConfig c;
  c.vocab = o.vocab;
  c.layers = o.layers;
  c.d_model = o.d_model;
  c.heads = o.heads;
  c.kv_heads = o.kv_heads;
  c.ffn = o.ffn;
  // RoPE tables cover the longest micro-batch WLB may build.
  c.context = static_cast<int>(static_cast<double>(o.context) * o.max_length_factor);
  return c;
}

parallel::Grid4 grid_of(const Options& o) {
  return {o.tp, o.cp, o.pp, o.dp};
}

int64_t max_document_of(const Options& o) {
  return o.max_document > 0 ? o.max_document : o.context;
}

int steps_of(const Options& o, Mode mode) {
  if (o.steps > 0) return o.steps;
  return mode == Mode::simulate ? 64 : 8;
}

int micro_batches_per_replica(const Options& o) {
  return o.micro_batches > 0 ? o.micro_batches : 2 * o.pp;
}

}  // namespace paralab::wlb_4d
