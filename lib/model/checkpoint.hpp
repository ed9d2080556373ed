// checkpoint.hpp: save a training state to HDF5 and resume from it, bit for
// bit. A checkpoint holds everything a step depends on:
//   - the model config (every ModelConfig field) and the precision policy;
//   - the stored weights: values() (FP32 master) under fp32 and bf16-mixed,
//     bf16_values() under the pure BF16 policies, and kahan() (the BF16
//     compensation) under bf16-pure-kahan; the derived copy is re-made by
//     Parameters::sync() on load;
//   - the tensor names and sizes (the registry's layout, checked on load);
//   - the optimizer's FP32 state by name (AdamW m and v, SGD momentum) and
//     its step count (bias correction, stochastic-rounding seeds);
//   - the caller's CheckpointInfo: the data position to continue from, the
//     run's configuration (seeds, data, schedule, batch: JSON that the caller
//     compares on resume) and the curves recorded so far.
// Layout: root attributes (format "paralab-checkpoint", version, model
// config, precision, optimizer, steps, ...), datasets /weights/values
// (float32) or /weights/bf16 and /weights/kahan (uint16: BF16 bit patterns),
// /optimizer/<name> (float32), /history/<name> (float64).
//
// Integrity: the file starts with a 512-byte HDF5 user block (which HDF5
// tools skip) holding a CRC32C of the rest of the file and its size; loading
// verifies both first, so a flipped bit anywhere (weights, optimizer state,
// loss history, attributes) or a truncation is refused, never resumed from.
// The file is built in memory and written through results::OutputFile: the
// path is claimed when the run starts (unwritable paths, devices and a second
// writer are refused then, not after training), and each save lands
// atomically, so a crash, a full disk or a signal never leaves a half-written
// checkpoint under the real name. Under
// data parallelism the weights are replicated: rank 0 saves, every rank
// loads. Resuming continues bit-identically when the thread count is the
// same (OpenBLAS's and OpenMP's reductions depend on it) and, with more than
// one rank, the rank count too (the all-reduce's summation order).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "model/model.hpp"
#include "model/optimizer.hpp"

namespace paralab::results {
class OutputFile;
}

namespace paralab::model {

struct CheckpointInfo {
  int64_t step = 0;           // steps taken; on load, the optimizer's step count
  int64_t data_position = 0;  // where the data stream continues (the caller's meaning)
  int64_t world_size = 1;     // ranks of the run that wrote it
  std::string run_config;     // the caller's description of the run (JSON)
  // Curves recorded so far (name, values), restored on resume.
  std::vector<std::pair<std::string, std::vector<double>>> history;

  // The curve of that name, or nullptr.
  const std::vector<double>* find(const std::string& name) const;
};

// Writes the model's stored weights, the optimizer's state and `info` (its
// `step` is taken from optimizer.steps()) to a claimed path, atomically.
// Throws RuntimeError (this rank) when it cannot.
void save_checkpoint(results::OutputFile& target, const Model& model, Optimizer& optimizer,
                     const CheckpointInfo& info);
// The same to `path`, claimed for this one save (creates missing folders).
void save_checkpoint(const std::string& path, const Model& model, Optimizer& optimizer,
                     const CheckpointInfo& info);

// Loads a checkpoint into a model built with the same config and precision
// and a fresh optimizer of the same kind: weights (then Parameters::sync()),
// Kahan compensation, optimizer state and step count. Returns the info.
// Throws UsageError with a clear message when the file is missing, is not a
// readable paralab checkpoint, fails its checksum (damaged or truncated), or
// was written for a different model config, precision, tensor layout or
// optimizer.
CheckpointInfo load_checkpoint(const std::string& path, Model& model, Optimizer& optimizer);

// Only the info (no weights): to compare a run's configuration first.
CheckpointInfo read_checkpoint_info(const std::string& path);

}  // namespace paralab::model
