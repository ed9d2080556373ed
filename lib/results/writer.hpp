// writer.hpp: the one HDF5 result writer (the only code that touches HDF5).
// The schema is documented in docs/results.md; bump kSchemaVersion whenever
// a reader would have to change.
//
// A ResultFile builds its HDF5 file in memory and writes it on commit()
// through results::OutputFile (output_file.hpp): the path is claimed at
// construction (folder, regular file, no other writer), and the bytes land
// atomically, so a run that fails, is destroyed first, fills the disk or is
// stopped by a signal leaves no file and no temporary behind.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace paralab::results {

class OutputFile;

inline constexpr int64_t kSchemaVersion = 1;

// Root attributes describing where and how a result was produced.
struct Provenance {
  std::string app;
  std::string suite_version;
  std::string git_commit;
  std::string utc_time;  // ISO 8601, e.g. 2026-11-22T11:30:00Z
  std::string command_line;
  int64_t world_size = 1;
  std::vector<std::string> hosts;
  std::string backend;      // mpi | nccl | sim
  std::string device;       // cpu | cuda
  std::string device_name;  // CPU model or GPU name
  std::string cpu_isa;      // the CPU kernels' instruction-set tier (kernels/cpu/isa.hpp)
  std::string mode;         // measure | simulate
  std::string config_json;  // every option's value, as JSON
};

class Handle;  // an open HDF5 object, closed when its last owner goes

// An open group. Attributes hold parameters and summary metrics (scalars and
// short lists); datasets hold raw samples and curves.
class Group {
 public:
  void attr(const std::string& name, double value);
  void attr(const std::string& name, int64_t value);
  void attr(const std::string& name, int value) { attr(name, static_cast<int64_t>(value)); }
  void attr(const std::string& name, uint64_t value) { attr(name, static_cast<int64_t>(value)); }
  void attr(const std::string& name, unsigned long long value) {
    attr(name, static_cast<int64_t>(value));
  }
  void attr(const std::string& name, const std::string& value);
  void attr(const std::string& name, const char* value) { attr(name, std::string(value)); }
  void attr(const std::string& name, const std::vector<std::string>& values);
  void attr(const std::string& name, const std::vector<double>& values);
  void attr(const std::string& name, const std::vector<int64_t>& values);

  // A float64 dataset of the given shape (row-major), with attributes
  // "units" and "dims" (comma-separated dimension names, e.g. "iteration,rank").
  void dataset(const std::string& name, std::span<const double> values,
               const std::vector<size_t>& shape, const std::string& units, const std::string& dims);
  void dataset(const std::string& name, std::span<const int64_t> values,
               const std::vector<size_t>& shape, const std::string& units, const std::string& dims);

  Group subgroup(const std::string& name);

 private:
  friend class ResultFile;
  explicit Group(std::shared_ptr<Handle> handle,
                 std::shared_ptr<nlohmann::ordered_json> mirror = {})
      : handle_(std::move(handle)), mirror_(std::move(mirror)) {}
  template <typename T>
  void mirror(const std::string& name, const T& value);
  std::shared_ptr<Handle> handle_;
  // A point's attributes also as JSON, in the order written (ResultFile::mirror_points).
  std::shared_ptr<nlohmann::ordered_json> mirror_;
};

class ResultFile {
 public:
  // Claims the path (creating missing parent folders). Throws UsageError for a
  // destination that is not a regular file and RuntimeError (this rank) with
  // the reason when the path is unwritable or another run is writing it.
  explicit ResultFile(std::string path);
  ~ResultFile();
  ResultFile(const ResultFile&) = delete;
  ResultFile& operator=(const ResultFile&) = delete;

  void write_provenance(const Provenance& provenance);
  Group root();
  // A new group /points/NNNNNN, numbered in the order points are added.
  Group add_point();
  // From now on every point's attributes are also kept as a JSON object (for
  // --json): point_json() returns them in order, each starting with "point".
  void mirror_points();
  const std::vector<std::shared_ptr<nlohmann::ordered_json>>& point_json() const {
    return point_json_;
  }
  // Closes the file and writes it into place. Throws RuntimeError on failure.
  void commit();

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::unique_ptr<OutputFile> output_;
  std::shared_ptr<Handle> file_;
  std::shared_ptr<Handle> points_;
  int64_t point_count_ = 0;
  bool committed_ = false;
  bool mirror_points_ = false;
  std::vector<std::shared_ptr<nlohmann::ordered_json>> point_json_;
};

// Current UTC time as ISO 8601 ("2026-11-22T11:30:00Z") and as a compact
// stamp for folder names ("20261122T113000Z").
std::string utc_now_iso();
std::string utc_stamp();

}  // namespace paralab::results
