// Options of pvf and their validation.
#include "options.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/errors.hpp"
#include "core/options.hpp"

namespace paralab::pvf_app {

namespace {

void add_model_options(CLI::App& cli, Options& o) {
  auto* g = "Model";
  cli.add_option("--model", o.model,
                 "dlrm (lib/dlrm's single-rank DLRM) or transformer (lib/model's decoder-only "
                 "transformer on a synthetic Markov language)")
      ->check(CLI::IsMember({"dlrm", "transformer"}))
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
                 "Training steps before the campaign (one thread; transformer default: 300)")
      ->check(non_negative_number())
      ->capture_default_str()
      ->group(g);
  cli.add_option("--batch", o.batch, "Training batch (samples; transformer: sequences, default 16)")
      ->check(positive_number())
      ->capture_default_str()
      ->group(g);
  cli.add_option("--lr", o.lr,
                 "Learning rate: DLRM SGD of MLPs and embeddings; transformer AdamW peak (default "
                 "3e-3, warmup 10%, cosine to lr/10)")
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

void add_transformer_options(CLI::App& cli, Options& o) {
  auto* g = "Transformer (--model transformer)";
  const std::pair<const char*, int*> sizes[] = {{"--layers", &o.layers},
                                                {"--d-model", &o.d_model},
                                                {"--heads", &o.heads},
                                                {"--kv-heads", &o.kv_heads},
                                                {"--ffn", &o.ffn}};
  const char* help[] = {"Transformer layers", "Width of the residual stream",
                        "Query heads (divide --d-model)",
                        "Key/value heads (grouped-query attention; divide --heads)",
                        "Hidden width of the SwiGLU MLP"};
  for (size_t i = 0; i < 5; ++i)
    cli.add_option(sizes[i].first, *sizes[i].second, help[i])
        ->check(positive_number())
        ->capture_default_str()
        ->group(g);
  cli.add_option("--vocab", o.vocab, "Tokens of the synthetic Markov language")
      ->check(CLI::Range(2, 1 << 20))
      ->capture_default_str()
      ->group(g);
  cli.add_option("--order", o.order, "Tokens of context the next token depends on")
      ->check(positive_number())
      ->capture_default_str()
      ->group(g);
  cli.add_option("--concentration", o.concentration,
                 "Dirichlet concentration of the transition rows (smaller: more predictable)")
      ->check(positive_number())
      ->capture_default_str()
      ->group(g);
  cli.add_option("--seq", o.seq, "Tokens per sequence (training and evaluation)")
      ->check(positive_number())
      ->capture_default_str()
      ->group(g);
  cli.add_option("--eval-sequences", o.eval_sequences,
                 "Held-out sequences every injection evaluates (all their positions)")
      ->check(positive_number())
      ->capture_default_str()
      ->group(g);
  cli.add_option("--loss-threshold", o.loss_threshold,
                 "An output is incorrect when the mean cross-entropy rises by more than this "
                 "(nats), or the top-1 prediction changes at any position")
      ->check(non_negative_number())
      ->capture_default_str()
      ->group(g);
}

void add_campaign_options(CLI::App& cli, Options& o) {
  auto* g = "Campaign";
  cli.add_option(
         "--components", o.components,
         "Comma list. DLRM (default the first five): embedding, bottom.weight, bottom.bias, "
         "top.weight, top.bias, bottom, top, embedding.T for table T, and bottom.L, "
         "bottom.L.weight, bottom.L.bias, top.L, top.L.weight, top.L.bias for MLP layer "
         "L (from 0). "
         "Transformer (default embedding, attn.q, attn.k, attn.v, attn.o, mlp, norm, "
         "lm_head): also attn, mlp.gate, mlp.up, mlp.down, attn_norm, mlp_norm, "
         "final_norm, and layerN or layerN.<name> for one layer")
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
                 "share of the host's cores (DLRM), 1 (transformer: its counts can change with "
                 "the thread count)")
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

model::ModelConfig transformer_of(const Options& o) {
  model::ModelConfig c;
  c.vocab = o.vocab;
  c.layers = o.layers;
  c.d_model = o.d_model;
  c.heads = o.heads;
  c.kv_heads = o.kv_heads;
  c.ffn = o.ffn;
  c.context = o.seq;
  model::validate(c);
  return c;
}

uint64_t component_elements(const Setup& s, int component) {
  if (s.transformer)
    return pvf::transformer_component_elements(
        s.transformer_model, s.transformer_components[static_cast<size_t>(component)]);
  return pvf::dlrm_component_elements(s.model, s.dlrm_components[static_cast<size_t>(component)]);
}

std::string component_name(const Setup& s, int component) {
  if (s.transformer) return s.transformer_components[static_cast<size_t>(component)].name;
  return s.dlrm_components[static_cast<size_t>(component)].name;
}

// ber:P on the largest component must stay within the binomial sampler's range.
void check_ber(const Setup& s) {
  for (const pvf::Cell& cell : s.cells) {
    if (cell.fault.kind != pvf::FaultKind::ber) continue;
    const double expected = cell.fault.ber * pvf::class_bits(cell.dtype, cell.bits).count() *
                            static_cast<double>(component_elements(s, cell.component));
    if (expected > pvf::kMaxExpectedFlips)
      throw UsageError("--faults " + cell.fault.name() + " expects " + std::to_string(expected) +
                       " flips per trial in " + component_name(s, cell.component) +
                       "; at most 64: lower P");
  }
}

// Everything the counts depend on (not the rank count, not where files go).
std::string fingerprint_text(const Options& o, const Setup& s) {
  std::ostringstream t;
  if (s.transformer)
    t << "transformer " << pvf::describe(s.transformer_model) << " markov " << o.order << ' '
      << o.concentration << " seq " << o.seq << " eval " << o.eval_sequences << " loss "
      << o.loss_threshold << " components";
  for (const auto& c : s.transformer_components) t << ' ' << c.name << ' ';
  // The DLRM's text as before the transformer target (its checkpoints stay valid).
  t << s.model.describe() << " seed " << s.campaign.seed << " steps " << o.train_steps << " batch "
    << o.batch << " lr " << o.lr << " eval " << o.eval_samples << " ctr " << o.ctr_threshold
    << " trials " << o.trials << " round " << o.round << " ci " << o.ci_width;
  // Components beyond the five (none: the text as before them).
  for (size_t i = pvf::kDlrmComponents; i < s.dlrm_components.size(); ++i)
    t << " component " << i << ' ' << s.dlrm_components[i].name;
  for (const auto& c : s.cells)
    t << " | " << c.component << ' ' << c.fault.name() << ' ' << pvf::name(c.dtype) << ' '
      << pvf::name(c.bits);
  return t.str();
}

}  // namespace

void add_options(CLI::App& cli, Options& o) {
  add_model_options(cli, o);
  add_transformer_options(cli, o);
  add_campaign_options(cli, o);
}

Setup parse_and_validate(App& app, Options& o) {
  add_options(app.cli(), o);
  app.parse();
  Setup s;
  s.transformer = o.model == "transformer";
  std::vector<int> components;
  if (s.transformer) {
    const CLI::App& cli = app.cli();
    if (cli.count("--train-steps") == 0) o.train_steps = kTransformerTrainSteps;
    if (cli.count("--batch") == 0) o.batch = kTransformerBatch;
    if (cli.count("--lr") == 0) o.lr = kTransformerLr;
    if (cli.count("--components") == 0) o.components = pvf::default_transformer_components();
    s.transformer_model = transformer_of(o);
    if (std::pow(static_cast<double>(o.vocab), o.order) > double{1 << 20})
      throw UsageError("--vocab " + std::to_string(o.vocab) + " --order " +
                       std::to_string(o.order) +
                       ": the Markov language would have more than 2^20 contexts (vocab^order)");
    pvf::TransformerTraining& t = s.transformer_training;
    t.steps = o.train_steps;
    t.batch = o.batch;
    t.seq = o.seq;
    t.lr = o.lr;
    t.vocab = o.vocab;
    t.order = o.order;
    t.concentration = o.concentration;
    t.seed = app.common().seed;
    for (const std::string& name : o.components) {
      components.push_back(static_cast<int>(s.transformer_components.size()));
      s.transformer_components.push_back(
          pvf::parse_transformer_component(name, s.transformer_model.layers));
    }
  } else {
    s.model = model_of(o);
    s.dlrm_components = pvf::default_dlrm_components();
    for (const std::string& name : o.components) {
      const pvf::DlrmComponent c = pvf::parse_dlrm_component(name, s.model);
      size_t i = 0;
      while (i < s.dlrm_components.size() && s.dlrm_components[i].name != c.name) ++i;
      if (i == s.dlrm_components.size()) s.dlrm_components.push_back(c);
      components.push_back(static_cast<int>(i));
    }
  }
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
  s.cells = pvf::make_cells(
      components, parse_all<pvf::FaultModel>(o.faults, pvf::parse_fault_model), dtypes, classes);
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
