#include "pvf/transformer_target.hpp"

#include <algorithm>
#include <bit>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstring>
#include <sstream>
#include <stdexcept>

#include "core/errors.hpp"
#include "kernels/threads.hpp"
#include "model/optimizer.hpp"
#include "model/trainer.hpp"

namespace paralab::pvf {

namespace {

constexpr uint32_t bit(TensorKind k) {
  return 1u << static_cast<int>(k);
}

constexpr uint32_t kAttn =
    bit(TensorKind::wq) | bit(TensorKind::wk) | bit(TensorKind::wv) | bit(TensorKind::wo);
constexpr uint32_t kMlp = bit(TensorKind::gate) | bit(TensorKind::up) | bit(TensorKind::down);
constexpr uint32_t kLayerNorms = bit(TensorKind::attn_norm) | bit(TensorKind::mlp_norm);
constexpr uint32_t kLayer = kAttn | kMlp | kLayerNorms;

// The per-layer kinds by name (valid with and without a layerN. prefix).
struct Named {
  const char* name;
  uint32_t kinds;
};
constexpr Named kPerLayer[] = {{"attn.q", bit(TensorKind::wq)},
                               {"attn.k", bit(TensorKind::wk)},
                               {"attn.v", bit(TensorKind::wv)},
                               {"attn.o", bit(TensorKind::wo)},
                               {"attn", kAttn},
                               {"mlp.gate", bit(TensorKind::gate)},
                               {"mlp.up", bit(TensorKind::up)},
                               {"mlp.down", bit(TensorKind::down)},
                               {"mlp", kMlp},
                               {"attn_norm", bit(TensorKind::attn_norm)},
                               {"mlp_norm", bit(TensorKind::mlp_norm)}};

const char* kKnown =
    "known: embedding, attn.q, attn.k, attn.v, attn.o, attn, mlp.gate, mlp.up, mlp.down, mlp, "
    "attn_norm, mlp_norm, norm, final_norm, lm_head, and layerN or layerN.<per-layer name> for "
    "one layer (layerN.norm: its two gains)";

// The kind of a registry tensor by its name (model.hpp's naming).
TensorKind kind_of(const std::string& name) {
  if (name == "embed.weight") return TensorKind::embedding;
  if (name == "final_norm.gain") return TensorKind::final_norm;
  if (name == "lm_head.weight") return TensorKind::lm_head;
  static const std::pair<const char*, TensorKind> tails[] = {
      {".attn_norm.gain", TensorKind::attn_norm},
      {".attn.wq", TensorKind::wq},
      {".attn.wk", TensorKind::wk},
      {".attn.wv", TensorKind::wv},
      {".attn.wo", TensorKind::wo},
      {".mlp_norm.gain", TensorKind::mlp_norm},
      {".mlp.w_gate", TensorKind::gate},
      {".mlp.w_up", TensorKind::up},
      {".mlp.w_down", TensorKind::down}};
  for (auto [tail, kind] : tails)
    if (name.ends_with(tail)) return kind;
  throw std::logic_error("TransformerTarget: unexpected parameter " + name);
}

int layer_of(const std::string& name) {
  if (!name.starts_with("layers.")) return -1;
  return std::stoi(name.substr(7));
}

// Stage of a tensor (the header's numbering).
int stage_of(TensorKind kind, int layer, int layers) {
  switch (kind) {
    case TensorKind::embedding:
      return 0;
    case TensorKind::final_norm:
      return 2 * layers + 1;
    case TensorKind::lm_head:
      return 2 * layers + 2;
    case TensorKind::attn_norm:
    case TensorKind::wq:
    case TensorKind::wk:
    case TensorKind::wv:
    case TensorKind::wo:
      return 1 + 2 * layer;
    default:
      return 2 + 2 * layer;
  }
}

bool selects(const TransformerComponent& c, TensorKind kind, int layer) {
  return c.has(kind) && (c.layer < 0 || layer < 0 || c.layer == layer);
}

uint64_t tensor_elements(const model::ModelConfig& c, TensorKind kind) {
  const uint64_t d = static_cast<uint64_t>(c.d_model), hd = static_cast<uint64_t>(c.head_dim());
  switch (kind) {
    case TensorKind::embedding:
    case TensorKind::lm_head:
      return static_cast<uint64_t>(c.vocab) * d;
    case TensorKind::attn_norm:
    case TensorKind::mlp_norm:
    case TensorKind::final_norm:
      return d;
    case TensorKind::wq:
    case TensorKind::wo:
      return d * hd * static_cast<uint64_t>(c.heads);
    case TensorKind::wk:
    case TensorKind::wv:
      return d * hd * static_cast<uint64_t>(c.kv_heads);
    default:
      return d * static_cast<uint64_t>(c.ffn);
  }
}

int first_argmax(const float* row, int vocab) {
  int best = 0;
  for (int j = 1; j < vocab; ++j)
    if (row[j] > row[best]) best = j;
  return best;
}

}  // namespace

TransformerComponent parse_transformer_component(const std::string& name, int layers) {
  TransformerComponent c;
  c.name = name;
  if (name == "embedding") c.kinds = bit(TensorKind::embedding);
  if (name == "final_norm") c.kinds = bit(TensorKind::final_norm);
  if (name == "lm_head") c.kinds = bit(TensorKind::lm_head);
  if (name == "norm") c.kinds = kLayerNorms | bit(TensorKind::final_norm);
  if (c.kinds) return c;
  std::string rest = name;
  if (name.starts_with("layer")) {
    size_t i = 5;
    while (i < name.size() && std::isdigit(static_cast<unsigned char>(name[i]))) ++i;
    if (i > 5 && i - 5 < 9 && (i == name.size() || name[i] == '.')) {
      c.layer = std::stoi(name.substr(5, i - 5));
      if (c.layer >= layers)
        throw UsageError("transformer component '" + name + "': layer " + std::to_string(c.layer) +
                         " out of range (the model has " + std::to_string(layers) +
                         " layers: 0 to " + std::to_string(layers - 1) + ")");
      if (i == name.size()) {
        c.kinds = kLayer;
        return c;
      }
      rest = name.substr(i + 1);
      if (rest == "norm") {
        c.kinds = kLayerNorms;
        return c;
      }
    }
  }
  for (const Named& n : kPerLayer)
    if (rest == n.name) c.kinds = n.kinds;
  if (!c.kinds) throw UsageError("unknown transformer component '" + name + "'; " + kKnown);
  return c;
}

std::vector<std::string> default_transformer_components() {
  return {"embedding", "attn.q", "attn.k", "attn.v", "attn.o", "mlp", "norm", "lm_head"};
}

uint64_t transformer_component_elements(const model::ModelConfig& config,
                                        const TransformerComponent& component) {
  uint64_t n = 0;
  for (TensorKind k : {TensorKind::embedding, TensorKind::final_norm, TensorKind::lm_head})
    if (component.has(k)) n += tensor_elements(config, k);
  const uint64_t layers = component.layer >= 0 ? 1 : static_cast<uint64_t>(config.layers);
  for (int k = static_cast<int>(TensorKind::attn_norm); k <= static_cast<int>(TensorKind::down);
       ++k)
    if (component.has(static_cast<TensorKind>(k)))
      n += layers * tensor_elements(config, static_cast<TensorKind>(k));
  return n;
}

std::string describe(const model::ModelConfig& c) {
  std::ostringstream s;
  s << 'L' << c.layers << " d" << c.d_model << " H" << c.heads << '/' << c.kv_heads << " ffn"
    << c.ffn << " vocab" << c.vocab << " ctx" << c.context;
  return s.str();
}

double mean_cross_entropy(std::span<const float> logits, std::span<const int32_t> targets,
                          int vocab) {
  double sum = 0;
  for (size_t i = 0; i < targets.size(); ++i) {
    const float* row = logits.data() + i * static_cast<size_t>(vocab);
    const float m = *std::max_element(row, row + vocab);
    double s = 0;
    for (int j = 0; j < vocab; ++j) s += std::exp(double{row[j]} - m);
    sum += m + std::log(s) - row[targets[i]];
  }
  return targets.empty() ? 0.0 : sum / static_cast<double>(targets.size());
}

model::SampledBatch transformer_eval_set(const model::MarkovSource& data, int sequences, int seq) {
  return data.sample(sequences, seq, uint64_t{1} << 40);  // bf16_train's held-out streams
}

TransformerTrainingSummary train_transformer(model::Model& model, const model::MarkovSource& data,
                                             const TransformerTraining& training,
                                             const model::SampledBatch& eval) {
  const int threads = kernels::threads();
  kernels::set_threads(1);
  const auto t0 = std::chrono::steady_clock::now();
  TransformerTrainingSummary s;
  s.entropy_floor = data.entropy_rate_nats();
  model::AdamW optimizer(model::AdamWConfig{0.9f, 0.95f, 1e-8f, 0.0f}, training.seed);
  model::LrSchedule schedule;
  schedule.peak = static_cast<float>(training.lr);
  schedule.floor = static_cast<float>(training.lr / 10);
  schedule.warmup = training.steps / 10;
  schedule.total = std::max(training.steps, 1);
  model::Trainer trainer(model, optimizer, schedule, 1.0);
  for (int step = 0; step < training.steps; ++step) {
    const model::SampledBatch batch =
        data.sample(training.batch, training.seq, static_cast<uint64_t>(step));
    const double loss = trainer.step(batch.view()).loss;
    if (step == 0) s.first_loss = loss;
    s.last_loss = loss;
  }
  s.eval_loss = model.evaluate(eval.view());
  const std::span<const float> z = model.logits();
  const int vocab = model.config().vocab;
  int64_t hits = 0;
  for (size_t i = 0; i < eval.targets.size(); ++i)
    hits += first_argmax(z.data() + i * static_cast<size_t>(vocab), vocab) == eval.targets[i];
  s.eval_top1 = static_cast<double>(hits) / static_cast<double>(eval.targets.size());
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  kernels::set_threads(threads);
  return s;
}

TransformerTarget::TransformerTarget(model::Model& model, model::SampledBatch eval,
                                     std::vector<TransformerComponent> components,
                                     double loss_threshold)
    : model_(model),
      eval_(std::move(eval)),
      threshold_(loss_threshold),
      components_(std::move(components)) {
  if (model_.precision() != model::Precision::fp32)
    throw std::invalid_argument("TransformerTarget: the model must use the fp32 policy");
  if (components_.empty()) throw std::invalid_argument("TransformerTarget: no components");
  const model::Batch view = eval_.view();
  model::validate(view, model_.config());
  positions_ = model::document_positions(view);
  layout_ = {eval_.batch, eval_.seq, {}, positions_};
  const int layers = model_.config().layers;
  for (model::Parameter& p : model_.parameters()) {
    Tensor t;
    t.data = p.values().data();
    t.kind = kind_of(p.name());
    t.stage = stage_of(t.kind, layer_of(p.name()), layers);
    t.master.assign(p.values().begin(), p.values().end());
    tensors_.push_back(std::move(t));
  }
  parts_.resize(components_.size());
  size_t t = 0;
  for (model::Parameter& p : model_.parameters()) {
    for (size_t c = 0; c < components_.size(); ++c) {
      if (!selects(components_[c], tensors_[t].kind, layer_of(p.name()))) continue;
      Part& part = parts_[c];
      part.offsets.push_back(
          part.offsets.empty() ? 0
                               : part.offsets.back() + tensors_[part.tensors.back()].master.size());
      part.tensors.push_back(static_cast<int>(t));
    }
    ++t;
  }
  for (size_t c = 0; c < parts_.size(); ++c) {
    Part& part = parts_[c];
    if (part.tensors.empty())
      throw std::invalid_argument("TransformerTarget: component " + components_[c].name +
                                  " has no tensors");
    part.offsets.push_back(part.offsets.back() + tensors_[part.tensors.back()].master.size());
  }
  token_read_.assign(static_cast<size_t>(model_.config().vocab), 0);
  for (int32_t tok : eval_.tokens) token_read_[static_cast<size_t>(tok)] = 1;
  prepare(DType::fp32);
}

std::string TransformerTarget::component_name(int component) const {
  return components_[static_cast<size_t>(component)].name;
}

uint64_t TransformerTarget::elements(int component) const {
  return parts_[static_cast<size_t>(component)].offsets.back();
}

void TransformerTarget::prepare(DType dtype) {
  for (Tensor& t : tensors_) {
    t.storage = make_storage(dtype, t.master);
    for (size_t i = 0; i < t.master.size(); ++i) t.data[i] = t.storage.round(t.master[i]);
  }
  run_from(0, true);
  clean_logits_ = logits_;
  const int n = positions(), v = vocab();
  clean_top1_.resize(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i)
    clean_top1_[static_cast<size_t>(i)] =
        first_argmax(clean_logits_.data() + static_cast<size_t>(i) * v, v);
  clean_loss_ = mean_cross_entropy(clean_logits_, eval_.targets, v);
}

void TransformerTarget::run_from(int stage, bool capture) {
  const int layers = model_.config().layers;
  const int n = positions(), d = model_.config().d_model;
  const size_t count = static_cast<size_t>(n) * d;
  const int final_stage = 2 * layers + 1;
  if (capture) stream_.resize(static_cast<size_t>(final_stage) + 1);
  x_.resize(count);
  if (stage == 0)
    model_.embedding().forward(eval_.tokens, x_.data());
  else if (stage <= final_stage)
    std::copy(stream_[static_cast<size_t>(stage)].begin(),
              stream_[static_cast<size_t>(stage)].end(), x_.begin());
  int b = std::max(stage, 1);
  if (b < final_stage && b % 2 == 0) {
    // The MLP block of layer (b - 2) / 2 alone: TransformerLayer::forward's
    // second half (normalise, then x += Mlp(xn)), FP32 policy.
    model::TransformerLayer& layer = model_.layer((b - 2) / 2);
    rstd_.resize(static_cast<size_t>(n));
    layer.mlp_norm().forward(x_.data(), n, xn_.reset(count), rstd_.data());
    xn_.seal(false);
    layer.mlp().forward(xn_.operand(), n, mlp_saved_, x_.data(), /*accumulate=*/true);
    ++b;
  }
  for (; b < final_stage; b += 2) {
    if (capture) stream_[static_cast<size_t>(b)] = x_;
    model_.layer((b - 1) / 2).forward(x_.data(), layout_, saved_);
    if (capture) stream_[static_cast<size_t>(b) + 1] = saved_.x_mlp;
  }
  model::Operand head_input;
  if (stage <= final_stage) {
    if (capture) stream_[static_cast<size_t>(final_stage)] = x_;
    rstd_.resize(static_cast<size_t>(n));
    model_.final_norm().forward(x_.data(), n, xn_.reset(count), rstd_.data());
    xn_.seal(false);
    if (capture) xn_final_.assign(xn_.data(), xn_.data() + count);
    head_input = xn_.operand();
  } else {
    head_input = {xn_final_.data(), nullptr};
  }
  logits_.resize(static_cast<size_t>(n) * vocab());
  model_.lm_head().forward(head_input, n, logits_.data());
}

std::pair<TransformerTarget::Tensor*, uint64_t> TransformerTarget::locate(int component,
                                                                          uint64_t element) {
  Part& part = parts_[static_cast<size_t>(component)];
  if (element >= part.offsets.back())
    throw std::out_of_range("TransformerTarget: element out of range");
  const auto it = std::upper_bound(part.offsets.begin(), part.offsets.end(), element);
  const size_t i = static_cast<size_t>(it - part.offsets.begin()) - 1;
  return {&tensors_[static_cast<size_t>(part.tensors[i])], element - part.offsets[i]};
}

float* TransformerTarget::parameter(int component, uint64_t element) {
  auto [tensor, offset] = locate(component, element);
  return tensor->data + offset;
}

bool TransformerTarget::apply(int component, std::span<const ElementFault> faults) {
  changes_.clear();
  bool changed = false;
  for (const ElementFault& f : faults) {
    auto [tensor, offset] = locate(component, f.element);
    float* p = tensor->data + offset;
    changes_.push_back({p, *p});
    // The stored value is exactly representable (prepare), so encode is exact.
    *p = tensor->storage.decode(f.op.apply(tensor->storage.encode(*p)));
    changed =
        changed || std::bit_cast<uint32_t>(*p) != std::bit_cast<uint32_t>(changes_.back().old);
  }
  return changed;
}

void TransformerTarget::restore() {
  for (auto it = changes_.rbegin(); it != changes_.rend(); ++it) *it->p = it->old;
  changes_.clear();
}

int TransformerTarget::start_stage(int component, std::span<const ElementFault> faults) {
  // Faults are sorted by element and a part's tensors are in registry
  // order, whose stages do not decrease: the first fault has the lowest.
  return locate(component, faults.front().element).first->stage;
}

bool TransformerTarget::embedding_rows_unread(int component, std::span<const ElementFault> faults) {
  const uint64_t d = static_cast<uint64_t>(model_.config().d_model);
  for (const ElementFault& f : faults) {
    auto [tensor, offset] = locate(component, f.element);
    if (tensor->kind != TensorKind::embedding) return false;
    if (token_read_[static_cast<size_t>(offset / d)]) return false;
  }
  return true;
}

std::vector<float> TransformerTarget::logits_partial(int component,
                                                     std::span<const ElementFault> faults) {
  if (faults.empty()) return clean_logits_;
  const bool changed = apply(component, faults);
  std::vector<float> logits;
  if (!changed || embedding_rows_unread(component, faults)) {
    logits = clean_logits_;
  } else {
    run_from(start_stage(component, faults), false);
    logits = logits_;
  }
  restore();
  return logits;
}

std::vector<float> TransformerTarget::logits_full(int component,
                                                  std::span<const ElementFault> faults) {
  apply(component, faults);
  model_.evaluate(eval_.view());
  std::vector<float> logits(model_.logits().begin(), model_.logits().end());
  restore();
  return logits;
}

Outcome TransformerTarget::classify(std::span<const float> logits) const {
  for (float z : logits)
    if (!std::isfinite(z)) return Outcome::nan_inf;
  const int n = positions(), v = vocab();
  for (int i = 0; i < n; ++i)
    if (first_argmax(logits.data() + static_cast<size_t>(i) * v, v) !=
        clean_top1_[static_cast<size_t>(i)])
      return Outcome::incorrect;
  return mean_cross_entropy(logits, eval_.targets, v) - clean_loss_ > threshold_
             ? Outcome::incorrect
             : Outcome::correct;
}

Outcome TransformerTarget::inject(int component, std::span<const ElementFault> faults) {
  return classify(logits_partial(component, faults));
}

}  // namespace paralab::pvf
