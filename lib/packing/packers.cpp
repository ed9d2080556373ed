// packers.cpp: the three packers of packing.hpp.
//   plain: documents in arrival order, concatenated and cut at the context (a
//          document crossing the boundary continues as a piece in the next
//          micro-batch); or, without split_documents, whole documents, a
//          micro-batch closing when the next document does not fit.
//   fixed: a window of 1..k global batches packed together into k x N
//          micro-batches of the context length, longest document first into
//          the micro-batch with the least workload that still fits.
//   wlb:   WLB-LLM's variable-length packing: micro-batches bounded by
//          max_length, long documents held in per-length outlier queues until
//          a queue holds one document per micro-batch, and the paper's greedy
//          placement (least workload, else shortest, else next iteration).
// Every step has exactly config.micro_batches micro-batches; documents that do
// not fit this step wait (in order) for the next one, and flush() drains them.
#include <algorithm>
#include <chrono>
#include <deque>
#include <limits>
#include <string>

#include "core/errors.hpp"
#include "packing/packing.hpp"

namespace paralab::packing {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void check_length(const Document& doc, int64_t limit, const char* what) {
  if (doc.length <= 0)
    throw UsageError("document " + std::to_string(doc.id) + " has length " +
                     std::to_string(doc.length) + " (must be positive)");
  if (doc.length > limit)
    throw UsageError("document " + std::to_string(doc.id) + " of " + std::to_string(doc.length) +
                     " tokens is longer than the " + what + " (" + std::to_string(limit) + ")");
}

// Documents of a packed sequence read in arrival order, whatever order the
// greedy placed them in.
void sort_by_arrival(std::vector<MicroBatch>& mbs) {
  for (MicroBatch& mb : mbs)
    std::sort(mb.docs.begin(), mb.docs.end(),
              [](const Document& a, const Document& b) { return a.id < b.id; });
}

void sort_longest_first(std::vector<Document>& docs) {
  std::stable_sort(docs.begin(), docs.end(), [](const Document& a, const Document& b) {
    return a.length != b.length ? a.length > b.length : a.id < b.id;
  });
}

// Micro-batches under construction, with their running tokens and workload.
struct Bins {
  std::vector<MicroBatch> mbs;
  std::vector<int64_t> tokens;
  std::vector<double> work;
  explicit Bins(size_t count) : mbs(count), tokens(count, 0), work(count, 0) {}
  void add(size_t i, const Document& doc, const WorkloadModel& workload) {
    mbs[i].docs.push_back(doc);
    tokens[i] += doc.length;
    work[i] += workload(doc.length);
  }
};

// Fixed-length balancing: the bin with the least workload among those the
// document still fits in; -1 when none has room.
int least_work_that_fits(const Bins& bins, int64_t length, int64_t capacity) {
  int best = -1;
  for (size_t i = 0; i < bins.mbs.size(); ++i)
    if (bins.tokens[i] + length <= capacity && (best < 0 || bins.work[i] < bins.work[best]))
      best = int(i);
  return best;
}

// WLB-LLM's rule: the bin with the least workload if the document fits
// there, else the bin with the fewest tokens if it fits there, else none.
int wlb_choice(const Bins& bins, int64_t length, int64_t capacity) {
  size_t least_work = 0, fewest_tokens = 0;
  for (size_t i = 1; i < bins.mbs.size(); ++i) {
    if (bins.work[i] < bins.work[least_work]) least_work = i;
    if (bins.tokens[i] < bins.tokens[fewest_tokens]) fewest_tokens = i;
  }
  if (bins.tokens[least_work] + length <= capacity) return int(least_work);
  if (bins.tokens[fewest_tokens] + length <= capacity) return int(fewest_tokens);
  return -1;
}

// Places `carried` (documents already deferred once), then `docs`, each
// longest first, into `bins` by `choose`; returns the documents that fit
// nowhere, in arrival order. Carried documents go first so that a short
// document cannot be deferred forever by a stream of longer new ones.
template <typename Choose>
std::vector<Document> place_greedy(std::vector<Document> carried, std::vector<Document> docs,
                                   Bins& bins, int64_t capacity, const WorkloadModel& workload,
                                   Choose choose) {
  sort_longest_first(carried);
  sort_longest_first(docs);
  std::vector<Document> deferred;
  for (const auto* group : {&carried, &docs})
    for (const Document& doc : *group) {
      const int i = choose(bins, doc.length, capacity);
      if (i < 0)
        deferred.push_back(doc);
      else
        bins.add(size_t(i), doc, workload);
    }
  std::sort(deferred.begin(), deferred.end(),
            [](const Document& a, const Document& b) { return a.id < b.id; });
  return deferred;
}

void check_common(const PackingConfig& config) {
  if (config.context <= 0)
    throw UsageError("packing: context must be positive, got " + std::to_string(config.context));
  if (config.micro_batches <= 0)
    throw UsageError("packing: micro_batches must be positive, got " +
                     std::to_string(config.micro_batches));
  if (!(config.workload.attention_coef >= 0) || !(config.workload.linear_coef >= 0) ||
      config.workload.attention_coef + config.workload.linear_coef <= 0)
    throw UsageError("packing: the workload model needs non-negative coefficients, not both zero");
}

// Plain ------------------------------------------------------------------------
class PlainPacker : public Packer {
 public:
  explicit PlainPacker(const PackingConfig& config) : config_(config) {}

  std::vector<Step> push(std::vector<Document> docs) override {
    const auto start = Clock::now();
    for (const Document& doc : docs)
      if (config_.split_documents)
        check_length(doc, std::numeric_limits<int64_t>::max(), "longest document");
      else
        check_length(doc, config_.context, "context");
    for (const Document& doc : docs)
      if (config_.split_documents)
        append_split(doc);
      else
        append_whole(doc);
    std::vector<Step> steps;
    steps.push_back(take_step());
    steps.back().pack_seconds = seconds_since(start);
    return steps;
  }

  std::vector<Step> flush() override {
    std::vector<Step> steps;
    while (!closed_.empty() || !open_.docs.empty()) steps.push_back(take_step());
    return steps;
  }

 private:
  // Concatenate and cut: the document fills what is left of the open
  // sequence, and whatever does not fit continues, as the next piece, at the
  // start of the next sequence (a document longer than the context spans
  // several). Every closed sequence is exactly the context long.
  void append_split(const Document& doc) {
    for (int64_t offset = 0; offset < doc.length;) {
      const int64_t take = std::min(config_.context - open_tokens_, doc.length - offset);
      add_to_open(Document{doc.id, take, doc.arrival, doc.offset + offset});
      offset += take;
      if (open_tokens_ == config_.context) close_open();
    }
  }

  // Whole documents: one that does not fit closes the sequence, partly empty.
  void append_whole(const Document& doc) {
    if (open_tokens_ + doc.length > config_.context) close_open();
    add_to_open(doc);
    if (open_tokens_ == config_.context) close_open();
  }

  void add_to_open(const Document& doc) {
    open_.docs.push_back(doc);
    open_tokens_ += doc.length;
  }
  void close_open() {
    if (!open_.docs.empty()) closed_.push_back(std::move(open_));
    open_ = MicroBatch{};
    open_tokens_ = 0;
  }
  // The next N sequences: full ones first; the partly filled one (padded)
  // only when there are not enough full ones.
  Step take_step() {
    Step step;
    step.iteration = iteration_++;
    step.micro_batches.resize(size_t(config_.micro_batches));
    for (MicroBatch& mb : step.micro_batches) {
      if (closed_.empty()) close_open();
      if (closed_.empty()) break;
      mb = std::move(closed_.front());
      closed_.pop_front();
    }
    return step;
  }

  PackingConfig config_;
  std::deque<MicroBatch> closed_;
  MicroBatch open_;
  int64_t open_tokens_ = 0;  // open_.tokens(), kept as documents are added
  int64_t iteration_ = 0;
};

// Fixed-length balanced ------------------------------------------------------------
class FixedPacker : public Packer {
 public:
  explicit FixedPacker(const PackingConfig& config) : config_(config) {
    if (config.window < 1)
      throw UsageError("packing: window must be at least 1, got " + std::to_string(config.window));
  }

  std::vector<Step> push(std::vector<Document> docs) override {
    const auto start = Clock::now();
    for (const Document& doc : docs) check_length(doc, config_.context, "context");
    pending_.insert(pending_.end(), docs.begin(), docs.end());
    if (++pushes_in_window_ < config_.window) return {};
    std::vector<Step> steps = pack_window(config_.window);
    pushes_in_window_ = 0;
    const double per_step = seconds_since(start) / double(steps.size());
    for (Step& step : steps) step.pack_seconds = per_step;
    return steps;
  }

  std::vector<Step> flush() override {
    std::vector<Step> steps;
    int window = std::max(1, pushes_in_window_);
    while (!pending_.empty() || !carried_.empty()) {
      for (Step& step : pack_window(window)) steps.push_back(std::move(step));
      window = 1;
    }
    pushes_in_window_ = 0;
    return steps;
  }

 private:
  // Packs everything pending into window x N micro-batches, then groups them
  // into `window` steps by workload (the N heaviest train together, and so
  // on): a step's micro-batches end up alike even when one batch brought the
  // long documents and the next only short ones. Steps go in the order of
  // their oldest document. What fits nowhere is carried to the next window.
  std::vector<Step> pack_window(int window) {
    const size_t n = size_t(config_.micro_batches);
    Bins bins(size_t(window) * n);
    carried_ = place_greedy(std::move(carried_), std::move(pending_), bins, config_.context,
                            config_.workload, least_work_that_fits);
    pending_.clear();
    sort_by_arrival(bins.mbs);
    std::vector<size_t> order(bins.mbs.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return bins.work[a] > bins.work[b]; });
    std::vector<Step> steps(static_cast<size_t>(window));
    for (size_t s = 0; s < steps.size(); ++s)
      for (size_t i = 0; i < n; ++i)
        steps[s].micro_batches.push_back(std::move(bins.mbs[order[s * n + i]]));
    std::stable_sort(steps.begin(), steps.end(),
                     [](const Step& a, const Step& b) { return oldest_id(a) < oldest_id(b); });
    for (Step& step : steps) step.iteration = iteration_++;
    return steps;
  }

  static int64_t oldest_id(const Step& step) {
    int64_t oldest = std::numeric_limits<int64_t>::max();
    for (const MicroBatch& mb : step.micro_batches)
      if (!mb.docs.empty()) oldest = std::min(oldest, mb.docs.front().id);
    return oldest;
  }

  PackingConfig config_;
  std::vector<Document> pending_;  // arrived in this window
  std::vector<Document> carried_;  // deferred by an earlier window
  int pushes_in_window_ = 0;
  int64_t iteration_ = 0;
};

// WLB-LLM variable-length with outlier-delay queues ------------------------------------
class WlbPacker : public Packer {
 public:
  explicit WlbPacker(const PackingConfig& config)
      : config_(config),
        max_length_(config.max_length > 0 ? config.max_length : config.context),
        thresholds_(config.queue_thresholds.empty()
                        ? default_queue_thresholds(config.context, config.queues)
                        : config.queue_thresholds),
        queues_(thresholds_.size()) {
    if (max_length_ < config.context)
      throw UsageError("packing: max_length " + std::to_string(max_length_) +
                       " is shorter than the context " + std::to_string(config.context));
    if (config.queues < 0)
      throw UsageError("packing: queues must be non-negative, got " +
                       std::to_string(config.queues));
    if (!config.queue_thresholds.empty() && int(config.queue_thresholds.size()) != config.queues)
      throw UsageError("packing: " + std::to_string(config.queue_thresholds.size()) +
                       " queue thresholds given for " + std::to_string(config.queues) + " queues");
    for (size_t i = 0; i < thresholds_.size(); ++i) {
      if (thresholds_[i] <= 0 || thresholds_[i] > max_length_)
        throw UsageError("packing: queue threshold " + std::to_string(thresholds_[i]) +
                         " is outside [1, max_length " + std::to_string(max_length_) + "]");
      if (i > 0 && thresholds_[i] <= thresholds_[i - 1])
        throw UsageError("packing: queue thresholds must be strictly ascending");
    }
  }

  std::vector<Step> push(std::vector<Document> docs) override {
    const auto start = Clock::now();
    for (const Document& doc : docs) check_length(doc, max_length_, "longest micro-batch");
    std::vector<Document> candidates;
    for (const Document& doc : docs) {
      const int level = queue_level(doc.length);
      if (level < 0)
        candidates.push_back(doc);
      else
        queues_[size_t(level)].push_back(doc);
    }
    release_full_queues(candidates);
    std::vector<Step> steps;
    steps.push_back(pack(std::move(candidates)));
    steps.back().pack_seconds = seconds_since(start);
    return steps;
  }

  std::vector<Step> flush() override {
    std::vector<Step> steps;
    while (!deferred_.empty() || held_in_queues() > 0) {
      std::vector<Document> candidates;
      for (auto& queue : queues_) {
        candidates.insert(candidates.end(), queue.begin(), queue.end());
        queue.clear();
      }
      steps.push_back(pack(std::move(candidates)));
    }
    return steps;
  }

 private:
  // The queue of a document: the highest level whose threshold it reaches;
  // -1 for a document short enough to be packed at once.
  int queue_level(int64_t length) const {
    int level = -1;
    for (size_t i = 0; i < thresholds_.size(); ++i)
      if (length >= thresholds_[i]) level = int(i);
    return level;
  }

  // A queue holding one document per micro-batch releases those (oldest first),
  // so each micro-batch can take one outlier of similar length.
  void release_full_queues(std::vector<Document>& candidates) {
    const size_t n = size_t(config_.micro_batches);
    for (auto& queue : queues_) {
      if (queue.size() < n) continue;
      candidates.insert(candidates.end(), queue.begin(), queue.begin() + std::ptrdiff_t(n));
      queue.erase(queue.begin(), queue.begin() + std::ptrdiff_t(n));
    }
  }

  size_t held_in_queues() const {
    size_t held = 0;
    for (const auto& queue : queues_) held += queue.size();
    return held;
  }

  // An outlier that found no room goes back to the front of its queue rather
  // than into the next step alone, where it would be the one long document
  // among short ones that the queues exist to prevent.
  Step pack(std::vector<Document> candidates) {
    Bins bins(size_t(config_.micro_batches));
    std::vector<Document> left = place_greedy(std::move(deferred_), std::move(candidates), bins,
                                              max_length_, config_.workload, wlb_choice);
    deferred_.clear();
    for (auto it = left.rbegin(); it != left.rend(); ++it) {
      const int level = queue_level(it->length);
      if (level < 0)
        deferred_.insert(deferred_.begin(), *it);
      else
        queues_[size_t(level)].push_front(*it);
    }
    sort_by_arrival(bins.mbs);
    Step step;
    step.iteration = iteration_++;
    step.micro_batches = std::move(bins.mbs);
    return step;
  }

  PackingConfig config_;
  int64_t max_length_;
  std::vector<int64_t> thresholds_;
  std::vector<std::deque<Document>> queues_;
  std::vector<Document> deferred_;
  int64_t iteration_ = 0;
};

}  // namespace

std::vector<int64_t> default_queue_thresholds(int64_t context, int queues) {
  // Evenly spaced levels: q queues start at context x (j + 1) / (q + 1), so a
  // released queue's documents differ by at most context / (q + 1) tokens.
  std::vector<int64_t> thresholds;
  for (int level = 0; level < queues; ++level) {
    const int64_t threshold = std::max<int64_t>(1, context * (level + 1) / (queues + 1));
    if (thresholds.empty() || threshold > thresholds.back()) thresholds.push_back(threshold);
  }
  return thresholds;
}

std::unique_ptr<Packer> make_packer(PackingKind kind, const PackingConfig& config) {
  check_common(config);
  switch (kind) {
    case PackingKind::plain:
      return std::make_unique<PlainPacker>(config);
    case PackingKind::fixed:
      return std::make_unique<FixedPacker>(config);
    case PackingKind::wlb:
      return std::make_unique<WlbPacker>(config);
  }
  throw UsageError("packing: unknown packing kind");
}

DelayStats delay_stats(std::span<const Step> steps) {
  DelayStats stats;
  double weighted = 0;
  int64_t delayed = 0;
  bool first = true;
  for (const Step& step : steps)
    for (const MicroBatch& mb : step.micro_batches)
      for (const Document& doc : mb.docs) {
        const int64_t delay = step.iteration - doc.arrival;
        stats.tokens += doc.length;
        stats.pieces += 1;
        if (doc.offset == 0) stats.documents += 1;
        weighted += double(delay) * double(doc.length);
        if (delay > 0) delayed += doc.length;
        if (first || delay > stats.max) stats.max = delay;
        first = false;
      }
  if (stats.tokens > 0) {
    stats.mean_per_token = weighted / double(stats.tokens);
    stats.delayed_token_fraction = double(delayed) / double(stats.tokens);
  }
  return stats;
}

}  // namespace paralab::packing
