// The tables pvf prints and the HDF5 groups it writes.
#include "report.hpp"

namespace paralab::pvf_app {

Table make_table(const World& world) {
  return Table(world, {{"component", "", 14},
                       {"fault", "", 10},
                       {"dtype", "", 6},
                       {"bits", "", 9},
                       {"trials", "", 7},
                       {"incorrect", "", 9},
                       {"nan/inf", "", 8},
                       {"PVF", "", 8},
                       {"95% CI", "low", 8},
                       {"95% CI", "high", 8}});
}

void print_cell(const Table& table, const pvf::Target& target, const pvf::Cell& c,
                const pvf::CellCounts& counts) {
  const pvf::Interval ci = pvf::wilson(counts.failures(), counts.trials);
  table.print_row({target.component_name(c.component), c.fault.name(), pvf::name(c.dtype),
                   pvf::name(c.bits), cell("%lld", static_cast<long long>(counts.trials)),
                   cell("%lld", static_cast<long long>(counts.incorrect)),
                   cell("%lld", static_cast<long long>(counts.nan_inf)), cell("%.4f", counts.pvf()),
                   cell("%.4f", ci.low), cell("%.4f", ci.high)});
}

void print_speeds(const World& world, const std::vector<Speed>& speeds) {
  if (speeds.empty()) return;  // --bench-trials 0
  world.printf(
      "\n# recomputation (rank 0, FP32 single flips): partial from the corrupted layer vs a full "
      "forward\n");
  const Table table(world, {{"component", "", 14},
                            {"injections", "", 10},
                            {"partial", "(inj/s)", 10},
                            {"full", "(inj/s)", 10},
                            {"speedup", "", 8},
                            {"identical", "", 9}});
  table.print_header();
  for (const Speed& s : speeds)
    table.print_row({s.component, cell("%d", s.injections),
                     cell("%.0f", s.injections / s.partial_s),
                     cell("%.0f", s.injections / s.full_s), cell("%.1f", s.full_s / s.partial_s),
                     s.mismatches == 0 ? "yes" : cell("NO (%d)", s.mismatches)});
}

namespace {

void record_cell(App& app, const Options& o, const pvf::Target& target, const pvf::Cell& c,
                 const pvf::CellCounts& k) {
  const pvf::Interval ci = pvf::wilson(k.failures(), k.trials);
  results::Group g = app.add_point();
  g.attr("component", target.component_name(c.component));
  g.attr("fault", c.fault.name());
  g.attr("dtype", pvf::name(c.dtype));
  g.attr("bits", pvf::name(c.bits));
  g.attr("trials", k.trials);
  g.attr("incorrect", k.incorrect);
  g.attr("nan_inf", k.nan_inf);
  // PVF counts NaN/Inf outputs as incorrect; nan_inf says how many of them.
  g.attr("pvf", k.pvf());
  g.attr("ci_low", ci.low);
  g.attr("ci_high", ci.high);
  g.attr("stopped_early", static_cast<int64_t>(k.trials < o.trials));
  g.attr("parameters", std::vector<std::string>{"component", "fault", "dtype", "bits"});
  g.attr("metrics",
         std::vector<std::string>{"pvf", "ci_low", "ci_high", "trials", "incorrect", "nan_inf"});
}

}  // namespace

void record(App& app, const Options& o, const Setup& s, const pvf::Target& target,
            const std::vector<pvf::CellCounts>& counts, const RunSummary& summary) {
  for (size_t i = 0; i < s.cells.size(); ++i) record_cell(app, o, target, s.cells[i], counts[i]);
  results::Group m = app.add_group("model");
  m.attr("train_steps", o.train_steps);
  if (s.transformer) {
    const pvf::TransformerTrainingSummary& t = summary.transformer;
    m.attr("model", "transformer");
    m.attr("model_config", pvf::describe(s.transformer_model));
    m.attr("markov_vocab", o.vocab);
    m.attr("markov_order", o.order);
    m.attr("markov_concentration", o.concentration);
    m.attr("seq", o.seq);
    m.attr("train_first_loss", t.first_loss);
    m.attr("train_last_loss", t.last_loss);
    m.attr("eval_loss", t.eval_loss);
    m.attr("eval_top1", t.eval_top1);
    m.attr("entropy_floor", t.entropy_floor);
    m.attr("eval_sequences", o.eval_sequences);
    m.attr("loss_threshold", o.loss_threshold);
  } else {
    m.attr("model", "dlrm");
    m.attr("model_config", s.model.describe());
    m.attr("train_first_loss", summary.training.first_loss);
    m.attr("train_last_loss", summary.training.last_loss);
    m.attr("eval_auc", summary.training.eval_auc);
    m.attr("eval_samples", o.eval_samples);
    m.attr("ctr_threshold", o.ctr_threshold);
  }
  results::Group c = app.add_group("campaign");
  c.attr("seed", s.campaign.seed);
  c.attr("max_trials", o.trials);
  c.attr("round", o.round);
  c.attr("ci_width", o.ci_width);
  c.attr("ranks", app.world().size());
  c.attr("seconds", summary.campaign_s);
  c.attr("injections", summary.injections);
  c.attr("injections_per_s",
         summary.campaign_s > 0 ? summary.injections / summary.campaign_s : 0.0);
  results::Group sp = app.add_group("speed");
  for (const Speed& x : summary.speeds) {
    results::Group g = sp.subgroup(x.component);
    g.attr("injections", x.injections);
    g.attr("partial_s", x.partial_s);
    g.attr("full_s", x.full_s);
    g.attr("speedup", x.full_s / x.partial_s);
    g.attr("mismatches", x.mismatches);
  }
}

}  // namespace paralab::pvf_app
