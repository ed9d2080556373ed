// Options of pvf and their validation.
#include "options.hpp"

#include <algorithm>
#include <sstream>

#include "core/errors.hpp"
#include "core/options.hpp"

namespace paralab::pvf_app {

namespace {

void add_model_options(CLI::App& cli, Options& o) {
  auto* g = "Model";
  cli.add_option("--model", o.model,
                 "dlrm (lib/dlrm's single-rank DLRM); transformer is not implemented yet")
      ->capture_default_str()
      ->group(g);
  cli.add_option("--tables", o.tables, "Embedding tables")
      ->check(positive_number())
      ->capture_default_str()
      ->group(g);
  cli.add_option("--rows", o.rows, "Rows per table")
      ->check(positive_number())
      ->capture_default_str()
      ->group(g);
  cli.add_option("--pooling", o.pooling, "Indices per lookup (bag size)")
      ->check(positive_number())
      ->capture_default_str()
      ->group(g);
  cli.add_option("--embedding-dim", o.embedding_dim, "Embedding dimension d")
      ->check(positive_number())
      ->capture_default_str()
      ->group(g);
  cli.add_option("--bottom", o.bottom,
                 "Bottom MLP widths after the 13 dense features, comma list; the last must be "
                 "--embedding-dim")
      ->delimiter(',')
      ->capture_default_str()
      ->group(g);
  cli.add_option("--top", o.top,
                 "Top MLP widths after the interaction, comma list; the last must be 1")
      ->delimiter(',')
      ->capture_default_str()
      ->group(g);
  cli.add_option("--train-steps", o.train_steps,
                 "Training steps before the campaign (synthetic Zipf clicks, one thread)")
      ->check(non_negative_number())
      ->capture_default_str()
      ->group(g);
  cli.add_option("--batch", o.batch, "Training batch (samples)")
      ->check(positive_number())
      ->capture_default_str()
      ->group(g);
  cli.add_option("--lr", o.lr, "SGD learning rate of MLPs and embeddings")
      ->check(positive_number())
      ->capture_default_str()
      ->group(g);
  cli.add_option("--eval-samples", o.eval_samples,
                 "Evaluation samples every injection runs (a fixed held-out batch)")
      ->check(positive_number())
      ->capture_default_str()
      ->group(g);
  cli.add_option("--ctr-threshold", o.ctr_threshold,
                 "An output is incorrect when a sample's CTR moves by more than this (or its label "
                 "p>0.5 flips)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str()
      ->group(g);
}

void add_campaign_options(CLI::App& cli, Options& o) {
  auto* g = "Campaign";
  cli.add_option("--components", o.components,
                 "Comma list of embedding, bottom.weight, bottom.bias, top.weight, top.bias")
      ->delimiter(',')
      ->capture_default_str()
      ->group(g);
  cli.add_option("--faults", o.faults, "Comma list of flip, ber:P, burst:L, stuck0, stuck1")
      ->delimiter(',')
      ->capture_default_str()
      ->group(g);
  cli.add_option("--dtypes", o.dtypes, "Storage types, comma list of fp32, bf16, fp16, int8")
      ->delimiter(',')
      ->capture_default_str()
      ->group(g);
  cli.add_option(
         "--bit-classes", o.bit_classes,
         "Comma list of sign, exponent, mantissa (float types), high, low (int8), any; each "
         "type gets the classes it has")
      ->delimiter(',')
      ->capture_default_str()
      ->group(g);
  cli.add_option("--trials", o.trials, "Most injections per cell")
      ->check(positive_number())
      ->capture_default_str()
      ->group(g);
  cli.add_option("--round", o.round,
                 "Injections per round: the stopping rule looks after whole rounds")
      ->check(positive_number())
      ->capture_default_str()
      ->group(g);
  cli.add_option("--ci-width", o.ci_width,
                 "Stop a cell once its 95% Wilson interval is narrower; 0: run --trials")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str()
      ->group(g);
  cli.add_option("--checkpoint", o.checkpoint,
                 "Checkpoint file, rewritten after every round (default: <out>.ckpt)")
      ->group(g);
  cli.add_flag("--resume", o.resume,
               "Continue from --checkpoint when it exists (same options required)")
      ->group(g);
  cli.add_option("--stop-after-rounds", o.stop_after_rounds,
                 "Stop after this many rounds, checkpointed, without a result file (to test "
                 "--resume); 0: never")
      ->check(non_negative_number())
      ->capture_default_str()
      ->group(g);
  cli.add_option("--threads", o.threads,
                 "Threads per rank for the evaluation forward (training uses one); 0: the rank's "
                 "share of the host's cores")
      ->check(non_negative_number())
      ->capture_default_str()
      ->group(g);
  cli.add_option("--bench-trials", o.bench_trials,
                 "Injections per component timed by partial and by full recomputation (FP32 flips)")
      ->check(non_negative_number())
      ->capture_default_str()
      ->group(g);
}

template <typename T, typename F>
std::vector<T> parse_all(const std::vector<std::string>& names, F parse) {
  std::vector<T> out;
  for (const auto& n : names) out.push_back(parse(n));
  return out;
}

dlrm::DlrmConfig model_of(const Options& o) {
  dlrm::DlrmConfig c;
  c.embedding_dim = o.embedding_dim;
  c.bottom_layers = o.bottom;
  c.top_layers = o.top;
  c.table_rows.assign(static_cast<size_t>(o.tables), o.rows);
  c.pooling.assign(static_cast<size_t>(o.tables), o.pooling);
  c.validate();
  return c;
}

// ber:P on the largest component must stay within the binomial sampler's range.
void check_ber(const Setup& s) {
  for (const pvf::Cell& cell : s.cells) {
    if (cell.fault.kind != pvf::FaultKind::ber) continue;
    const double expected =
        cell.fault.ber * pvf::class_bits(cell.dtype, cell.bits).count() *
        static_cast<double>(pvf::dlrm_component_elements(s.model, cell.component));
    if (expected > pvf::kMaxExpectedFlips)
      throw UsageError("--faults " + cell.fault.name() + " expects " + std::to_string(expected) +
                       " flips per trial in " + pvf::dlrm_component_name(cell.component) +
                       "; at most 64: lower P");
  }
}

// Everything the counts depend on (not the rank count, not where files go).
std::string fingerprint_text(const Options& o, const Setup& s) {
  std::ostringstream t;
  t << s.model.describe() << " seed " << s.campaign.seed << " steps " << o.train_steps << " batch "
    << o.batch << " lr " << o.lr << " eval " << o.eval_samples << " ctr " << o.ctr_threshold
    << " trials " << o.trials << " round " << o.round << " ci " << o.ci_width;
  for (const auto& c : s.cells)
    t << " | " << c.component << ' ' << c.fault.name() << ' ' << pvf::name(c.dtype) << ' '
      << pvf::name(c.bits);
  return t.str();
}

}  // namespace

void add_options(CLI::App& cli, Options& o) {
  add_model_options(cli, o);
  add_campaign_options(cli, o);
}

Setup parse_and_validate(App& app, Options& o) {
  add_options(app.cli(), o);
  app.parse();
  if (o.model == "transformer")
    throw UsageError(
        "--model transformer is not implemented yet: pvf injects into lib/dlrm's DLRM only; the "
        "lib/model transformer target (embedding, attention Q/K/V/O, MLP, norms, LM head) is "
        "still to be written");
  if (o.model != "dlrm") throw UsageError("--model " + o.model + ": unknown model; known: dlrm");
  Setup s;
  s.model = model_of(o);
  s.data.seed = app.common().seed;
  s.training.steps = o.train_steps;
  s.training.batch = o.batch;
  s.training.optimizer.mlp_lr = s.training.optimizer.embedding_lr = o.lr;
  const auto dtypes = parse_all<pvf::DType>(o.dtypes, pvf::parse_dtype);
  auto classes = parse_all<pvf::BitClass>(o.bit_classes, pvf::parse_bit_class);
  // The default classes cover every type; keep those the requested types have
  // (a class given by hand that no type has stays an error).
  if (app.cli().count("--bit-classes") == 0)
    std::erase_if(classes, [&](pvf::BitClass b) {
      return std::none_of(dtypes.begin(), dtypes.end(),
                          [&](pvf::DType d) { return pvf::class_valid(d, b); });
    });
  s.cells = pvf::make_cells(parse_all<int>(o.components, pvf::parse_dlrm_component),
                            parse_all<pvf::FaultModel>(o.faults, pvf::parse_fault_model), dtypes,
                            classes);
  check_ber(s);
  pvf::CampaignConfig& c = s.campaign;
  c.seed = app.common().seed;
  c.max_trials = o.trials;
  c.round = o.round;
  c.ci_width = o.ci_width;
  c.rank = app.world().rank();
  c.ranks = app.world().size();
  c.checkpoint = o.checkpoint.empty() ? app.common().out + ".ckpt" : o.checkpoint;
  c.fingerprint = pvf::fingerprint(fingerprint_text(o, s));
  c.stop_after_rounds = o.stop_after_rounds;
  return s;
}

}  // namespace paralab::pvf_app
