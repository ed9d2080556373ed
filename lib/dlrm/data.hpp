// data.hpp: synthetic click logs for DLRM training (model.hpp has the whole
// story). A sample is a pure function of (seed, split, batch, index):
//
//   sample key   k = mix(mix(mix(seed, split), batch), index)      (layers.hpp)
//   dense f      N(0, 1) by Box-Muller from uniform01(mix(k, 0), 2f and 2f+1)
//   table t      `pooling[t]` rows drawn with replacement from a Zipf
//                popularity: the popularity rank q (0 = hottest) has weight
//                (q + 1)^-s; draw j takes splitmix64(mix(mix(k, 1 + t), j)),
//                its high 32 bits pick an alias-table column, its low 32 bits
//                the coin (Vose's alias method: O(1) per draw). Rank q is row
//                (a q + c) mod rows, a coprime with rows, so the hot rows are
//                scattered over the table (as hashed ids are) and a row-wise
//                shard does not get them all; scatter_hot_rows = false keeps
//                q = row.
//   label        from the teacher: a DLRM (teacher_* widths, the student's
//                dense features, tables and pooling, its own seed) gives a
//                logit z; u = (z - mean) / std over a calibration set (split
//                calibration, batch 0); the label logit is a u + c with a =
//                signal and c solved by bisection on the calibration set so
//                that the mean label (the click rate) is click_rate. Bernoulli
//                (default): label = 1 when uniform01(mix(k, 2^20), 0) <
//                sigmoid(a u + c), so a perfect model has AUC < 1 and log loss
//                > 0 (the teacher's own scores are the ceiling:
//                Batch::label_logits); threshold: label = (a u + c > 0).
//
// Batches of any size share samples by index: samples [first, first + count)
// of batch b are the same whoever makes them, so rank p of a data-parallel
// run makes its slice of the global batch and the table owners need no data.
#pragma once

#include <cstdint>
#include <vector>

#include "dlrm/model.hpp"

namespace paralab::dlrm {

enum class Split : uint64_t { train = 0, eval = 1, calibration = 2 };
enum class LabelMode { bernoulli, threshold };

struct DataConfig {
  uint64_t seed = 1;
  double zipf_exponent = 1.05;  // s > 0
  bool scatter_hot_rows = true;
  // The teacher DLRM that makes labels.
  uint64_t teacher_seed = 0;             // 0: derived from seed
  int teacher_dim = 8;                   // its embedding dimension
  std::vector<int> teacher_bottom{64};   // hidden widths; a teacher_dim layer follows
  std::vector<int> teacher_top{64};      // hidden widths; the logit layer follows
  float teacher_embedding_scale = 0.5f;  // its tables are uniform in +-this
  double signal = 3.0;                   // a: the standardised logit's scale
  double click_rate = 0.25;              // mean label, in (0, 1)
  LabelMode labels = LabelMode::bernoulli;
  int calibration_samples = 4096;
  void validate() const;  // UsageError
};

class SyntheticClicks {
 public:
  SyntheticClicks(const DlrmConfig& model, const DataConfig& data);

  const DlrmConfig& model_config() const { return model_; }
  const DataConfig& config() const { return data_; }
  Dlrm& teacher() { return teacher_; }

  // Samples [first, first + count) of batch `batch` of `split`: dense,
  // lookups of every table (pooling[t] per bag), labels and label_logits.
  void make_batch(Split split, int64_t batch, int64_t first, int count, Batch& out);
  Batch make_batch(Split split, int64_t batch, int64_t first, int count);

  // The popularity: row of popularity rank q of table t, and that rank's
  // probability (for tests and reports).
  int64_t row_of_rank(int table, int64_t rank) const;
  double rank_probability(int table, int64_t rank) const;
  // Calibration results: the teacher logit's mean and std, the bias c.
  double teacher_mean() const { return mean_; }
  double teacher_std() const { return std_; }
  double label_bias() const { return bias_; }

 private:
  struct Popularity {
    int64_t rows = 0;
    std::vector<float> prob;     // alias method: keep column with this probability
    std::vector<int32_t> alias;  // else take this one
    double norm = 0;             // sum of (q + 1)^-s
    uint64_t a = 1, c = 0;       // rank -> row permutation
  };
  void make_inputs(Split split, int64_t batch, int64_t first, int count, Batch& out) const;

  DlrmConfig model_;
  DataConfig data_;
  std::vector<Popularity> popularity_;
  Dlrm teacher_;
  double mean_ = 0, std_ = 1, bias_ = 0;
};

// The teacher's configuration for a student config and data config.
DlrmConfig teacher_config(const DlrmConfig& model, const DataConfig& data);

}  // namespace paralab::dlrm
