// Options, the results table and the HDF5 record of a sweep point.
#include "options.hpp"

#include "core/options.hpp"

namespace paralab::ring_attention {

void add_options(CLI::App& cli, Options& o) {
  cli.add_option("--algo", o.algos,
                 "Algorithms, a comma list: pass-kv, pass-q, all-gather, auto (the paper's rule "
                 "per request); or all")
      ->delimiter(',')
      ->check(CLI::IsMember({"pass-kv", "pass-q", "all-gather", "auto", "all"}))
      ->capture_default_str();
  add_size_option(cli, "-T,--tokens", o.tokens, "New (query) tokens per request, a sweep (4k,8k)");
  add_size_option(cli, "-P,--cached", o.cached,
                  "Tokens already in the KV cache before them (persistent-KV prefill; decode: "
                  "each request's context)");
  cli.add_option("--heads", o.heads, "Query heads")
      ->check(positive_number())
      ->capture_default_str();
  cli.add_option("--kv-heads", o.kv_heads, "Key/value heads (grouped-query attention)")
      ->check(positive_number())
      ->capture_default_str();
  cli.add_option("--head-dim", o.head_dim, "Head dimension")
      ->check(positive_number())
      ->capture_default_str();
  cli.add_option("--documents", o.documents,
                 "Equal documents fused into the sequence (document mask with causal); 1 = one")
      ->check(positive_number())
      ->capture_default_str();
  cli.add_option("--sharding", o.sharding,
                 "load-balanced (2N chunks, rank i holds i and 2N-1-i) or contiguous")
      ->check(CLI::IsMember({"load-balanced", "contiguous"}))
      ->capture_default_str();
  cli.add_option("-d,--dtype", o.dtype, "Input type of Q, K, V: f32 or bf16 (FP32 accumulation)")
      ->check(CLI::IsMember({"f32", "bf16"}))
      ->capture_default_str();
  cli.add_option("--threads", o.threads,
                 "Kernel threads per rank; default: this host's cores / its ranks")
      ->check(CLI::Range(0, 4096));
  cli.add_option("--decode-steps", o.decode_steps,
                 "Decode instead of prefill: this many steps, each one new token per request "
                 "(batched pass-Q; -T is ignored)")
      ->check(non_negative_number())
      ->capture_default_str();
  cli.add_option("--batch", o.batch, "Decode: requests in the batch, each with -P context")
      ->check(positive_number())
      ->capture_default_str();
  cli.add_option("--profile", o.profile,
                 "Simulate: hardware profile, a built-in name (h100-gtt, h100-gti) or a JSON file")
      ->capture_default_str();
  cli.add_option("--sim-ranks", o.sim_ranks,
                 "Simulate: context-parallel ranks to predict, a comma list; default: the run's")
      ->delimiter(',')
      ->check(positive_number());
  cli.add_option("--model", o.model,
                 "Simulate: none (the attention of one layer) or llama3-405b (whole prefill: "
                 "attention and linear layers of every layer, TP inside a node, CP across nodes)")
      ->check(CLI::IsMember({"none", "llama3-405b"}))
      ->capture_default_str();
  cli.add_option("--partial-dtype", o.partial_dtype,
                 "Simulate: type of pass-Q's partial outputs in its all-to-all, f32 (what measure "
                 "mode sends) or bf16 (the paper's); the LSE stays FP32")
      ->check(CLI::IsMember({"f32", "bf16"}))
      ->capture_default_str();
  cli.add_option("--tp", o.tp,
                 "Simulate: tensor-parallel GPUs per CP rank (heads split over them; CP rank r "
                 "on GPU r*tp); default 8 with --model, else 1")
      ->check(positive_number());
}

std::vector<AlgoRequest> algo_requests(const Options& o) {
  std::vector<AlgoRequest> out;
  for (const auto& name : o.algos) {
    if (name == "pass-kv" || name == "all") out.push_back(AlgoRequest::pass_kv);
    if (name == "pass-q" || name == "all") out.push_back(AlgoRequest::pass_q);
    if (name == "all-gather" || name == "all") out.push_back(AlgoRequest::all_gather);
    if (name == "auto") out.push_back(AlgoRequest::automatic);
  }
  return out;
}

ring::Algorithm algorithm_of(AlgoRequest request) {
  switch (request) {
    case AlgoRequest::pass_q:
      return ring::Algorithm::pass_q;
    case AlgoRequest::all_gather:
      return ring::Algorithm::all_gather;
    default:
      return ring::Algorithm::pass_kv;
  }
}

bool decoding(const Options& o) {
  return o.decode_steps > 0;
}

ring::RingProblem problem_for(const Options& o, int64_t T) {
  ring::RingProblem p;
  p.T = decoding(o) ? o.batch : T;
  p.P = static_cast<int64_t>(o.cached);
  p.H = o.heads;
  p.H_kv = o.kv_heads;
  p.D = o.head_dim;
  p.causal = true;
  p.sharding =
      o.sharding == "contiguous" ? ring::Sharding::contiguous : ring::Sharding::load_balanced;
  // Documents split the whole sequence (cache and new tokens) evenly.
  const int64_t total = p.P + p.T;
  if (!decoding(o))
    for (int d = 1; d < o.documents; ++d) p.doc_starts.push_back(total * d / o.documents);
  return p;
}

Table make_table(const World& world, bool simulate, bool decode) {
  std::vector<Column> columns = {
      {"algo", "", 10},     {"T", "", 8},        {"P", "", 8},         {"ranks", "", 5},
      {"time", "(ms)", 10}, {"min", "(ms)", 10}, {"attn", "(ms)", 9},  {"merge", "(ms)", 8},
      {"wait", "(ms)", 8},  {"a2a", "(ms)", 8},  {"setup", "(ms)", 8}, {"TFLOP/s", "/rank", 8}};
  if (simulate && decode) {
    columns.push_back({"TTIT", "(ms)", 8});
  } else if (simulate) {
    columns.push_back({"TTFT", "(s)", 8});
    columns.push_back({"eff", "(%)", 6});
  } else {
    columns.push_back({"error", "", 9});
  }
  return Table(world, columns);
}

void print_row(const Table& table, const PointResult& pt, bool simulate) {
  std::vector<std::string> cells = {
      std::string(ring::algorithm_name(pt.algo)) + (pt.chosen ? "*" : ""),
      cell("%lld", (long long)pt.problem.T),
      cell("%lld", (long long)pt.problem.P),
      cell("%d", pt.ranks),
      cell("%.2f", pt.latency_s.median * 1e3),
      cell("%.2f", pt.latency_s.min * 1e3),
      cell("%.2f", pt.attention_s * 1e3),
      cell("%.2f", pt.merge_s * 1e3),
      cell("%.2f", pt.comm_wait_s * 1e3),
      cell("%.2f", pt.all2all_s * 1e3),
      cell("%.2f", pt.setup_s * 1e3),
      cell("%.3f", pt.tflops_per_rank)};
  if (simulate && pt.decode) {
    cells.push_back(pt.whole_model ? cell("%.2f", pt.model_s * 1e3) : "N/A");
  } else if (simulate) {
    cells.push_back(pt.whole_model ? cell("%.2f", pt.model_s) : "N/A");
    cells.push_back(pt.whole_model ? cell("%.1f", pt.parallel_efficiency * 100) : "N/A");
  } else {
    cells.push_back(pt.error < 0 ? "N/A" : cell("%.1e", pt.error));
  }
  table.print_row(cells);
}

void record(App& app, const Options& o, const PointResult& pt) {
  results::Group g = app.add_point();
  const auto& p = pt.problem;
  std::vector<std::string> metrics = {"time_ms_median", "time_ms_min", "time_ms_max",
                                      "attention_ms",   "merge_ms",    "comm_wait_ms",
                                      "all2all_ms",     "setup_ms",    "tflops_per_rank"};
  g.attr("algo", std::string(ring::algorithm_name(pt.algo)));
  g.attr("algo_requested", std::string(pt.chosen ? "auto" : ring::algorithm_name(pt.algo)));
  g.attr("T", p.T);
  g.attr("P", p.P);
  g.attr("ranks", pt.ranks);
  g.attr("dtype", o.dtype);
  g.attr("sharding", std::string(ring::sharding_name(p.sharding)));
  g.attr("phase", std::string(decoding(o) ? "decode" : "prefill"));
  g.attr("heads", p.H);
  g.attr("kv_heads", p.H_kv);
  g.attr("head_dim", p.D);
  g.attr("documents", o.documents);
  g.attr("kv_cache_miss_ratio", double(p.T) / double(p.T + p.P));
  if (decoding(o)) {
    g.attr("batch", o.batch);
    g.attr("decode_steps", o.decode_steps);
  }
  if (pt.chosen) {
    g.attr("auto_reason", pt.choice.reason);
    g.attr("auto_t_threshold", pt.choice.t_threshold);
    g.attr("auto_miss_threshold", pt.choice.miss_threshold);
    g.attr("auto_exposed_pass_kv_s", pt.choice.exposed_pass_kv_s);
    g.attr("auto_exposed_pass_q_s", pt.choice.exposed_pass_q_s);
  }
  g.attr("time_ms_median", pt.latency_s.median * 1e3);
  g.attr("time_ms_min", pt.latency_s.min * 1e3);
  g.attr("time_ms_max", pt.latency_s.max * 1e3);
  g.attr("attention_ms", pt.attention_s * 1e3);
  g.attr("merge_ms", pt.merge_s * 1e3);
  g.attr("comm_wait_ms", pt.comm_wait_s * 1e3);
  g.attr("all2all_ms", pt.all2all_s * 1e3);
  g.attr("setup_ms", pt.setup_s * 1e3);
  g.attr("tflops_per_rank", pt.tflops_per_rank);
  if (pt.error >= 0) {
    g.attr("error", pt.error);
    metrics.push_back("error");
  }
  if (pt.whole_model) {
    // A prefill's whole-model time is its time to first token; a decode
    // step's is the time per output token (TTIT), where parallel efficiency
    // and FLOPS utilisation say nothing useful and are left out.
    const char* time_name = pt.decode ? "ttit_s" : "ttft_s";
    g.attr("model", o.model);
    g.attr(time_name, pt.model_s);
    g.attr("model_attention_s", pt.model_attention_s);
    g.attr("model_linear_s", pt.model_linear_s);
    g.attr("model_tp_comm_s", pt.model_tp_comm_s);
    g.attr("model_other_s", pt.model_other_s);
    for (const char* m :
         {time_name, "model_attention_s", "model_linear_s", "model_tp_comm_s", "model_other_s"})
      metrics.push_back(m);
    if (!pt.decode) {
      g.attr("flops_utilization", pt.flops_utilization);
      g.attr("parallel_efficiency", pt.parallel_efficiency);
      metrics.push_back("flops_utilization");
      metrics.push_back("parallel_efficiency");
    }
  }
  if (o.partial_dtype != "f32") g.attr("partial_dtype", o.partial_dtype);
  g.attr("parameters", std::vector<std::string>{"algo", "T", "P", "ranks", "dtype", "sharding"});
  g.attr("metrics", metrics);
  if (!pt.times.values.empty()) {
    const TimeMatrix& t = pt.times;
    g.dataset("time_s", t.values, {t.iterations, t.ranks}, "s", "iteration,rank");
  }
  if (pt.ring_steps > 0) {
    const std::vector<size_t> dims = {size_t(pt.ranks), pt.ring_steps};
    g.dataset("step_attention_s", pt.step_attention_s, dims, "s", "rank,ring_step");
    g.dataset("step_merge_s", pt.step_merge_s, dims, "s", "rank,ring_step");
    g.dataset("step_comm_wait_s", pt.step_comm_wait_s, dims, "s", "rank,ring_step");
    if (!pt.step_transfer_s.empty())
      g.dataset("step_transfer_s", pt.step_transfer_s, dims, "s", "rank,ring_step");
  }
}

}  // namespace paralab::ring_attention
