// packing.hpp: the contract of lib/packing (issue 7: wlb_4d), after WLB-LLM
// (Wang et al., OSDI'25). Documents of a long-tailed length distribution
// arrive one global batch per training iteration; a Packer turns them into
// the micro-batches each iteration trains on; a CP sharding splits one
// micro-batch's tokens over the context-parallel ranks.
//
// Used by the 4D engine (lib/parallel, measure mode), the step simulator
// (lib/wlb, simulate mode) and apps/wlb_4d. Implementations may live in
// several .cpp/.hpp files of this folder; this header stays the entry point.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace paralab::packing {

// One document, or one piece of a document: its id in arrival order (unique
// over a run), its length in tokens, the iteration whose global batch brought
// it, and where the piece starts in its document. A packer that splits
// documents (plain with split_documents) makes pieces covering tokens
// [offset, offset + length) of document `id`; attention does not cross
// pieces (each is masked as its own document). Whole documents have offset 0.
struct Document {
  int64_t id = 0;
  int64_t length = 0;
  int64_t arrival = 0;
  int64_t offset = 0;
};

// One packed sequence: documents (or pieces) in order, concatenated.
struct MicroBatch {
  std::vector<Document> docs;
  int64_t tokens() const;
  // First position of every document (or piece: each is masked as its own
  // document) in the packed sequence (0, l0, l0+l1, ...).
  std::vector<int64_t> doc_starts() const;
};

// What one training iteration trains on: pp_micro_batches x dp micro-batches,
// data-parallel replica r taking micro_batches[r * m, (r + 1) * m) with
// m = micro_batches.size() / dp. Every micro-batch may be empty of documents
// (a bubble of padding) only when the data ran out.
struct Step {
  int64_t iteration = 0;
  std::vector<MicroBatch> micro_batches;
  double pack_seconds = 0;  // wall time the packer spent producing this step
};

// W(d) = Wa(d) + Wl(d): the cost of one document of d tokens in one
// micro-batch, attention quadratic (causal: ~d^2/2 pairs) and the rest
// linear. Units are seconds when fitted from kernel times, arbitrary
// otherwise (only ratios matter for balancing).
struct WorkloadModel {
  double attention_coef = 1;  // Wa(d) = attention_coef * d * d
  double linear_coef = 0;     // Wl(d) = linear_coef * d
  double attention(int64_t d) const { return attention_coef * double(d) * double(d); }
  double linear(int64_t d) const { return linear_coef * double(d); }
  double operator()(int64_t d) const { return attention(d) + linear(d); }
  double of(const MicroBatch& mb) const;  // sum over its documents
};
// Least-squares fit of the two coefficients to measured (length, seconds)
// samples (attention kernel + the layer's GEMMs for one document of that
// length). Throws UsageError with fewer than two distinct lengths. The
// residuals are relative (error / measured time), so short documents' samples
// count as much as long ones'; times must be positive.
WorkloadModel fit_workload(std::span<const std::pair<int64_t, double>> samples);

// Document lengths -------------------------------------------------------------
// A text spec, e.g. "lognormal:mu=8,sigma=1.5", "pareto:alpha=1.2,min=256",
// "mix:0.9*lognormal:mu=7,sigma=1|0.1*pareto:alpha=1,min=8192",
// "normal:mean=0.5,std=0.5" (a fraction of the context, clipped to [1, context]),
// "file:lengths.txt" (one length per line, cycled). Every generator clips to
// [1, max_length]. Throws UsageError naming what is wrong with the spec.
class LengthSource {
 public:
  virtual ~LengthSource() = default;
  virtual int64_t next() = 0;
  virtual std::string describe() const = 0;
};
std::unique_ptr<LengthSource> make_length_source(std::string_view spec, int64_t context,
                                                 int64_t max_length, uint64_t seed);
// The documents of one global batch: lengths drawn until their sum reaches
// `tokens` (the last one is kept whole, so a batch may overshoot by < one doc).
std::vector<Document> next_global_batch(LengthSource& source, int64_t tokens, int64_t iteration,
                                        int64_t& next_id);
// Global batches that bring `tokens` tokens each on average, as a training
// run with a fixed global batch size does: documents are drawn until the
// running total over all batches reaches (batches so far + 1) x tokens, so a
// batch's overshoot (its last document is whole) comes off the next batch.
// With next_global_batch instead, every batch overshoots by the mean residual
// document length (~3% of 8 x 128K for paper_like_spec) and a packer whose
// capacity equals `tokens` (plain at load 1) falls further behind every step.
class GlobalBatches {
 public:
  GlobalBatches(std::unique_ptr<LengthSource> source, int64_t tokens);
  std::vector<Document> next();                   // the next batch; its arrival = iteration()
  int64_t iteration() const { return batches_; }  // batches drawn so far
  const LengthSource& source() const { return *source_; }

 private:
  std::unique_ptr<LengthSource> source_;
  int64_t tokens_ = 0;
  int64_t batches_ = 0, drawn_ = 0, next_id_ = 0;
};
// More spec forms: "uniform:min=A,max=B" and "const:length=N" (tests, sweeps).
// A spec whose lengths resemble the paper's production trace as WLB-LLM
// describes it: most documents short, a long tail holding most tokens, a few
// documents at the context. docs/packing.md says how it was chosen.
std::string paper_like_spec(int64_t context);

// Packers ----------------------------------------------------------------------
enum class PackingKind { plain, fixed, wlb };
PackingKind parse_packing_kind(std::string_view name);  // "plain" | "fixed" | "wlb"
std::string to_string(PackingKind kind);

struct PackingConfig {
  int64_t context = 0;  // plain/fixed: the fixed micro-batch length
  // plain: concatenate documents in arrival order and cut the stream at the
  // context (a document crossing the boundary continues as a separate piece
  // in the next micro-batch), as Llama-style pre-training data loaders do and
  // as WLB-LLM's baseline packs; false = keep documents whole (a document that
  // does not fit closes the micro-batch, which stays partly empty).
  bool split_documents = true;
  int64_t max_length = 0;                 // wlb: the longest micro-batch (>= context); 0 = context
  int micro_batches = 1;                  // per step, over all data-parallel replicas
  int window = 1;                         // fixed: global batches balanced together (1..k)
  int queues = 2;                         // wlb: outlier-delay queues (0 = none)
  std::vector<int64_t> queue_thresholds;  // wlb: ascending lengths; empty = derived
  WorkloadModel workload;
};

class Packer {
 public:
  virtual ~Packer() = default;
  // The documents of the next global batch (arrival order); returns the steps
  // that are ready now (plain and wlb: one per push; fixed: `window` steps
  // every `window` pushes). Every step holds exactly config.micro_batches
  // micro-batches; documents that do not fit wait for a later step. Pushed
  // documents are whole (offset 0); only plain with split_documents cuts them.
  virtual std::vector<Step> push(std::vector<Document> docs) = 0;
  // The end of the data: everything still held, as steps.
  virtual std::vector<Step> flush() = 0;
};
// Throws UsageError for an impossible config.
std::unique_ptr<Packer> make_packer(PackingKind kind, const PackingConfig& config);
// The thresholds wlb uses when queue_thresholds is empty: `queues` evenly
// spaced levels, context x (j + 1) / (queues + 1) (2 queues at 128K: documents
// of [43690, 87381) tokens wait in one, longer ones in the other).
std::vector<int64_t> default_queue_thresholds(int64_t context, int queues);

// How long documents waited: delay = Step::iteration - Document::arrival, in
// iterations (negative when a fixed-length window trains a later batch's
// document early). Every piece of a split document counts with its own step.
struct DelayStats {
  double mean_per_token = 0;          // token-weighted mean delay
  int64_t max = 0;                    // the longest delay of any piece
  double delayed_token_fraction = 0;  // tokens with delay > 0 over all tokens
  int64_t tokens = 0;                 // counted
  int64_t documents = 0;              // distinct documents (pieces at offset 0)
  int64_t pieces = 0;                 // documents and pieces as placed
};
DelayStats delay_stats(std::span<const Step> steps);

// The setting both reproductions use by default (docs/packing.md's imbalance
// table, lib/wlb's ReproductionOptions); docs/packing.md says why.
//   load: tokens a global batch brings over one step's capacity (micro-batches
//     x context). 1: a fixed global batch of micro-batches x context tokens,
//     which the split plain baseline trains exactly, every sequence full.
//   WLB max-length factor: the longest WLB micro-batch over the context, a
//     memory bound the paper does not state (in what we could read). At load 1
//     a packer of whole documents needs room above the context to keep up (at
//     1.0 WLB's backlog grows without bound); 1.25 (25% activation headroom)
//     is what this library used from the start, not fitted to any figure.
//   micro-batches per stage: micro-batches per data-parallel replica over PP
//     (2: 8 micro-batches for the paper's PP 4, a common 1F1B choice).
inline constexpr double kDefaultLoad = 1.0;
inline constexpr double kDefaultWlbMaxLengthFactor = 1.25;
inline constexpr int kDefaultMicroBatchesPerStage = 2;

// One packer over `batches` global batches of `batch_tokens` tokens drawn from
// `spec` (seeded; GlobalBatches, so `batch_tokens` on average), then flushed: the mean and largest
// imbalance over the steps the pushes returned (the flush's drain steps left out), the delays over
// all steps and the packing time per global batch. Lengths are clipped to the context, so every
// packer sees the same documents.
struct PackingSummary {
  double mean_imbalance = 1, max_imbalance = 1;
  DelayStats delay;
  double pack_seconds_per_batch = 0;
  int64_t steps = 0;  // returned by the pushes
};
PackingSummary run_packing(PackingKind kind, const PackingConfig& config, std::string_view spec,
                           int batches, int64_t batch_tokens, uint64_t seed);

// Imbalance degree of a step: max over mean of the micro-batches' workloads.
double imbalance(const Step& step, const WorkloadModel& workload);
// The paper's other form, over measured latencies (one per pipeline stage or
// rank): max x count / sum, i.e. the slowest over the average. 1 when empty
// or all zero.
double latency_imbalance(std::span<const double> latencies);

// Context-parallel sharding -------------------------------------------------------
struct TokenRange {
  int64_t begin = 0, end = 0;  // positions [begin, end) of the packed sequence
};
// shards[c]: the ranges CP rank c holds, ascending and disjoint; together the
// ranks cover every token of the micro-batch exactly once.
using CpShards = std::vector<std::vector<TokenRange>>;

enum class CpSharding { per_sequence, per_document, adaptive };
// "per-sequence" | "per-document" | "adaptive"
CpSharding parse_cp_sharding(std::string_view name);
std::string to_string(CpSharding sharding);

// Attention kernel efficiency by query-chunk length (ascending (length,
// relative throughput) points, interpolated in log(length)); measured from
// the kernel benchmarks. Used by the adaptive sharding to predict latency.
struct KernelEfficiency {
  std::vector<std::pair<double, double>> points;
  double at(double query_length) const;
};

// per_sequence: the packed sequence in 2 x cp equal chunks, rank c taking
// chunks c and 2cp-1-c (symmetric pairs). per_document: every document in
// 2 x cp chunks the same way, the remainder tokens dealt round-robin.
// adaptive: whichever of the two has the lower predicted attention latency on
// the slowest rank (workload under the mask / efficiency of its chunks).
CpShards shard(const MicroBatch& mb, int cp, CpSharding sharding,
               const KernelEfficiency* efficiency = nullptr);

// The attention work of each CP rank under the causal document mask: the
// (query, key) pairs it computes, a query at offset o of its document seeing
// o + 1 keys (itself and the earlier tokens of the same document; a piece of
// a cut document counts as a document: o is the offset within the piece).
std::vector<double> cp_attention_pairs(const MicroBatch& mb, const CpShards& shards);
// The predicted attention latency of each CP rank: every TokenRange it holds
// is one kernel call of that many queries, costing its pairs under the mask
// over efficiency->at(range length). shard() keeps a per_sequence chunk whole
// (it may span documents) and never merges per_document pieces of different
// documents, so the ranges are the kernel calls. nullptr = efficiency 1.
std::vector<double> cp_predicted_latency(const MicroBatch& mb, const CpShards& shards,
                                         const KernelEfficiency* efficiency);

}  // namespace paralab::packing
