// Synthetic Markov language and byte-level text; see data.hpp.
#include "model/data.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

#include "core/errors.hpp"

namespace paralab::model {
namespace {

// One generator per (seed, stream, row): SplitMix64 of the three, so a row's
// tokens do not depend on how many rows or ranks there are.
std::mt19937_64 generator(uint64_t seed, uint64_t stream, uint64_t row) {
  uint64_t z = seed ^ (0x9e3779b97f4a7c15ull * (stream + 1)) ^ (0xbf58476d1ce4e5b9ull * (row + 1));
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return std::mt19937_64(z ^ (z >> 31));
}

double uniform(std::mt19937_64& rng) {
  return std::uniform_real_distribution<double>(0, 1)(rng);
}

// Index of the first running sum above u * total (a draw from the row).
int draw(const double* cumulative, int n, double u) {
  const double target = u * cumulative[n - 1];
  const int i = int(std::upper_bound(cumulative, cumulative + n, target) - cumulative);
  return std::min(i, n - 1);
}

}  // namespace

SampledBatch SampledBatch::rows(int first, int count) const {
  SampledBatch out;
  out.batch = count;
  out.seq = seq;
  const auto begin = size_t(first) * seq, end = size_t(first + count) * seq;
  out.tokens.assign(tokens.begin() + begin, tokens.begin() + end);
  out.targets.assign(targets.begin() + begin, targets.begin() + end);
  return out;
}

MarkovSource::MarkovSource(int vocab, int order, double concentration, uint64_t seed)
    : vocab_(vocab), order_(order), seed_(seed) {
  if (vocab < 2) throw UsageError("Markov source: the vocabulary needs at least 2 tokens");
  if (order < 1) throw UsageError("Markov source: the order must be at least 1");
  if (!(concentration > 0)) throw UsageError("Markov source: the concentration must be > 0");
  if (std::pow(double(vocab), order) > double(1 << 20))
    throw UsageError("Markov source: vocab^order must not exceed 2^20 contexts");
  contexts_ = static_cast<int>(std::lround(std::pow(double(vocab), order)));

  // Rows: Dirichlet(concentration) draws, as normalised Gamma variates.
  std::mt19937_64 rng = generator(seed, ~0ull, 0);
  std::gamma_distribution<double> gamma(concentration, 1.0);
  std::vector<double> rows(size_t(contexts_) * vocab);
  for (int c = 0; c < contexts_; ++c) {
    double* row = rows.data() + size_t(c) * vocab;
    double sum = 0;
    for (int t = 0; t < vocab; ++t) sum += row[t] = std::max(gamma(rng), 1e-300);
    for (int t = 0; t < vocab; ++t) row[t] /= sum;
  }

  // Stationary distribution over contexts by power iteration: every row is
  // positive, so the chain over contexts is irreducible and aperiodic.
  stationary_.assign(contexts_, 1.0 / contexts_);
  std::vector<double> next(contexts_);
  for (int iteration = 0; iteration < 100000; ++iteration) {
    std::fill(next.begin(), next.end(), 0.0);
    for (int c = 0; c < contexts_; ++c)
      for (int t = 0; t < vocab; ++t)
        next[(int64_t(c) * vocab + t) % contexts_] += stationary_[c] * rows[size_t(c) * vocab + t];
    double change = 0;
    for (int c = 0; c < contexts_; ++c) change += std::fabs(next[c] - stationary_[c]);
    stationary_.swap(next);
    if (change < 1e-13) break;
  }

  entropy_rate_ = 0;
  for (int c = 0; c < contexts_; ++c)
    for (int t = 0; t < vocab; ++t) {
      const double p = rows[size_t(c) * vocab + t];
      if (p > 0) entropy_rate_ -= stationary_[c] * p * std::log(p);
    }

  cumulative_ = rows;
  for (int c = 0; c < contexts_; ++c)
    std::partial_sum(cumulative_.begin() + size_t(c) * vocab,
                     cumulative_.begin() + size_t(c + 1) * vocab,
                     cumulative_.begin() + size_t(c) * vocab);
}

int MarkovSource::next_token(int context, double u) const {
  return draw(cumulative_.data() + size_t(context) * vocab_, vocab_, u);
}

SampledBatch MarkovSource::sample(int batch, int seq, uint64_t stream) const {
  if (batch < 1 || seq < 1) throw UsageError("Markov source: batch and sequence must be >= 1");
  std::vector<double> stationary_cumulative(stationary_.size());
  std::partial_sum(stationary_.begin(), stationary_.end(), stationary_cumulative.begin());
  SampledBatch out{batch, seq, {}, {}};
  out.tokens.reserve(size_t(batch) * seq);
  out.targets.reserve(size_t(batch) * seq);
  std::vector<int32_t> text(size_t(order_) + seq + 1);
  for (int b = 0; b < batch; ++b) {
    std::mt19937_64 rng = generator(seed_, stream, uint64_t(b));
    // The first context from the stationary distribution, written out as
    // its `order` tokens (oldest first), then the chain.
    int context = draw(stationary_cumulative.data(), contexts_, uniform(rng));
    for (int i = order_ - 1, c = context; i >= 0; --i, c /= vocab_) text[i] = c % vocab_;
    for (size_t i = order_; i < text.size(); ++i) {
      text[i] = next_token(context, uniform(rng));
      context = int((int64_t(context) * vocab_ + text[i]) % contexts_);
    }
    // Inputs are the last seq + 1 tokens but one; targets the next ones.
    const size_t first = text.size() - seq - 1;
    out.tokens.insert(out.tokens.end(), text.begin() + first, text.end() - 1);
    out.targets.insert(out.targets.end(), text.begin() + first + 1, text.end());
  }
  return out;
}

TextCorpus TextCorpus::load(const std::vector<std::string>& paths, double heldout_fraction) {
  namespace fs = std::filesystem;
  if (!(heldout_fraction > 0 && heldout_fraction < 1))
    throw UsageError("text corpus: the held-out fraction must be in (0, 1)");
  std::vector<fs::path> files;
  for (const auto& path : paths) {
    std::error_code error;
    if (fs::is_directory(path, error)) {
      std::vector<fs::path> found;
      for (const auto& entry : fs::directory_iterator(path, error))
        if (entry.is_regular_file() && entry.path().extension() != ".dat" &&
            entry.path().extension() != ".u8")
          found.push_back(entry.path());
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else if (fs::is_regular_file(path, error)) {
      files.emplace_back(path);
    } else {
      throw UsageError("text corpus: cannot read '" + path + "'");
    }
  }
  TextCorpus corpus;
  for (const auto& file : files) {
    std::ifstream in(file, std::ios::binary);
    corpus.bytes_.insert(corpus.bytes_.end(), std::istreambuf_iterator<char>(in),
                         std::istreambuf_iterator<char>());
  }
  corpus.heldout_start_ = size_t(double(corpus.bytes_.size()) * (1 - heldout_fraction));
  if (corpus.bytes_.size() < 2 || corpus.heldout_start_ < 2 ||
      corpus.bytes_.size() - corpus.heldout_start_ < 2)
    throw UsageError("text corpus: too little text in the given paths (" +
                     std::to_string(corpus.bytes_.size()) + " bytes)");
  return corpus;
}

size_t TextCorpus::size(Split split) const {
  return split == Split::train ? heldout_start_ : bytes_.size() - heldout_start_;
}

SampledBatch TextCorpus::sample(Split split, int batch, int seq, uint64_t stream,
                                uint64_t seed) const {
  const size_t length = size(split);
  if (batch < 1 || seq < 1) throw UsageError("text corpus: batch and sequence must be >= 1");
  if (size_t(seq) + 1 > length)
    throw UsageError("text corpus: the context (" + std::to_string(seq) + ") is longer than the " +
                     std::string(split == Split::train ? "training" : "held-out") + " text (" +
                     std::to_string(length) + " bytes)");
  const uint8_t* text = bytes_.data() + (split == Split::train ? 0 : heldout_start_);
  SampledBatch out{batch, seq, {}, {}};
  for (int b = 0; b < batch; ++b) {
    std::mt19937_64 rng = generator(seed, stream, uint64_t(b));
    const size_t start = std::uniform_int_distribution<size_t>(0, length - seq - 1)(rng);
    out.tokens.insert(out.tokens.end(), text + start, text + start + seq);
    out.targets.insert(out.targets.end(), text + start + 1, text + start + seq + 1);
  }
  return out;
}

}  // namespace paralab::model
