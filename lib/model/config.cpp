#include "model/config.hpp"

#include <algorithm>
#include <string>

#include "core/errors.hpp"

namespace paralab::model {

namespace {

void require(bool ok, const std::string& message) {
  if (!ok) throw UsageError("model config: " + message);
}

void require_batch(bool ok, const std::string& message) {
  if (!ok) throw UsageError("batch: " + message);
}

std::string str(int64_t v) {
  return std::to_string(v);
}

void validate_documents(const Batch& b) {
  if (b.doc_starts.empty()) return;
  require_batch(static_cast<int64_t>(b.doc_starts.size()) == b.batch,
                "doc_starts has " + str(static_cast<int64_t>(b.doc_starts.size())) +
                    " lists but the batch has " + str(b.batch) + " sequences");
  for (size_t s = 0; s < b.doc_starts.size(); ++s) {
    const auto& starts = b.doc_starts[s];
    require_batch(std::is_sorted(starts.begin(), starts.end()),
                  "doc_starts of sequence " + str(static_cast<int64_t>(s)) + " are not ascending");
    for (int64_t start : starts) {
      require_batch(start >= 0 && start < b.seq, "document start " + str(start) + " of sequence " +
                                                     str(static_cast<int64_t>(s)) +
                                                     " is outside 0.." + str(b.seq - 1));
    }
  }
}

}  // namespace

void validate(const ModelConfig& c) {
  require(c.vocab >= 2, "vocab must be at least 2 (got " + str(c.vocab) + ")");
  require(c.layers >= 1, "layers must be at least 1 (got " + str(c.layers) + ")");
  require(c.d_model >= 1, "d_model must be positive (got " + str(c.d_model) + ")");
  require(c.heads >= 1, "heads must be positive (got " + str(c.heads) + ")");
  require(c.kv_heads >= 1, "kv_heads must be positive (got " + str(c.kv_heads) + ")");
  require(c.d_model % c.heads == 0,
          "heads (" + str(c.heads) + ") must divide d_model (" + str(c.d_model) + ")");
  require(c.heads % c.kv_heads == 0,
          "kv_heads (" + str(c.kv_heads) + ") must divide heads (" + str(c.heads) + ")");
  require(c.ffn >= 1, "ffn must be positive (got " + str(c.ffn) + ")");
  require(c.context >= 1, "context must be positive (got " + str(c.context) + ")");
  require(c.rope_theta >= 0, "rope_theta must not be negative");
  require(c.rope_theta == 0 || c.head_dim() % 2 == 0,
          "RoPE needs an even head dimension (d_model / heads = " + str(c.head_dim()) +
              "); set rope_theta = 0 to turn RoPE off");
  require(c.norm_eps > 0, "norm_eps must be positive");
  require(c.init_std > 0, "init_std must be positive");
}

void validate(const Batch& b, const ModelConfig& c) {
  require_batch(b.batch >= 1, "batch (B) must be at least 1 (got " + str(b.batch) + ")");
  require_batch(b.seq >= 1, "sequence length (T) must be at least 1 (got " + str(b.seq) + ")");
  require_batch(b.seq <= c.context,
                "sequence length " + str(b.seq) + " exceeds the model context " + str(c.context));
  const int64_t n = b.tokens_count();
  require_batch(
      static_cast<int64_t>(b.tokens.size()) == n,
      "tokens has " + str(static_cast<int64_t>(b.tokens.size())) + " ids but B * T = " + str(n));
  require_batch(
      static_cast<int64_t>(b.targets.size()) == n,
      "targets has " + str(static_cast<int64_t>(b.targets.size())) + " ids but B * T = " + str(n));
  for (int64_t i = 0; i < n; ++i) {
    require_batch(
        b.tokens[i] >= 0 && b.tokens[i] < c.vocab,
        "token id " + str(b.tokens[i]) + " at " + str(i) + " is outside 0.." + str(c.vocab - 1));
    require_batch(b.targets[i] < c.vocab, "target id " + str(b.targets[i]) + " at " + str(i) +
                                              " is not below vocab " + str(c.vocab));
  }
  validate_documents(b);
}

std::vector<int32_t> document_positions(const Batch& b) {
  std::vector<int32_t> positions(static_cast<size_t>(b.tokens_count()));
  for (int s = 0; s < b.batch; ++s) {
    const std::vector<int64_t>* starts = b.doc_starts.empty() ? nullptr : &b.doc_starts[s];
    size_t next = 0;  // the first start not yet reached
    int64_t doc_begin = 0;
    for (int t = 0; t < b.seq; ++t) {
      while (starts && next < starts->size() && (*starts)[next] <= t) doc_begin = (*starts)[next++];
      positions[static_cast<size_t>(s) * b.seq + t] = static_cast<int32_t>(t - doc_begin);
    }
  }
  return positions;
}

}  // namespace paralab::model
