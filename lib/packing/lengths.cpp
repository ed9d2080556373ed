// lengths.cpp: document-length generators from a text spec (lognormal,
// Pareto, Normal(mean, std) x context, mixtures, constant, uniform, a file)
// and the paper-like preset. Random numbers come from our own transforms of
// std::mt19937_64 bits, so a seed gives the same lengths with any standard
// library (std::*_distribution algorithms are implementation-defined).
#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <numbers>
#include <random>
#include <sstream>
#include <string>

#include "core/errors.hpp"
#include "packing/packing.hpp"

namespace paralab::packing {
namespace {

// A uniform double in (0, 1): 53 random bits, never exactly 0 (log-safe).
double uniform01(std::mt19937_64& rng) {
  return (double(rng() >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

double standard_normal(std::mt19937_64& rng) {
  const double u1 = uniform01(rng), u2 = uniform01(rng);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

int64_t clip_length(double value, int64_t max_length) {
  if (!(value >= 1.0)) return 1;  // also catches NaN
  if (value >= double(max_length)) return max_length;
  return std::max<int64_t>(1, std::llround(value));
}

// "name:k=v,k=v" split into the name and its parameters.
struct ParsedSpec {
  std::string name;
  std::map<std::string, double> params;
};

[[noreturn]] void bad_spec(std::string_view spec, const std::string& why) {
  throw UsageError("length spec '" + std::string(spec) + "': " + why);
}

double parse_number(std::string_view spec, const std::string& key, const std::string& text) {
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || !std::isfinite(value))
    bad_spec(spec, "value of '" + key + "' ('" + text + "') is not a number");
  return value;
}

ParsedSpec parse_spec(std::string_view spec) {
  ParsedSpec parsed;
  const size_t colon = spec.find(':');
  parsed.name = std::string(spec.substr(0, colon));
  if (colon == std::string_view::npos) return parsed;
  std::string rest(spec.substr(colon + 1));
  std::stringstream stream(rest);
  std::string item;
  while (std::getline(stream, item, ',')) {
    const size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      bad_spec(spec, "parameter '" + item + "' is not KEY=VALUE");
    const std::string key = item.substr(0, eq);
    if (parsed.params.count(key)) bad_spec(spec, "parameter '" + key + "' given twice");
    parsed.params[key] = parse_number(spec, key, item.substr(eq + 1));
  }
  return parsed;
}

// Takes the parameters a generator knows; anything left over is an error.
class ParamReader {
 public:
  ParamReader(std::string_view spec, ParsedSpec parsed) : spec_(spec), parsed_(std::move(parsed)) {}
  double required(const std::string& key) {
    auto it = parsed_.params.find(key);
    if (it == parsed_.params.end())
      bad_spec(spec_, "'" + parsed_.name + "' needs the parameter '" + key + "'");
    const double value = it->second;
    parsed_.params.erase(it);
    return value;
  }
  double optional(const std::string& key, double fallback) {
    return parsed_.params.count(key) ? required(key) : fallback;
  }
  double positive(const std::string& key) {
    const double value = required(key);
    if (!(value > 0)) bad_spec(spec_, "'" + key + "' must be positive");
    return value;
  }
  void finish() const {
    if (!parsed_.params.empty())
      bad_spec(spec_,
               "'" + parsed_.name + "' has no parameter '" + parsed_.params.begin()->first + "'");
  }

 private:
  std::string_view spec_;
  ParsedSpec parsed_;
};

// A distribution over positive reals, before clipping to [1, max_length].
class Sampler {
 public:
  virtual ~Sampler() = default;
  virtual double sample(std::mt19937_64& rng) const = 0;
  virtual std::string describe() const = 0;
};

std::string format(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

class LognormalSampler : public Sampler {
 public:
  LognormalSampler(double mu, double sigma) : mu_(mu), sigma_(sigma) {}
  double sample(std::mt19937_64& rng) const override {
    return std::exp(mu_ + sigma_ * standard_normal(rng));
  }
  std::string describe() const override {
    return "lognormal(mu=" + format(mu_) + ", sigma=" + format(sigma_) + ")";
  }

 private:
  double mu_, sigma_;
};

// Pareto type I: P(X > x) = (min / x)^alpha for x >= min.
class ParetoSampler : public Sampler {
 public:
  ParetoSampler(double alpha, double min) : alpha_(alpha), min_(min) {}
  double sample(std::mt19937_64& rng) const override {
    return min_ / std::pow(uniform01(rng), 1.0 / alpha_);
  }
  std::string describe() const override {
    return "pareto(alpha=" + format(alpha_) + ", min=" + format(min_) + ")";
  }

 private:
  double alpha_, min_;
};

// Normal(mean, std) as a fraction of the context.
class NormalSampler : public Sampler {
 public:
  NormalSampler(double mean, double std, int64_t context)
      : mean_(mean), std_(std), context_(context) {}
  double sample(std::mt19937_64& rng) const override {
    const double fraction = std::min(1.0, mean_ + std_ * standard_normal(rng));
    return fraction * double(context_);  // clipped to the context, then to max_length
  }
  std::string describe() const override {
    return "normal(mean=" + format(mean_) + ", std=" + format(std_) + ") x " +
           std::to_string(context_);
  }

 private:
  double mean_, std_;
  int64_t context_;
};

class UniformSampler : public Sampler {
 public:
  UniformSampler(double min, double max) : min_(min), max_(max) {}
  double sample(std::mt19937_64& rng) const override {
    return min_ + (max_ - min_) * uniform01(rng);
  }
  std::string describe() const override {
    return "uniform(" + format(min_) + ", " + format(max_) + ")";
  }

 private:
  double min_, max_;
};

class ConstantSampler : public Sampler {
 public:
  explicit ConstantSampler(double length) : length_(length) {}
  double sample(std::mt19937_64&) const override { return length_; }
  std::string describe() const override { return "const(" + format(length_) + ")"; }

 private:
  double length_;
};

class MixtureSampler : public Sampler {
 public:
  void add(double weight, std::unique_ptr<Sampler> part) {
    total_ += weight;
    cumulative_.push_back(total_);
    parts_.push_back(std::move(part));
  }
  double sample(std::mt19937_64& rng) const override {
    const double pick = uniform01(rng) * total_;
    size_t i = 0;
    while (i + 1 < parts_.size() && pick >= cumulative_[i]) ++i;
    return parts_[i]->sample(rng);
  }
  std::string describe() const override {
    std::string text = "mix(";
    double previous = 0;
    for (size_t i = 0; i < parts_.size(); ++i) {
      if (i) text += " | ";
      text += format((cumulative_[i] - previous) / total_) + " * " + parts_[i]->describe();
      previous = cumulative_[i];
    }
    return text + ")";
  }

 private:
  double total_ = 0;
  std::vector<double> cumulative_;
  std::vector<std::unique_ptr<Sampler>> parts_;
};

std::unique_ptr<Sampler> make_sampler(std::string_view spec, std::string_view whole,
                                      int64_t context);

std::unique_ptr<Sampler> make_mixture(std::string_view body, std::string_view whole,
                                      int64_t context) {
  auto mixture = std::make_unique<MixtureSampler>();
  size_t begin = 0;
  while (begin <= body.size()) {
    size_t end = body.find('|', begin);
    if (end == std::string_view::npos) end = body.size();
    const std::string_view part = body.substr(begin, end - begin);
    const size_t star = part.find('*');
    if (star == std::string_view::npos)
      bad_spec(whole, "mixture part '" + std::string(part) + "' is not WEIGHT*SPEC");
    const std::string weight_text(part.substr(0, star));
    const double weight = parse_number(whole, "weight", weight_text);
    if (!(weight > 0)) bad_spec(whole, "mixture weight '" + weight_text + "' must be positive");
    mixture->add(weight, make_sampler(part.substr(star + 1), whole, context));
    begin = end + 1;
  }
  return mixture;
}

std::unique_ptr<Sampler> make_sampler(std::string_view spec, std::string_view whole,
                                      int64_t context) {
  if (spec.starts_with("mix:")) return make_mixture(spec.substr(4), whole, context);
  ParsedSpec parsed = parse_spec(spec);
  const std::string name = parsed.name;
  ParamReader params(whole, std::move(parsed));
  std::unique_ptr<Sampler> sampler;
  if (name == "lognormal") {
    const double mu = params.required("mu");
    sampler = std::make_unique<LognormalSampler>(mu, params.positive("sigma"));
  } else if (name == "pareto") {
    const double alpha = params.positive("alpha");
    sampler = std::make_unique<ParetoSampler>(alpha, params.positive("min"));
  } else if (name == "normal") {
    const double mean = params.required("mean");
    sampler = std::make_unique<NormalSampler>(mean, params.positive("std"), context);
  } else if (name == "uniform") {
    const double min = params.positive("min"), max = params.positive("max");
    if (max < min) bad_spec(whole, "uniform max must be at least min");
    sampler = std::make_unique<UniformSampler>(min, max);
  } else if (name == "const") {
    sampler = std::make_unique<ConstantSampler>(params.positive("length"));
  } else if (name.empty()) {
    bad_spec(whole, "empty distribution name");
  } else {
    bad_spec(whole, "unknown distribution '" + name +
                        "' (expected lognormal, pareto, normal, uniform, const, mix or file)");
  }
  params.finish();
  return sampler;
}

class SampledLengths : public LengthSource {
 public:
  SampledLengths(std::unique_ptr<Sampler> sampler, int64_t max_length, uint64_t seed)
      : sampler_(std::move(sampler)), max_length_(max_length), rng_(seed) {}
  int64_t next() override { return clip_length(sampler_->sample(rng_), max_length_); }
  std::string describe() const override {
    return sampler_->describe() + " clipped to [1, " + std::to_string(max_length_) + "]";
  }

 private:
  std::unique_ptr<Sampler> sampler_;
  int64_t max_length_;
  std::mt19937_64 rng_;
};

// Lengths from a file, one per line (blank lines and '#' comments skipped),
// cycled; the seed rotates the starting line so runs with different seeds
// see different orders of the same data.
class FileLengths : public LengthSource {
 public:
  FileLengths(const std::string& path, int64_t max_length, uint64_t seed) : path_(path) {
    std::ifstream in(path);
    if (!in) throw UsageError("length file '" + path + "' cannot be read");
    std::string line;
    int line_number = 0;
    while (std::getline(in, line)) {
      ++line_number;
      const size_t hash = line.find('#');
      if (hash != std::string::npos) line.resize(hash);
      std::istringstream fields(line);
      long long value = 0;
      if (!(fields >> value)) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        throw UsageError("length file '" + path + "' line " + std::to_string(line_number) + ": '" +
                         line + "' is not a length");
      }
      std::string extra;
      if (fields >> extra || value <= 0)
        throw UsageError("length file '" + path + "' line " + std::to_string(line_number) + ": '" +
                         line + "' is not a positive length");
      lengths_.push_back(std::min<int64_t>(value, max_length));
    }
    if (lengths_.empty()) throw UsageError("length file '" + path + "' holds no lengths");
    position_ = seed % lengths_.size();
    max_length_ = max_length;
  }
  int64_t next() override {
    const int64_t length = lengths_[position_];
    position_ = (position_ + 1) % lengths_.size();
    return length;
  }
  std::string describe() const override {
    return "file " + path_ + " (" + std::to_string(lengths_.size()) +
           " lengths, cycled) clipped to [1, " + std::to_string(max_length_) + "]";
  }

 private:
  std::string path_;
  std::vector<int64_t> lengths_;
  size_t position_ = 0;
  int64_t max_length_ = 0;
};

}  // namespace

std::unique_ptr<LengthSource> make_length_source(std::string_view spec, int64_t context,
                                                 int64_t max_length, uint64_t seed) {
  if (context <= 0)
    throw UsageError("length spec '" + std::string(spec) + "': context " + std::to_string(context) +
                     " must be positive");
  if (max_length <= 0)
    throw UsageError("length spec '" + std::string(spec) + "': max_length " +
                     std::to_string(max_length) + " must be positive");
  if (spec.starts_with("file:")) {
    const std::string path(spec.substr(5));
    if (path.empty()) bad_spec(spec, "'file:' needs a path");
    return std::make_unique<FileLengths>(path, max_length, seed);
  }
  return std::make_unique<SampledLengths>(make_sampler(spec, spec, context), max_length, seed);
}

std::vector<Document> next_global_batch(LengthSource& source, int64_t tokens, int64_t iteration,
                                        int64_t& next_id) {
  if (tokens <= 0)
    throw UsageError("a global batch needs a positive token count, got " + std::to_string(tokens));
  std::vector<Document> docs;
  int64_t sum = 0;
  while (sum < tokens) {
    const int64_t length = source.next();
    docs.push_back(Document{next_id++, length, iteration});
    sum += length;
  }
  return docs;
}

GlobalBatches::GlobalBatches(std::unique_ptr<LengthSource> source, int64_t tokens)
    : source_(std::move(source)), tokens_(tokens) {
  if (!source_) throw UsageError("GlobalBatches needs a length source");
  if (tokens <= 0)
    throw UsageError("a global batch needs a positive token count, got " + std::to_string(tokens));
}

std::vector<Document> GlobalBatches::next() {
  // Draw against the running target, not this batch's own: the last document
  // of a batch is whole, and what it brought beyond the target is taken off
  // the next batch, so the mean stays `tokens` per batch.
  const int64_t target = (batches_ + 1) * tokens_;
  std::vector<Document> docs;
  while (drawn_ < target) {
    const int64_t length = source_->next();
    docs.push_back(Document{next_id_++, length, batches_});
    drawn_ += length;
  }
  ++batches_;
  return docs;
}

std::string paper_like_spec(int64_t context) {
  if (context <= 0)
    throw UsageError("paper_like_spec: context " + std::to_string(context) + " must be positive");
  // 80% of documents short (lognormal, median context / 54: 2.4K tokens at
  // 128K) and 20% from a Pareto tail (alpha 0.8 from context / 8), which puts
  // most tokens in long documents and ~4% of documents at the context; the
  // parameters scale with the context. Chosen so that fixed-length greedy
  // packing of one global batch had the paper's imbalance (1.41) under an
  // earlier setting (FLOP workload, load 0.9); docs/packing.md.
  const double c = double(context);
  std::ostringstream spec;
  spec.precision(6);
  spec << "mix:0.8*lognormal:mu=" << std::log(c / 53.7) << ",sigma=1"
       << "|0.2*pareto:alpha=0.8,min=" << std::max(1.0, c / 8);
  return spec.str();
}

}  // namespace paralab::packing
