// data.hpp: training data for the engine: a synthetic language with a known
// entropy rate (the floor any model's loss can reach) and byte-level text.
//
//   MarkovSource  an order-k Markov chain over V tokens with random
//                 transition rows drawn from a seed; its entropy rate
//                 H = sum_s pi(s) H(P(. | s)) (pi: the stationary
//                 distribution over the V^k contexts) is the expected
//                 cross-entropy of the true model, in nats per token.
//   TextCorpus    the bytes of text files (vocabulary 256), split into a
//                 training part and a held-out tail; windows drawn from
//                 either.
//
// Sampling is a pure function of (seed, stream): batch i of a run is the same
// on every rank count, which is what makes data-parallel training comparable
// with single-rank training (each rank takes its rows of the global batch).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.hpp"

namespace paralab::model {

// A batch that owns its storage; view() is what Model takes.
struct SampledBatch {
  int batch = 0;
  int seq = 0;
  std::vector<int32_t> tokens;   // [batch * seq]
  std::vector<int32_t> targets;  // [batch * seq]: the next token
  Batch view() const { return {batch, seq, tokens, targets, {}}; }
  // Rows [first, first + count) of the batch (a data-parallel rank's share).
  SampledBatch rows(int first, int count) const;
};

class MarkovSource {
 public:
  // Transition rows are Dirichlet(concentration) draws: small concentrations
  // give peaked, low-entropy rows. Throws UsageError for vocab < 2, order < 1,
  // vocab^order > 2^20 contexts, or a non-positive concentration.
  MarkovSource(int vocab, int order, double concentration, uint64_t seed);

  int vocab() const { return vocab_; }
  int order() const { return order_; }
  double entropy_rate_nats() const { return entropy_rate_; }

  // `batch` sequences of `seq` inputs and their next tokens; each sequence
  // starts from a context drawn from the stationary distribution.
  SampledBatch sample(int batch, int seq, uint64_t stream) const;

 private:
  int context_of(const int32_t* last_tokens) const;
  int next_token(int context, double uniform) const;

  int vocab_, order_;
  int contexts_;
  std::vector<double> cumulative_;  // [contexts][vocab]: running sums of each row
  std::vector<double> stationary_;  // [contexts]
  double entropy_rate_ = 0;
  uint64_t seed_;
};

class TextCorpus {
 public:
  enum class Split { train, heldout };

  // Reads every regular file of `paths` (files, or directories read one
  // level deep, sorted by name; files ending in .dat or .u8 skipped: fortune's
  // indexes and links). Throws UsageError for a path that cannot be read or
  // when either split would hold fewer than 2 bytes.
  static TextCorpus load(const std::vector<std::string>& paths, double heldout_fraction);

  size_t size(Split split) const;
  // Windows of seq + 1 bytes at positions drawn from (seed, stream).
  SampledBatch sample(Split split, int batch, int seq, uint64_t stream, uint64_t seed) const;
  static constexpr int kVocab = 256;

 private:
  std::vector<uint8_t> bytes_;
  size_t heldout_start_ = 0;
};

}  // namespace paralab::model
