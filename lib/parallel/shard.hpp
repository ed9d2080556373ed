// shard.hpp: which part of the lib/model transformer one rank of a
// tensor x pipeline parallel grid holds, and how each of its tensors maps onto
// the full (single-rank) tensor of the same name.
//
// Pipeline stage s holds the layers stage_layers(layers, s, pp) (schedule/pipeline.hpp);
// stage 0 also the embedding, the last stage the final RMSNorm and the LM head.
// Inside a stage, Megatron-LM tensor parallelism over tp ranks:
//   column-parallel (a block of rows of W [out, in]):  wq (query heads),
//     wk, wv (key/value heads), w_gate, w_up (ffn rows);
//   row-parallel (the matching block of columns):      wo (query heads),
//     w_down (ffn columns);
//   replicated (every tp rank the whole tensor):        RMSNorm gains, the
//     embedding and the LM head.
// Heads split evenly: tp must divide kv_heads (so each rank keeps whole GQA
// groups: its query heads read only its key/value heads). The ffn width may
// split unevenly (the first ffn % tp ranks take one row more).
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "model/config.hpp"
#include "schedule/pipeline.hpp"

namespace paralab::parallel {

// A contiguous share [first, first + count) of heads, kv heads or ffn rows.
struct Share {
  int first = 0;
  int count = 0;
};

struct ShardPlan {
  model::ModelConfig config;  // the full model
  int tp = 1, tp_rank = 0;
  int pp = 1, stage = 0;
  schedule::LayerRange layers;  // this stage's layers
  Share heads;                  // query heads of this tp rank
  Share kv_heads;               // key/value heads of this tp rank
  Share ffn;                    // SwiGLU hidden rows of this tp rank

  bool has_embedding() const { return stage == 0; }
  bool has_head() const { return stage == pp - 1; }
};

// Validates the config and the split (UsageError naming the problem: pp
// above the layer count, tp not dividing kv_heads, tp above ffn).
ShardPlan make_shard_plan(const model::ModelConfig& config, int tp, int tp_rank, int pp, int stage);

// How a local tensor is cut from its full tensor of `rows` x `cols` (a 1-D
// tensor of d elements is 1 x d): whole, a block of rows, or of columns.
struct TensorShard {
  enum Split { whole, rows, columns };
  std::string name;  // the full tensor's name (the local one has the same)
  int full_rows = 1, full_cols = 1;
  Split split = whole;
  Share part;  // rows or columns kept (unused for whole)

  std::vector<int> local_shape(bool one_dimensional) const;
  size_t local_size() const;
  // Local element i <-> full element full_index(i).
  size_t full_index(size_t i) const;
};

// The tensors this rank holds, in the order it registers them (the
// single-rank registry order restricted to this rank's part).
std::vector<TensorShard> local_tensors(const ShardPlan& plan);

// The full model's tensors in the single-rank registry order: name, shape and
// offset in the flat registry (Model's parameters().values()).
struct FullTensor {
  std::string name;
  std::vector<int> shape;
  size_t offset = 0;
  size_t size() const;
};
std::vector<FullTensor> full_tensors(const model::ModelConfig& config);

}  // namespace paralab::parallel
