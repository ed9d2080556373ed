// The packers: every document placed exactly once, no micro-batch over its
// limit, the steps' shape, each packer's own rule (plain's order, fixed's
// window, wlb's outlier queues and greedy placement) and the delay statistics.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "core/errors.hpp"
#include "packing/packing.hpp"

namespace paralab::packing {
namespace {

std::vector<Document> docs_of(std::vector<int64_t> lengths, int64_t arrival, int64_t& next_id) {
  std::vector<Document> docs;
  for (int64_t length : lengths) docs.push_back(Document{next_id++, length, arrival});
  return docs;
}

// The document lengths of each micro-batch of a step, in placement order.
std::vector<std::vector<int64_t>> lengths_by_micro_batch(const Step& step) {
  std::vector<std::vector<int64_t>> lengths;
  for (const auto& mb : step.micro_batches) {
    lengths.emplace_back();
    for (const auto& doc : mb.docs) lengths.back().push_back(doc.length);
  }
  return lengths;
}

struct PackRun {
  std::vector<Step> steps;
  std::vector<Document> pushed;
  std::vector<size_t> steps_after_push;  // steps returned by each push
};

// Pushes `batches` global batches from `spec`, then flushes.
PackRun run_packer(PackingKind kind, const PackingConfig& config, const std::string& spec,
                   int batches, int64_t batch_tokens, uint64_t seed) {
  const int64_t longest =
      kind == PackingKind::wlb && config.max_length > 0 ? config.max_length : config.context;
  auto source = make_length_source(spec, config.context, longest, seed);
  auto packer = make_packer(kind, config);
  PackRun run;
  int64_t next_id = 0;
  for (int i = 0; i < batches; ++i) {
    auto docs = next_global_batch(*source, batch_tokens, i, next_id);
    run.pushed.insert(run.pushed.end(), docs.begin(), docs.end());
    auto steps = packer->push(std::move(docs));
    run.steps_after_push.push_back(steps.size());
    for (Step& step : steps) run.steps.push_back(std::move(step));
  }
  for (Step& step : packer->flush()) run.steps.push_back(std::move(step));
  return run;
}

// Every token of every pushed document is placed exactly once: a document
// appears whole, or (plain with split_documents) as pieces whose
// [offset, offset + length) ranges tile [0, its length) with its arrival.
// Steps are numbered 0, 1, ...; each has micro_batches micro-batches within
// `limit` tokens.
void expect_valid(const PackRun& run, const PackingConfig& config, int64_t limit,
                  bool may_split = false) {
  std::map<int64_t, std::vector<Document>> placed;  // id -> pieces
  for (size_t s = 0; s < run.steps.size(); ++s) {
    const Step& step = run.steps[s];
    EXPECT_EQ(step.iteration, int64_t(s));
    ASSERT_EQ(step.micro_batches.size(), size_t(config.micro_batches));
    for (const MicroBatch& mb : step.micro_batches) {
      EXPECT_LE(mb.tokens(), limit) << "step " << s;
      for (const Document& doc : mb.docs) {
        EXPECT_GT(doc.length, 0) << "document " << doc.id << " has an empty piece";
        placed[doc.id].push_back(doc);
      }
    }
  }
  ASSERT_EQ(placed.size(), run.pushed.size());
  for (const Document& doc : run.pushed) {
    auto it = placed.find(doc.id);
    ASSERT_NE(it, placed.end()) << "document " << doc.id << " never placed";
    std::vector<Document> pieces = it->second;
    std::sort(pieces.begin(), pieces.end(),
              [](const Document& a, const Document& b) { return a.offset < b.offset; });
    int64_t covered = 0;  // pieces must tile [0, length): no gap, no overlap
    for (const Document& piece : pieces) {
      EXPECT_EQ(piece.offset, covered) << "document " << doc.id;
      EXPECT_EQ(piece.arrival, doc.arrival);
      covered = piece.offset + piece.length;
    }
    EXPECT_EQ(covered, doc.length) << "document " << doc.id;
    if (!may_split) {
      EXPECT_EQ(pieces.size(), 1u) << "document " << doc.id << " was split";
    }
  }
}

PackingConfig config_of(int64_t context, int micro_batches) {
  PackingConfig config;
  config.context = context;
  config.micro_batches = micro_batches;
  config.workload = WorkloadModel{1.0, 64.0};
  return config;
}

TEST(Packers, EveryDocumentOnceWithinLimits) {
  const std::vector<std::string> specs = {"uniform:min=1,max=1000", "normal:mean=0.5,std=0.5",
                                          paper_like_spec(1000)};
  for (const std::string& spec : specs)
    for (int n : {1, 3, 8})
      for (double fill : {0.7, 1.0, 1.3}) {
        SCOPED_TRACE(spec + " n=" + std::to_string(n) + " fill=" + std::to_string(fill));
        const int64_t tokens = int64_t(fill * n * 1000);
        PackingConfig config = config_of(1000, n);
        for (bool split : {true, false}) {
          config.split_documents = split;
          expect_valid(run_packer(PackingKind::plain, config, spec, 9, tokens, 1), config, 1000,
                       split);
        }
        config.split_documents = true;
        for (int window : {1, 2, 4}) {
          config.window = window;
          expect_valid(run_packer(PackingKind::fixed, config, spec, 9, tokens, 2), config, 1000);
        }
        for (int queues : {0, 1, 3})
          for (int64_t max_length : {1000, 1300}) {
            config.queues = queues;
            config.max_length = max_length;
            expect_valid(run_packer(PackingKind::wlb, config, spec, 9, tokens, 3), config,
                         max_length);
          }
      }
}

TEST(Plain, WholeDocumentsFillInArrivalOrder) {
  PackingConfig config = config_of(10, 3);
  config.split_documents = false;
  auto packer = make_packer(PackingKind::plain, config);
  int64_t id = 0;
  auto steps = packer->push(docs_of({4, 5, 3, 7, 2, 9, 1}, 0, id));
  ASSERT_EQ(steps.size(), 1u);
  // [4 5] (3 does not fit), [3 7], [2] is open; 9 does not fit: [2] closes, [9 1].
  const auto& mbs = steps[0].micro_batches;
  ASSERT_EQ(mbs.size(), 3u);
  EXPECT_EQ(mbs[0].tokens(), 9);
  EXPECT_EQ(mbs[1].tokens(), 10);
  EXPECT_EQ(mbs[2].tokens(), 2);
  std::vector<int64_t> order;
  for (const auto& mb : mbs)
    for (const auto& doc : mb.docs) order.push_back(doc.id);
  EXPECT_EQ(order, (std::vector<int64_t>{0, 1, 2, 3, 4}));
  // The rest waits for the next step; flush delivers it, padded with empty micro-batches.
  auto rest = packer->flush();
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].iteration, 1);
  EXPECT_EQ(rest[0].micro_batches[0].tokens(), 10);
  EXPECT_TRUE(rest[0].micro_batches[1].docs.empty());
}

TEST(Plain, SplitsDocumentsAtTheContextBoundary) {
  const PackingConfig config = config_of(10, 3);
  ASSERT_TRUE(config.split_documents);  // the default: the paper's baseline
  auto packer = make_packer(PackingKind::plain, config);
  int64_t id = 0;
  // The stream 4 5 | 3 7 | 2 9 1 cut every 10 tokens: [4 5 1/3], [2/3 7 1/2], [1/2 8/9];
  // the rest ([1/9 1]) waits.
  auto steps = packer->push(docs_of({4, 5, 3, 7, 2, 9, 1}, 0, id));
  ASSERT_EQ(steps.size(), 1u);
  struct Piece {
    int64_t id, length, offset;
    bool operator==(const Piece&) const = default;
  };
  auto pieces_of = [](const MicroBatch& mb) {
    std::vector<Piece> pieces;
    for (const Document& d : mb.docs) pieces.push_back({d.id, d.length, d.offset});
    return pieces;
  };
  const auto& mbs = steps[0].micro_batches;
  ASSERT_EQ(mbs.size(), 3u);
  for (const MicroBatch& mb : mbs) EXPECT_EQ(mb.tokens(), 10);
  EXPECT_EQ(pieces_of(mbs[0]), (std::vector<Piece>{{0, 4, 0}, {1, 5, 0}, {2, 1, 0}}));
  EXPECT_EQ(pieces_of(mbs[1]), (std::vector<Piece>{{2, 2, 1}, {3, 7, 0}, {4, 1, 0}}));
  EXPECT_EQ(pieces_of(mbs[2]), (std::vector<Piece>{{4, 1, 1}, {5, 9, 0}}));
  // Every piece is masked as its own document.
  EXPECT_EQ(mbs[1].doc_starts(), (std::vector<int64_t>{0, 2, 9}));
  // A document longer than the context spans several sequences.
  auto more = packer->push(docs_of({25}, 1, id));
  ASSERT_EQ(more.size(), 1u);
  EXPECT_EQ(pieces_of(more[0].micro_batches[0]), (std::vector<Piece>{{6, 1, 0}, {7, 9, 0}}));
  EXPECT_EQ(pieces_of(more[0].micro_batches[1]), (std::vector<Piece>{{7, 10, 9}}));
  EXPECT_EQ(pieces_of(more[0].micro_batches[2]), (std::vector<Piece>{{7, 6, 19}}));
  EXPECT_EQ(more[0].micro_batches[2].tokens(), 6);  // partly filled: nothing else left
  EXPECT_TRUE(packer->flush().empty());
}

TEST(Plain, SplittingFillsEveryStepAndBalancesBetterThanWholeDocuments) {
  // A long-tailed stream at load 1: cut at the context, every micro-batch is
  // full and no long document's attention exceeds one context; whole
  // documents leave micro-batches partly empty beside a context-long one.
  const int64_t context = 1 << 15;
  PackingConfig config = config_of(context, 8);
  config.workload = WorkloadModel{1.0, 12.0 * 1024};
  const std::string spec = paper_like_spec(context);
  const int batches = 40;
  const int64_t tokens = 8 * context;
  auto mean_imbalance = [&](bool split) {
    config.split_documents = split;
    const PackRun run = run_packer(PackingKind::plain, config, spec, batches, tokens, 5);
    double sum = 0;
    for (size_t s = 0; s < size_t(batches); ++s) sum += imbalance(run.steps[s], config.workload);
    return std::pair{sum / batches, run};
  };
  const auto [whole, whole_run] = mean_imbalance(false);
  const auto [split, split_run] = mean_imbalance(true);
  EXPECT_LT(split, whole - 0.1);
  EXPECT_GT(split, 1.0);
  // Every push brings at least a step's capacity (next_global_batch reaches
  // its tokens), so every step the pushes returned is full.
  for (size_t s = 0; s < size_t(batches); ++s)
    for (const MicroBatch& mb : split_run.steps[s].micro_batches)
      EXPECT_EQ(mb.tokens(), context) << "step " << s;
  expect_valid(split_run, config, context, true);
  // Whole documents: some micro-batches partly empty.
  int64_t short_of_context = 0;
  for (size_t s = 0; s < size_t(batches); ++s)
    for (const MicroBatch& mb : whole_run.steps[s].micro_batches)
      short_of_context += mb.tokens() < context;
  EXPECT_GT(short_of_context, batches);
}

TEST(Plain, WholeDocumentLongerThanTheContextIsAnError) {
  PackingConfig config = config_of(10, 2);
  config.split_documents = false;
  auto packer = make_packer(PackingKind::plain, config);
  int64_t id = 0;
  try {
    packer->push(docs_of({3, 11}, 0, id));
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("longer than the context (10)"), std::string::npos);
  }
}

TEST(Fixed, EmitsAWindowOfStepsEveryWindowPushes) {
  PackingConfig config = config_of(1000, 4);
  config.window = 3;
  const PackRun run = run_packer(PackingKind::fixed, config, "uniform:min=1,max=400", 7, 3000, 5);
  EXPECT_EQ(run.steps_after_push, (std::vector<size_t>{0, 0, 3, 0, 0, 3, 0}));
  expect_valid(run, config, 1000);
}

TEST(Fixed, BalancesTheLargestWorkloadAndGroupsAlikeMicroBatches) {
  // One batch: four documents of 8 and four of 2 over 4 micro-batches of 10:
  // longest first, [8, 2] in each, workload 68 each.
  PackingConfig config = config_of(10, 4);
  config.workload = WorkloadModel{1.0, 0.0};
  auto packer = make_packer(PackingKind::fixed, config);
  int64_t id = 0;
  auto steps = packer->push(docs_of({2, 8, 2, 2, 8, 2, 8, 8}, 0, id));
  ASSERT_EQ(steps.size(), 1u);
  for (const auto& mb : steps[0].micro_batches) EXPECT_DOUBLE_EQ(config.workload.of(mb), 68.0);
  EXPECT_DOUBLE_EQ(imbalance(steps[0], config.workload), 1.0);
  // Two batches in one window, one of long and one of short documents: each
  // step gets micro-batches of equal workload.
  config.window = 2;
  config.micro_batches = 2;
  packer = make_packer(PackingKind::fixed, config);
  EXPECT_TRUE(packer->push(docs_of({9, 9}, 0, id)).empty());
  steps = packer->push(docs_of({3, 3, 3, 3, 3, 3}, 1, id));
  ASSERT_EQ(steps.size(), 2u);
  for (const Step& step : steps) EXPECT_DOUBLE_EQ(imbalance(step, config.workload), 1.0);
}

TEST(Wlb, OutlierQueueReleasesOneDocumentPerMicroBatch) {
  PackingConfig config = config_of(100, 3);
  config.max_length = 150;
  config.queues = 1;
  config.queue_thresholds = {60};
  auto packer = make_packer(PackingKind::wlb, config);
  int64_t id = 0;
  auto count_long = [](const Step& step) {
    int count = 0;
    for (const auto& mb : step.micro_batches)
      for (const auto& doc : mb.docs) count += doc.length >= 60;
    return count;
  };
  // Two outliers: held.
  auto steps = packer->push(docs_of({70, 10, 80, 10}, 0, id));
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(count_long(steps[0]), 0);
  EXPECT_EQ(steps[0].micro_batches[0].tokens() + steps[0].micro_batches[1].tokens() +
                steps[0].micro_batches[2].tokens(),
            20);
  // The third: the queue holds one per micro-batch and releases all three, one each.
  steps = packer->push(docs_of({90, 10}, 1, id));
  EXPECT_EQ(count_long(steps[0]), 3);
  for (const auto& mb : steps[0].micro_batches) {
    int outliers = 0;
    for (const auto& doc : mb.docs) outliers += doc.length >= 60;
    EXPECT_EQ(outliers, 1);
  }
  // A fourth waits again; flush releases it.
  steps = packer->push(docs_of({65}, 2, id));
  EXPECT_EQ(count_long(steps[0]), 0);
  steps = packer->flush();
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(count_long(steps[0]), 1);
  EXPECT_EQ(steps[0].iteration, 3);
}

TEST(Wlb, AReleasedOutlierWithoutRoomReturnsToItsQueue) {
  PackingConfig config = config_of(100, 2);
  config.queues = 1;
  config.queue_thresholds = {60};
  config.workload = WorkloadModel{1.0, 0.0};
  auto packer = make_packer(PackingKind::wlb, config);
  int64_t id = 0;
  auto total = [](const Step& step) {
    return step.micro_batches[0].tokens() + step.micro_batches[1].tokens();
  };
  // Five documents of 50 in two micro-batches of 100: one waits.
  EXPECT_EQ(total(packer->push(docs_of({50, 50, 50, 50, 50}, 0, id))[0]), 200);
  // The queue releases 70 and 75. The waiting 50 goes first (A), 75 to B, 70
  // fits neither: it goes back to its queue, not into the next step alone.
  EXPECT_EQ(total(packer->push(docs_of({70, 75}, 1, id))[0]), 125);
  EXPECT_EQ(total(packer->push({})[0]), 0);
  const auto rest = packer->flush();
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(total(rest[0]), 70);
}

TEST(Wlb, QueuesOfEachLevelReleaseSeparately) {
  PackingConfig config = config_of(100, 2);
  config.queues = 2;
  config.queue_thresholds = {30, 60};
  auto packer = make_packer(PackingKind::wlb, config);
  int64_t id = 0;
  // One of each level: both held.
  auto steps = packer->push(docs_of({40, 70, 5}, 0, id));
  EXPECT_EQ(steps[0].micro_batches[0].tokens() + steps[0].micro_batches[1].tokens(), 5);
  // A second of level 0 releases level 0 only.
  steps = packer->push(docs_of({35}, 1, id));
  std::vector<int64_t> lengths;
  for (const auto& mb : steps[0].micro_batches)
    for (const auto& doc : mb.docs) lengths.push_back(doc.length);
  std::sort(lengths.begin(), lengths.end());
  EXPECT_EQ(lengths, (std::vector<int64_t>{35, 40}));
}

TEST(Wlb, GreedyLeastWorkloadElseShortestElseNextIteration) {
  PackingConfig config = config_of(10, 2);
  config.queues = 0;
  config.workload = WorkloadModel{1.0, 0.0};
  auto packer = make_packer(PackingKind::wlb, config);
  int64_t id = 0;
  // Longest first: 6 -> A, 5 -> B (least work), 4 -> B (work 25 < 36, 9 tokens),
  // 3: least work is A (36 < 41) with 6 tokens: fits -> A (9). 2: least work B
  // (41 < 45) has 9 tokens, no room; the shortest is A or B (9 each), no room:
  // deferred.
  auto steps = packer->push(docs_of({6, 5, 4, 3, 2}, 0, id));
  EXPECT_EQ(lengths_by_micro_batch(steps[0]), (std::vector<std::vector<int64_t>>{{6, 3}, {5, 4}}));
  // The deferred document comes first in the next iteration.
  steps = packer->push(docs_of({1}, 1, id));
  EXPECT_EQ(steps[0].micro_batches[0].tokens() + steps[0].micro_batches[1].tokens(), 3);
}

TEST(Wlb, FallsBackToTheShortestMicroBatch) {
  // Work 1 per token squared: 7 -> A (49); 3,3 -> B (9, 18); next 3: least
  // work B (18 < 49) has 6 tokens + 3 = 9 <= 9: B. Next 2: least work B (27)
  // has 9 tokens: full; the shortest is A (7 tokens) and 7 + 2 = 9 fits: A.
  PackingConfig config = config_of(9, 2);
  config.queues = 0;
  config.workload = WorkloadModel{1.0, 0.0};
  auto packer = make_packer(PackingKind::wlb, config);
  int64_t id = 0;
  auto steps = packer->push(docs_of({7, 3, 3, 3, 2}, 0, id));
  EXPECT_EQ(lengths_by_micro_batch(steps[0]),
            (std::vector<std::vector<int64_t>>{{7, 2}, {3, 3, 3}}));
}

TEST(Wlb, ConfigErrors) {
  PackingConfig config = config_of(100, 2);
  config.max_length = 50;
  EXPECT_THROW(make_packer(PackingKind::wlb, config), UsageError);
  config.max_length = 0;
  config.queues = 2;
  config.queue_thresholds = {60, 40};
  EXPECT_THROW(make_packer(PackingKind::wlb, config), UsageError);
  config.queue_thresholds = {60};
  EXPECT_THROW(make_packer(PackingKind::wlb, config), UsageError);
  config.queue_thresholds = {60, 200};
  EXPECT_THROW(make_packer(PackingKind::wlb, config), UsageError);
  config.queue_thresholds.clear();
  EXPECT_NO_THROW(make_packer(PackingKind::wlb, config));
  config.micro_batches = 0;
  EXPECT_THROW(make_packer(PackingKind::plain, config), UsageError);
  config.micro_batches = 2;
  config.window = 0;
  EXPECT_THROW(make_packer(PackingKind::fixed, config), UsageError);
  config.window = 1;
  config.context = 0;
  EXPECT_THROW(make_packer(PackingKind::fixed, config), UsageError);
  config.context = 100;
  config.workload = WorkloadModel{0.0, 0.0};
  EXPECT_THROW(make_packer(PackingKind::wlb, config), UsageError);
  // A document longer than max_length.
  config.workload = WorkloadModel{};
  config.max_length = 120;
  auto packer = make_packer(PackingKind::wlb, config);
  int64_t id = 0;
  EXPECT_THROW(packer->push(docs_of({121}, 0, id)), UsageError);
}

TEST(Wlb, DefaultThresholdsAreEvenlySpaced) {
  EXPECT_EQ(default_queue_thresholds(120, 1), (std::vector<int64_t>{60}));
  EXPECT_EQ(default_queue_thresholds(120, 2), (std::vector<int64_t>{40, 80}));
  EXPECT_EQ(default_queue_thresholds(120, 3), (std::vector<int64_t>{30, 60, 90}));
  EXPECT_TRUE(default_queue_thresholds(120, 0).empty());
}

TEST(Wlb, BalancesThePaperLikeDistributionBetterThanPlain) {
  const int64_t context = 1 << 17;
  PackingConfig config = config_of(context, 8);
  config.workload = WorkloadModel{1.0, 12.0 * 4096};
  config.max_length = context * 5 / 4;
  config.queues = 2;
  const int64_t tokens = int64_t(0.9 * 8 * double(context));
  const PackRun plain =
      run_packer(PackingKind::plain, config, paper_like_spec(context), 30, tokens, 8);
  const PackRun wlb = run_packer(PackingKind::wlb, config, paper_like_spec(context), 30, tokens, 8);
  auto mean_imbalance = [&](const PackRun& run) {
    double sum = 0;
    for (int s = 0; s < 30; ++s) sum += imbalance(run.steps[size_t(s)], config.workload);
    return sum / 30;
  };
  EXPECT_LT(mean_imbalance(wlb), 1.15);
  EXPECT_GT(mean_imbalance(plain), 1.3);
}

TEST(RunPacking, SummarisesEveryPushedToken) {
  PackingConfig config = config_of(1000, 4);
  config.queues = 1;
  const PackingSummary summary =
      run_packing(PackingKind::wlb, config, "uniform:min=1,max=1000", 12, 3500, 4);
  EXPECT_EQ(summary.steps, 12);  // wlb: one step per push
  EXPECT_GE(summary.delay.tokens, 12 * 3500);
  EXPECT_GE(summary.mean_imbalance, 1.0);
  EXPECT_GE(summary.max_imbalance, summary.mean_imbalance);
  EXPECT_GT(summary.delay.max, 0);  // the queue held its documents
  // The same seed gives the same summary.
  const PackingSummary again =
      run_packing(PackingKind::wlb, config, "uniform:min=1,max=1000", 12, 3500, 4);
  EXPECT_EQ(again.mean_imbalance, summary.mean_imbalance);
  EXPECT_THROW(run_packing(PackingKind::wlb, config, "uniform:min=1,max=1000", 0, 3500, 4),
               UsageError);
}

TEST(Delay, PerTokenMeanAndMax) {
  Step first, second;
  first.iteration = 0;
  second.iteration = 2;
  first.micro_batches = {MicroBatch{{Document{0, 10, 0}, Document{1, 30, 0}}}};
  second.micro_batches = {MicroBatch{{Document{2, 20, 0}}}, MicroBatch{{Document{3, 40, 1}}}};
  const std::vector<Step> steps = {first, second};
  const DelayStats stats = delay_stats(steps);
  // Delays 0 (10 tokens), 0 (30), 2 (20), 1 (40): (40 + 40) / 100.
  EXPECT_DOUBLE_EQ(stats.mean_per_token, 0.8);
  EXPECT_EQ(stats.max, 2);
  EXPECT_DOUBLE_EQ(stats.delayed_token_fraction, 0.6);
  EXPECT_EQ(stats.tokens, 100);
  EXPECT_EQ(stats.documents, 4);
  EXPECT_EQ(delay_stats(std::vector<Step>{}).tokens, 0);
}

TEST(Delay, OutlierQueuesDelayOnlyTheirDocuments) {
  PackingConfig config = config_of(100, 2);
  config.max_length = 200;
  config.queues = 1;
  config.queue_thresholds = {50};
  auto packer = make_packer(PackingKind::wlb, config);
  int64_t id = 0;
  std::vector<Step> steps;
  for (auto& s : packer->push(docs_of({60, 10}, 0, id))) steps.push_back(s);
  for (auto& s : packer->push(docs_of({10}, 1, id))) steps.push_back(s);
  for (auto& s : packer->push(docs_of({70, 10}, 2, id))) steps.push_back(s);
  const DelayStats stats = delay_stats(steps);
  EXPECT_EQ(stats.max, 2);                                // the 60 waited 2 iterations
  EXPECT_DOUBLE_EQ(stats.mean_per_token, 120.0 / 160.0);  // 60 tokens x 2
}

}  // namespace
}  // namespace paralab::packing
