// data.cpp: synthetic click logs (data.hpp).
#include "dlrm/data.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <numeric>

#include "core/errors.hpp"

namespace paralab::dlrm {

namespace {

constexpr uint64_t kLabelStream = uint64_t{1} << 20;

uint64_t sample_key(uint64_t seed, Split split, int64_t batch, int64_t index) {
  return mix(mix(mix(seed, static_cast<uint64_t>(split)), static_cast<uint64_t>(batch)),
             static_cast<uint64_t>(index));
}

float normal(uint64_t key, uint64_t index) {
  const double u1 = 1.0 - uniform01(key, 2 * index);  // (0, 1]
  const double u2 = uniform01(key, 2 * index + 1);
  return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2));
}

double label_probability(double logit, LabelMode mode) {
  if (mode == LabelMode::threshold) return logit > 0 ? 1.0 : 0.0;
  return logit >= 0 ? 1.0 / (1.0 + std::exp(-logit)) : std::exp(logit) / (1.0 + std::exp(logit));
}

}  // namespace

void DataConfig::validate() const {
  if (!(zipf_exponent > 0) || !std::isfinite(zipf_exponent))
    throw UsageError("data: the Zipf exponent must be positive (got " +
                     std::to_string(zipf_exponent) + ")");
  if (teacher_dim < 1) throw UsageError("data: the teacher's embedding dimension must be >= 1");
  for (int w : teacher_bottom)
    if (w < 1) throw UsageError("data: the teacher's bottom widths must be >= 1");
  for (int w : teacher_top)
    if (w < 1) throw UsageError("data: the teacher's top widths must be >= 1");
  if (!(teacher_embedding_scale > 0) || !std::isfinite(teacher_embedding_scale))
    throw UsageError("data: the teacher's embedding scale must be positive");
  if (!(signal >= 0) || !std::isfinite(signal))
    throw UsageError("data: the label signal must be finite and >= 0");
  if (!(click_rate > 0 && click_rate < 1))
    throw UsageError("data: the click rate must be in (0, 1) (got " + std::to_string(click_rate) +
                     ")");
  if (calibration_samples < 2) throw UsageError("data: needs at least 2 calibration samples");
}

DlrmConfig teacher_config(const DlrmConfig& model, const DataConfig& data) {
  model.validate();
  data.validate();
  DlrmConfig t;
  t.dense_features = model.dense_features;
  t.embedding_dim = data.teacher_dim;
  t.bottom_layers = data.teacher_bottom;
  t.bottom_layers.push_back(data.teacher_dim);
  t.top_layers = data.teacher_top;
  t.top_layers.push_back(1);
  t.table_rows = model.table_rows;
  t.pooling = model.pooling;
  t.embedding_init_scale = data.teacher_embedding_scale;
  return t;
}

SyntheticClicks::SyntheticClicks(const DlrmConfig& model, const DataConfig& data)
    : model_(model),
      data_(data),
      teacher_(teacher_config(model, data),
               data.teacher_seed ? data.teacher_seed : mix(data.seed, 0x7eac4e7)) {
  model_.validate();
  // Labels must not depend on which batch a sample is made in.
  teacher_.set_batch_invariant(true);
  // Alias tables (Vose) of the Zipf popularity, one per table.
  popularity_.resize(static_cast<size_t>(model_.tables()));
  for (int t = 0; t < model_.tables(); ++t) {
    Popularity& p = popularity_[static_cast<size_t>(t)];
    const int64_t n = model_.table_rows[static_cast<size_t>(t)];
    p.rows = n;
    std::vector<double> w(static_cast<size_t>(n));
    for (int64_t q = 0; q < n; ++q)
      w[static_cast<size_t>(q)] = std::pow(static_cast<double>(q + 1), -data_.zipf_exponent);
    p.norm = std::accumulate(w.begin(), w.end(), 0.0);
    for (double& v : w) v *= static_cast<double>(n) / p.norm;
    p.prob.assign(static_cast<size_t>(n), 1.0f);
    p.alias.resize(static_cast<size_t>(n));
    std::iota(p.alias.begin(), p.alias.end(), 0);
    std::vector<int32_t> small, large;
    for (int64_t q = n - 1; q >= 0; --q)
      (w[static_cast<size_t>(q)] < 1.0 ? small : large).push_back(static_cast<int32_t>(q));
    while (!small.empty() && !large.empty()) {
      const int32_t s = small.back(), l = large.back();
      small.pop_back();
      p.prob[static_cast<size_t>(s)] = static_cast<float>(w[static_cast<size_t>(s)]);
      p.alias[static_cast<size_t>(s)] = l;
      w[static_cast<size_t>(l)] -= 1.0 - w[static_cast<size_t>(s)];
      if (w[static_cast<size_t>(l)] < 1.0) {
        large.pop_back();
        small.push_back(l);
      }
    }
    // Leftovers (rounding) keep their own column with probability 1.
    if (data_.scatter_hot_rows && n > 1) {
      auto a = static_cast<uint64_t>(static_cast<double>(n) * 0.6180339887498949) | 1u;
      while (std::gcd(a % static_cast<uint64_t>(n), static_cast<uint64_t>(n)) != 1) ++a;
      p.a = a % static_cast<uint64_t>(n);
      p.c = mix(data_.seed, 0x5ca7 + static_cast<uint64_t>(t)) % static_cast<uint64_t>(n);
    }
  }
  // Calibrate the teacher's logit: its mean and spread, then the bias that
  // gives the click rate.
  Batch cal;
  make_inputs(Split::calibration, 0, 0, data_.calibration_samples, cal);
  std::vector<float> z(static_cast<size_t>(cal.size));
  teacher_.forward(cal, z);
  double sum = 0, sq = 0;
  for (float v : z) sum += v;
  mean_ = sum / static_cast<double>(z.size());
  for (float v : z) sq += (v - mean_) * (v - mean_);
  std_ = std::sqrt(sq / static_cast<double>(z.size()));
  if (!(std_ > 0)) std_ = 1;
  auto rate = [&](double c) {
    double s = 0;
    for (float v : z) s += label_probability(data_.signal * (v - mean_) / std_ + c, data_.labels);
    return s / static_cast<double>(z.size());
  };
  double lo = -50, hi = 50;
  for (int i = 0; i < 100; ++i) {
    const double mid = 0.5 * (lo + hi);
    (rate(mid) < data_.click_rate ? lo : hi) = mid;
  }
  bias_ = 0.5 * (lo + hi);
}

int64_t SyntheticClicks::row_of_rank(int table, int64_t rank) const {
  const Popularity& p = popularity_[static_cast<size_t>(table)];
  return static_cast<int64_t>((p.a * static_cast<uint64_t>(rank) + p.c) %
                              static_cast<uint64_t>(p.rows));
}

double SyntheticClicks::rank_probability(int table, int64_t rank) const {
  const Popularity& p = popularity_[static_cast<size_t>(table)];
  return std::pow(static_cast<double>(rank + 1), -data_.zipf_exponent) / p.norm;
}

void SyntheticClicks::make_inputs(Split split, int64_t batch, int64_t first, int count,
                                  Batch& out) const {
  const int D = model_.dense_features, T = model_.tables();
  out.size = count;
  out.dense.resize(static_cast<size_t>(count) * D);
  out.tables.resize(static_cast<size_t>(T));
  for (int t = 0; t < T; ++t) {
    Lookups& l = out.tables[static_cast<size_t>(t)];
    const int pool = model_.pooling[static_cast<size_t>(t)];
    l.indices.resize(static_cast<size_t>(count) * pool);
    l.offsets.resize(static_cast<size_t>(count) + 1);
    for (int b = 0; b <= count; ++b) l.offsets[static_cast<size_t>(b)] = b * pool;
  }
#pragma omp parallel for schedule(static) if (count > 256)
  for (int b = 0; b < count; ++b) {
    const uint64_t key = sample_key(data_.seed, split, batch, first + b);
    const uint64_t dense_key = mix(key, 0);
    float* dense = out.dense.data() + static_cast<size_t>(b) * D;
    for (int f = 0; f < D; ++f) dense[f] = normal(dense_key, static_cast<uint64_t>(f));
    for (int t = 0; t < T; ++t) {
      const Popularity& p = popularity_[static_cast<size_t>(t)];
      const uint64_t table_key = mix(key, 1 + static_cast<uint64_t>(t));
      const int pool = model_.pooling[static_cast<size_t>(t)];
      int32_t* idx =
          out.tables[static_cast<size_t>(t)].indices.data() + static_cast<size_t>(b) * pool;
      for (int j = 0; j < pool; ++j) {
        const uint64_t r = splitmix64(mix(table_key, static_cast<uint64_t>(j)));
        const auto column = static_cast<int64_t>(((r >> 32) * static_cast<uint64_t>(p.rows)) >> 32);
        const float coin = static_cast<float>(static_cast<double>(r & 0xffffffffu) * 0x1.0p-32);
        const int64_t rank = coin < p.prob[static_cast<size_t>(column)]
                                 ? column
                                 : p.alias[static_cast<size_t>(column)];
        idx[j] = static_cast<int32_t>((p.a * static_cast<uint64_t>(rank) + p.c) %
                                      static_cast<uint64_t>(p.rows));
      }
    }
  }
}

void SyntheticClicks::make_batch(Split split, int64_t batch, int64_t first, int count, Batch& out) {
  make_inputs(split, batch, first, count, out);
  out.label_logits.resize(static_cast<size_t>(count));
  out.labels.resize(static_cast<size_t>(count));
  teacher_.forward(out, out.label_logits);
  for (int b = 0; b < count; ++b) {
    float& z = out.label_logits[static_cast<size_t>(b)];
    const double logit = data_.signal * (z - mean_) / std_ + bias_;
    z = static_cast<float>(logit);
    const double u =
        uniform01(mix(sample_key(data_.seed, split, batch, first + b), kLabelStream), 0);
    const bool click = data_.labels == LabelMode::threshold
                           ? logit > 0
                           : u < label_probability(logit, LabelMode::bernoulli);
    out.labels[static_cast<size_t>(b)] = click ? 1.0f : 0.0f;
  }
}

Batch SyntheticClicks::make_batch(Split split, int64_t batch, int64_t first, int count) {
  Batch b;
  make_batch(split, batch, first, count, b);
  return b;
}

}  // namespace paralab::dlrm
