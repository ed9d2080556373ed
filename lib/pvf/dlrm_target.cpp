#include "pvf/dlrm_target.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "core/errors.hpp"
#include "dlrm/metrics.hpp"
#include "kernels/threads.hpp"

namespace paralab::pvf {

namespace {

using dlrm::Mlp;

// One layer of Mlp's batch-invariant forward, the same loops in the same
// order (bias, then y_i += x_ij W^T[j, :] for j ascending, then ReLU), so a
// layer rerun here gives the bits Mlp::forward gives.
void layer_forward(const Mlp& mlp, int l, const float* x, int n, std::vector<float>& y,
                   std::vector<float>& wt) {
  const int k = mlp.widths()[static_cast<size_t>(l)], m = mlp.widths()[static_cast<size_t>(l) + 1];
  y.resize(static_cast<size_t>(n) * m);
  const float* b = mlp.bias(l);
  const float* w = mlp.weight(l);
  for (int i = 0; i < n; ++i) std::copy(b, b + m, y.data() + static_cast<size_t>(i) * m);
  wt.resize(static_cast<size_t>(k) * m);
  for (int o = 0; o < m; ++o)
    for (int j = 0; j < k; ++j)
      wt[static_cast<size_t>(j) * m + o] = w[static_cast<size_t>(o) * k + j];
#pragma omp parallel for schedule(static) if (n > 64)
  for (int i = 0; i < n; ++i) {
    float* yi = y.data() + static_cast<size_t>(i) * m;
    const float* xi = x + static_cast<size_t>(i) * k;
    for (int j = 0; j < k; ++j) {
      const float xv = xi[j];
      const float* row = wt.data() + static_cast<size_t>(j) * m;
      for (int o = 0; o < m; ++o) yi[o] += xv * row[o];
    }
  }
  if (mlp.relu(l))
    for (float& v : y) v = v > 0.0f ? v : 0.0f;
}

// Output columns `cols` of layer l, the others copied from `clean` (the
// layer's clean output). Each column runs layer_forward's operations for that
// output alone, in its order (bias, then + x_ij W[o, j] for j ascending, then
// ReLU; no FMA contraction on either path), so its bits are layer_forward's:
// a corrupted weight W[o, j] or bias b[o] costs one column, not the layer.
void layer_columns(const Mlp& mlp, int l, const float* x, int n, const std::vector<int>& cols,
                   const std::vector<float>& clean, std::vector<float>& y) {
  const int k = mlp.widths()[static_cast<size_t>(l)], m = mlp.widths()[static_cast<size_t>(l) + 1];
  const float* b = mlp.bias(l);
  const float* w = mlp.weight(l);
  y = clean;
  for (int i = 0; i < n; ++i) {
    const float* xi = x + static_cast<size_t>(i) * k;
    for (int o : cols) {
      const float* wo = w + static_cast<size_t>(o) * k;
      float acc = b[o];
      for (int j = 0; j < k; ++j) acc += xi[j] * wo[j];
      y[static_cast<size_t>(i) * m + o] = mlp.relu(l) ? (acc > 0.0f ? acc : 0.0f) : acc;
    }
  }
}

// Layers [from, layers) on x; outputs in out[from..] (out sized to layers).
const float* run_layers(const Mlp& mlp, int from, const float* x, int n,
                        std::vector<std::vector<float>>& out, std::vector<float>& wt) {
  out.resize(static_cast<size_t>(mlp.layers()));
  for (int l = from; l < mlp.layers(); ++l) {
    layer_forward(mlp, l, x, n, out[static_cast<size_t>(l)], wt);
    x = out[static_cast<size_t>(l)].data();
  }
  return x;
}

double ctr(float logit) {
  return 1.0 / (1.0 + std::exp(-static_cast<double>(logit)));
}

}  // namespace

TrainingSummary train_dlrm(dlrm::Dlrm& model, dlrm::SyntheticClicks& data,
                           const DlrmTraining& training, const dlrm::Batch& eval) {
  const int threads = kernels::threads();
  kernels::set_threads(1);
  const auto t0 = std::chrono::steady_clock::now();
  TrainingSummary s;
  dlrm::Batch batch;
  for (int step = 0; step < training.steps; ++step) {
    data.make_batch(dlrm::Split::train, step, 0, training.batch, batch);
    const double loss = model.train_step(batch, training.optimizer);
    if (step == 0) s.first_loss = loss;
    s.last_loss = loss;
  }
  std::vector<float> logits(static_cast<size_t>(eval.size));
  model.forward(eval, logits);
  s.eval_auc = dlrm::auc(logits, eval.labels);
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  kernels::set_threads(threads);
  return s;
}

DlrmTarget::DlrmTarget(dlrm::Dlrm& model, dlrm::Batch eval, double ctr_threshold,
                       std::vector<DlrmComponent> components)
    : model_(model),
      eval_(std::move(eval)),
      threshold_(ctr_threshold),
      components_(std::move(components)) {
  dlrm::check_batch(model_.config(), eval_);
  if (components_.empty()) throw std::invalid_argument("DlrmTarget: no components");
  model_.set_batch_invariant(true);
  build_parts();
  index_lookups();
  prepare(DType::fp32);
}

void DlrmTarget::build_parts() {
  auto add = [&](DlrmBlock block, int index, bool weight, float* data, size_t size) {
    Tensor t;
    t.data = data;
    t.block = block;
    t.index = index;
    t.weight = weight;
    t.master.assign(data, data + size);
    tensors_.push_back(std::move(t));
  };
  for (int t = 0; t < model_.config().tables(); ++t)
    add(DlrmBlock::embedding, t, false, model_.table(t).weights().data(),
        model_.table(t).weights().size());
  const std::pair<Mlp*, DlrmBlock> mlps[2] = {{&model_.bottom(), DlrmBlock::bottom},
                                              {&model_.top(), DlrmBlock::top}};
  for (auto [mlp, block] : mlps)
    for (int l = 0; l < mlp->layers(); ++l) {
      const size_t in = static_cast<size_t>(mlp->widths()[static_cast<size_t>(l)]);
      const size_t out = static_cast<size_t>(mlp->widths()[static_cast<size_t>(l) + 1]);
      add(block, l, true, mlp->weight(l), in * out);
      add(block, l, false, mlp->bias(l), out);
    }
  // A component's tensors in model order: a part's MLP tensors ascend by layer.
  parts_.resize(components_.size());
  for (size_t c = 0; c < components_.size(); ++c) {
    const DlrmComponent& k = components_[c];
    Part& part = parts_[c];
    part.offsets.push_back(0);
    for (size_t i = 0; i < tensors_.size(); ++i) {
      const Tensor& t = tensors_[i];
      const bool kind = t.block == DlrmBlock::embedding || (t.weight ? k.weight : k.bias);
      if (t.block != k.block || !kind || (k.index >= 0 && t.index != k.index)) continue;
      part.tensors.push_back(static_cast<int>(i));
      part.offsets.push_back(part.offsets.back() + t.master.size());
    }
    if (part.tensors.empty())
      throw std::invalid_argument("DlrmTarget: component " + k.name + " selects no parameter");
  }
}

void DlrmTarget::index_lookups() {
  row_samples_.resize(static_cast<size_t>(model_.config().tables()));
  for (size_t t = 0; t < row_samples_.size(); ++t) {
    const dlrm::Lookups& l = eval_.tables[t];
    auto& pairs = row_samples_[t];
    for (int b = 0; b < l.bags(); ++b)
      for (int32_t k = l.offsets[static_cast<size_t>(b)]; k < l.offsets[static_cast<size_t>(b) + 1];
           ++k)
        pairs.emplace_back(l.indices[static_cast<size_t>(k)], b);
    std::sort(pairs.begin(), pairs.end());
    pairs.erase(std::unique(pairs.begin(), pairs.end()), pairs.end());
  }
}

std::vector<DlrmComponent> default_dlrm_components() {
  return {{"embedding", DlrmBlock::embedding, -1, true, true},
          {"bottom.weight", DlrmBlock::bottom, -1, true, false},
          {"bottom.bias", DlrmBlock::bottom, -1, false, true},
          {"top.weight", DlrmBlock::top, -1, true, false},
          {"top.bias", DlrmBlock::top, -1, false, true}};
}

DlrmComponent parse_dlrm_component(const std::string& name, const dlrm::DlrmConfig& config) {
  const auto unknown = [&] {
    return UsageError("unknown DLRM component '" + name +
                      "'; known: embedding, bottom.weight, bottom.bias, top.weight, top.bias, "
                      "bottom, top, embedding.T for table T, bottom.L, bottom.L.weight, "
                      "bottom.L.bias (top.L... likewise) for MLP layer L (the dot interaction "
                      "has no parameters)");
  };
  // block[.index][.weight|.bias], the index a plain decimal.
  std::vector<std::string> f;
  for (size_t i = 0;;) {
    const size_t j = name.find('.', i);
    f.push_back(name.substr(i, j == std::string::npos ? std::string::npos : j - i));
    if (j == std::string::npos) break;
    i = j + 1;
  }
  DlrmComponent c;
  c.name = name;
  int count = 0;  // tables or the MLP's layers
  const char* what = "";
  if (f[0] == "embedding") {
    c.block = DlrmBlock::embedding;
    count = config.tables();
    what = "tables";
  } else if (f[0] == "bottom" || f[0] == "top") {
    c.block = f[0] == "bottom" ? DlrmBlock::bottom : DlrmBlock::top;
    count = static_cast<int>((f[0] == "bottom" ? config.bottom_layers : config.top_layers).size());
    what = f[0] == "bottom" ? "bottom MLP layers" : "top MLP layers";
  } else {
    throw unknown();
  }
  size_t next = 1;
  const bool indexed =
      f.size() > 1 && !f[1].empty() && f[1].size() <= 9 &&
      std::all_of(f[1].begin(), f[1].end(), [](char ch) { return ch >= '0' && ch <= '9'; });
  if (indexed) {
    c.index = std::stoi(f[1]);
    next = 2;
  }
  if (c.block == DlrmBlock::embedding) {
    if (f.size() != next) throw unknown();
  } else if (f.size() == next + 1 && (f[next] == "weight" || f[next] == "bias")) {
    c.weight = f[next] == "weight";
    c.bias = !c.weight;
  } else if (f.size() != next) {
    throw unknown();
  }
  if (c.index >= count)
    throw UsageError("DLRM component '" + name +
                     "': " + (c.block == DlrmBlock::embedding ? "table " : "layer ") +
                     std::to_string(c.index) + " out of range (the model has " +
                     std::to_string(count) + " " + what + ": 0 to " + std::to_string(count - 1) +
                     ")");
  // The canonical name (embedding.007 is embedding.7).
  if (c.index >= 0) {
    c.name = f[0] + "." + std::to_string(c.index);
    if (c.weight != c.bias) c.name += c.weight ? ".weight" : ".bias";
  }
  return c;
}

uint64_t dlrm_component_elements(const dlrm::DlrmConfig& config, const DlrmComponent& component) {
  uint64_t n = 0;
  if (component.block == DlrmBlock::embedding) {
    for (size_t t = 0; t < config.table_rows.size(); ++t)
      if (component.index < 0 || static_cast<size_t>(component.index) == t)
        n += static_cast<uint64_t>(config.table_rows[t]) * config.embedding_dim;
    return n;
  }
  const bool bottom = component.block == DlrmBlock::bottom;
  std::vector<int> widths{bottom ? config.dense_features : config.interaction_width()};
  for (int w : bottom ? config.bottom_layers : config.top_layers) widths.push_back(w);
  for (size_t l = 0; l + 1 < widths.size(); ++l) {
    if (component.index >= 0 && static_cast<size_t>(component.index) != l) continue;
    const uint64_t out = static_cast<uint64_t>(widths[l + 1]);
    if (component.weight) n += out * static_cast<uint64_t>(widths[l]);
    if (component.bias) n += out;
  }
  return n;
}

std::string DlrmTarget::component_name(int component) const {
  return components_[static_cast<size_t>(component)].name;
}

uint64_t DlrmTarget::elements(int component) const {
  return parts_[static_cast<size_t>(component)].offsets.back();
}

void DlrmTarget::prepare(DType dtype) {
  for (Tensor& t : tensors_) {
    t.storage = make_storage(dtype, t.master);
    for (size_t i = 0; i < t.master.size(); ++i) t.data[i] = t.storage.round(t.master[i]);
  }
  const dlrm::DlrmConfig& c = model_.config();
  const int n = eval_.size, d = c.embedding_dim;
  const size_t ld = static_cast<size_t>(c.features()) * d;
  const float* x = run_layers(model_.bottom(), 0, eval_.dense.data(), n, bottom_out_, wt_);
  t_.assign(static_cast<size_t>(n) * ld, 0.0f);
  for (int b = 0; b < n; ++b)
    std::copy(x + static_cast<size_t>(b) * d, x + static_cast<size_t>(b + 1) * d,
              t_.data() + b * ld);
  for (int t = 0; t < c.tables(); ++t)
    model_.table(t).forward(eval_.tables[static_cast<size_t>(t)], 0, n,
                            t_.data() + static_cast<size_t>(1 + t) * d, ld);
  r_.resize(static_cast<size_t>(n) * c.interaction_width());
  dlrm::interaction_forward(t_.data(), n, c.features(), d, r_.data());
  const float* z = run_layers(model_.top(), 0, r_.data(), n, top_out_, wt_);
  clean_logits_.assign(z, z + n);
  clean_ctr_.resize(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i)
    clean_ctr_[static_cast<size_t>(i)] = ctr(clean_logits_[static_cast<size_t>(i)]);
}

std::pair<DlrmTarget::Tensor*, uint64_t> DlrmTarget::locate(int component, uint64_t element) {
  Part& part = parts_[static_cast<size_t>(component)];
  if (element >= part.offsets.back()) throw std::out_of_range("DlrmTarget: element out of range");
  const auto it = std::upper_bound(part.offsets.begin(), part.offsets.end(), element);
  const size_t i = static_cast<size_t>(it - part.offsets.begin()) - 1;
  return {&tensors_[static_cast<size_t>(part.tensors[i])], element - part.offsets[i]};
}

float* DlrmTarget::parameter(int component, uint64_t element) {
  auto [tensor, offset] = locate(component, element);
  return tensor->data + offset;
}

void DlrmTarget::apply(int component, std::span<const ElementFault> faults,
                       std::vector<Change>& changes) {
  changes.clear();
  for (const ElementFault& f : faults) {
    auto [tensor, offset] = locate(component, f.element);
    float* p = tensor->data + offset;
    changes.push_back({p, *p});
    // The stored value is exactly representable (prepare), so encode is exact.
    *p = tensor->storage.decode(f.op.apply(tensor->storage.encode(*p)));
  }
}

void DlrmTarget::restore(std::vector<Change>& changes) {
  for (auto it = changes.rbegin(); it != changes.rend(); ++it) *it->p = it->old;
  changes.clear();
}

DlrmTarget::Start DlrmTarget::first_touched(int component, std::span<const ElementFault> faults) {
  // Faults are sorted by element, and a part's tensors ascend by layer (a
  // layer's weights and bias both feed its output columns).
  Start start{locate(component, faults.front().element).first->index, {}};
  const bool bottom = components_[static_cast<size_t>(component)].block == DlrmBlock::bottom;
  const dlrm::Mlp& mlp = bottom ? model_.bottom() : model_.top();
  const uint64_t in = static_cast<uint64_t>(mlp.widths()[static_cast<size_t>(start.layer)]);
  for (const ElementFault& f : faults) {
    auto [tensor, offset] = locate(component, f.element);
    if (tensor->index != start.layer) break;
    const int o = static_cast<int>(tensor->weight ? offset / in : offset);  // W [out, in], b [out]
    if (std::find(start.cols.begin(), start.cols.end(), o) == start.cols.end())
      start.cols.push_back(o);
  }
  return start;
}

const float* DlrmTarget::rerun(const Mlp& mlp, const std::vector<std::vector<float>>& clean,
                               const float* input, const Start& start, int n) {
  scratch_layers_.resize(static_cast<size_t>(mlp.layers()));
  const size_t l = static_cast<size_t>(start.layer);
  const float* x = l == 0 ? input : clean[l - 1].data();
  // Columns while they are few; the whole layer gives the same bits.
  if (2 * start.cols.size() < static_cast<size_t>(mlp.widths()[l + 1]))
    layer_columns(mlp, start.layer, x, n, start.cols, clean[l], scratch_layers_[l]);
  else
    layer_forward(mlp, start.layer, x, n, scratch_layers_[l], wt_);
  x = scratch_layers_[l].data();
  for (int k = start.layer + 1; k < mlp.layers(); ++k) {
    layer_forward(mlp, k, x, n, scratch_layers_[static_cast<size_t>(k)], wt_);
    x = scratch_layers_[static_cast<size_t>(k)].data();
  }
  return x;
}

void DlrmTarget::partial_top(const Start& start, std::vector<float>& logits) {
  const float* z = rerun(model_.top(), top_out_, r_.data(), start, eval_.size);
  logits.assign(z, z + eval_.size);
}

void DlrmTarget::partial_bottom(const Start& start, std::vector<float>& logits) {
  const dlrm::DlrmConfig& c = model_.config();
  const int n = eval_.size, d = c.embedding_dim;
  const size_t ld = static_cast<size_t>(c.features()) * d;
  const float* x = rerun(model_.bottom(), bottom_out_, eval_.dense.data(), start, n);
  scratch_t_ = t_;
  for (int b = 0; b < n; ++b)
    std::copy(x + static_cast<size_t>(b) * d, x + static_cast<size_t>(b + 1) * d,
              scratch_t_.data() + b * ld);
  scratch_r_.resize(r_.size());
  dlrm::interaction_forward(scratch_t_.data(), n, c.features(), d, scratch_r_.data());
  const float* z = run_layers(model_.top(), 0, scratch_r_.data(), n, scratch_layers_, wt_);
  logits.assign(z, z + n);
}

void DlrmTarget::partial_embedding(int component, std::span<const ElementFault> faults,
                                   std::vector<float>& logits) {
  const dlrm::DlrmConfig& c = model_.config();
  const int d = c.embedding_dim;
  const size_t ld = static_cast<size_t>(c.features()) * d;
  // The samples that look up a corrupted row, and the tables to pool again.
  affected_.clear();
  std::vector<int> tables;
  for (const ElementFault& f : faults) {
    auto [tensor, offset] = locate(component, f.element);
    const int32_t row = static_cast<int32_t>(offset / static_cast<uint64_t>(d));
    const auto& pairs = row_samples_[static_cast<size_t>(tensor->index)];
    auto it = std::lower_bound(pairs.begin(), pairs.end(), std::make_pair(row, int32_t{0}));
    for (; it != pairs.end() && it->first == row; ++it) affected_.push_back(it->second);
    tables.push_back(tensor->index);
  }
  logits = clean_logits_;
  std::sort(affected_.begin(), affected_.end());
  affected_.erase(std::unique(affected_.begin(), affected_.end()), affected_.end());
  std::sort(tables.begin(), tables.end());
  tables.erase(std::unique(tables.begin(), tables.end()), tables.end());
  if (affected_.empty()) return;  // no evaluation sample reads a corrupted row
  const int m = static_cast<int>(affected_.size());
  scratch_t_.resize(static_cast<size_t>(m) * ld);
  for (int i = 0; i < m; ++i) {
    const int b = affected_[static_cast<size_t>(i)];
    float* row = scratch_t_.data() + static_cast<size_t>(i) * ld;
    std::copy(t_.data() + b * ld, t_.data() + (b + 1) * ld, row);
    for (int t : tables)
      model_.table(t).forward(eval_.tables[static_cast<size_t>(t)], b, b + 1,
                              row + static_cast<size_t>(1 + t) * d, ld);
  }
  scratch_r_.resize(static_cast<size_t>(m) * c.interaction_width());
  dlrm::interaction_forward(scratch_t_.data(), m, c.features(), d, scratch_r_.data());
  const float* z = run_layers(model_.top(), 0, scratch_r_.data(), m, scratch_layers_, wt_);
  for (int i = 0; i < m; ++i) logits[static_cast<size_t>(affected_[static_cast<size_t>(i)])] = z[i];
}

std::vector<float> DlrmTarget::logits_partial(int component, std::span<const ElementFault> faults) {
  std::vector<float> logits;
  if (faults.empty()) return clean_logits_;
  apply(component, faults, changes_);
  switch (components_[static_cast<size_t>(component)].block) {
    case DlrmBlock::embedding:
      partial_embedding(component, faults, logits);
      break;
    case DlrmBlock::bottom:
      partial_bottom(first_touched(component, faults), logits);
      break;
    case DlrmBlock::top:
      partial_top(first_touched(component, faults), logits);
      break;
  }
  restore(changes_);
  return logits;
}

std::vector<float> DlrmTarget::logits_full(int component, std::span<const ElementFault> faults) {
  std::vector<float> logits(static_cast<size_t>(eval_.size));
  apply(component, faults, changes_);
  model_.forward(eval_, logits);
  restore(changes_);
  return logits;
}

Outcome DlrmTarget::classify(std::span<const float> logits) const {
  bool incorrect = false;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (!std::isfinite(logits[i])) return Outcome::nan_inf;
    const double p = ctr(logits[i]), p0 = clean_ctr_[i];
    incorrect = incorrect || std::fabs(p - p0) > threshold_ || (p > 0.5) != (p0 > 0.5);
  }
  return incorrect ? Outcome::incorrect : Outcome::correct;
}

Outcome DlrmTarget::inject(int component, std::span<const ElementFault> faults) {
  return classify(logits_partial(component, faults));
}

}  // namespace paralab::pvf
