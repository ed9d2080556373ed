#include "results/writer.hpp"

#include <nlohmann/json.hpp>

#include <hdf5.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "core/errors.hpp"
#include "results/output_file.hpp"

namespace paralab::results {

class Handle {
 public:
  Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~Handle() {
    if (id_ >= 0) close_(id_);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t id() const { return id_; }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

namespace {

// HDF5 prints its own error stacks by default; paralab reports one message.
void silence_hdf5() {
  static const bool silenced = [] { return H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr) >= 0; }();
  (void)silenced;
}

hid_t checked(hid_t id, const std::string& what) {
  if (id < 0) throw RuntimeError("HDF5: cannot " + what);
  return id;
}

void checked_status(herr_t status, const std::string& what) {
  if (status < 0) throw RuntimeError("HDF5: cannot " + what);
}

using Owned = std::unique_ptr<Handle>;
Owned own(hid_t id, herr_t (*close)(hid_t)) {
  return std::make_unique<Handle>(id, close);
}

Owned string_type() {
  hid_t type = checked(H5Tcopy(H5T_C_S1), "copy string type");
  H5Tset_size(type, H5T_VARIABLE);
  H5Tset_cset(type, H5T_CSET_UTF8);
  return own(type, H5Tclose);
}

Owned simple_space(const std::vector<hsize_t>& shape) {
  return own(checked(H5Screate_simple(static_cast<int>(shape.size()), shape.data(), nullptr),
                     "create dataspace"),
             H5Sclose);
}

void write_attr(hid_t object, const std::string& name, hid_t type, hid_t space, const void* data) {
  if (H5Aexists(object, name.c_str()) > 0) H5Adelete(object, name.c_str());
  Owned attr = own(checked(H5Acreate2(object, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT),
                           "create attribute '" + name + "'"),
                   H5Aclose);
  checked_status(H5Awrite(attr->id(), type, data), "write attribute '" + name + "'");
}

template <class T>
void write_numeric_attr(hid_t object, const std::string& name, hid_t type, std::span<const T> v,
                        bool scalar) {
  Owned space = scalar ? own(H5Screate(H5S_SCALAR), H5Sclose) : simple_space({v.size()});
  write_attr(object, name, type, space->id(), v.data());
}

template <class T>
void write_dataset(hid_t group, const std::string& name, hid_t type, std::span<const T> values,
                   const std::vector<size_t>& shape, const std::string& units,
                   const std::string& dims) {
  std::vector<hsize_t> hshape(shape.begin(), shape.end());
  size_t total = 1;
  for (auto d : shape) total *= d;
  if (total != values.size())
    throw RuntimeError("dataset '" + name + "': shape does not match its value count");
  Owned space = simple_space(hshape);
  Owned set = own(checked(H5Dcreate2(group, name.c_str(), type, space->id(), H5P_DEFAULT,
                                     H5P_DEFAULT, H5P_DEFAULT),
                          "create dataset '" + name + "'"),
                  H5Dclose);
  if (total > 0)
    checked_status(H5Dwrite(set->id(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()),
                   "write dataset '" + name + "'");
  Owned text = string_type();
  Owned scalar = own(H5Screate(H5S_SCALAR), H5Sclose);
  const char* u = units.c_str();
  const char* d = dims.c_str();
  write_attr(set->id(), "units", text->id(), scalar->id(), &u);
  write_attr(set->id(), "dims", text->id(), scalar->id(), &d);
}

std::string format_utc(const char* format) {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm utc{};
  gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof text, format, &utc);
  return text;
}

}  // namespace

template <typename T>
void Group::mirror(const std::string& name, const T& value) {
  if (mirror_) (*mirror_)[name] = value;
}

void Group::attr(const std::string& name, double value) {
  mirror(name, value);
  write_numeric_attr<double>(handle_->id(), name, H5T_NATIVE_DOUBLE, {&value, 1}, true);
}

void Group::attr(const std::string& name, int64_t value) {
  mirror(name, value);
  write_numeric_attr<int64_t>(handle_->id(), name, H5T_NATIVE_INT64, {&value, 1}, true);
}

void Group::attr(const std::string& name, const std::string& value) {
  mirror(name, value);
  Owned type = string_type();
  Owned space = own(H5Screate(H5S_SCALAR), H5Sclose);
  const char* text = value.c_str();
  write_attr(handle_->id(), name, type->id(), space->id(), &text);
}

void Group::attr(const std::string& name, const std::vector<std::string>& values) {
  mirror(name, values);
  Owned type = string_type();
  Owned space = simple_space({values.size()});
  std::vector<const char*> texts;
  for (const auto& v : values) texts.push_back(v.c_str());
  write_attr(handle_->id(), name, type->id(), space->id(), texts.data());
}

void Group::attr(const std::string& name, const std::vector<double>& values) {
  mirror(name, values);
  write_numeric_attr<double>(handle_->id(), name, H5T_NATIVE_DOUBLE, values, false);
}

void Group::attr(const std::string& name, const std::vector<int64_t>& values) {
  mirror(name, values);
  write_numeric_attr<int64_t>(handle_->id(), name, H5T_NATIVE_INT64, values, false);
}

void Group::dataset(const std::string& name, std::span<const double> values,
                    const std::vector<size_t>& shape, const std::string& units,
                    const std::string& dims) {
  write_dataset<double>(handle_->id(), name, H5T_NATIVE_DOUBLE, values, shape, units, dims);
}

void Group::dataset(const std::string& name, std::span<const int64_t> values,
                    const std::vector<size_t>& shape, const std::string& units,
                    const std::string& dims) {
  write_dataset<int64_t>(handle_->id(), name, H5T_NATIVE_INT64, values, shape, units, dims);
}

Group Group::subgroup(const std::string& name) {
  hid_t id = checked(H5Gcreate2(handle_->id(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                     "create group '" + name + "'");
  return Group(std::make_shared<Handle>(id, H5Gclose));
}

ResultFile::ResultFile(std::string path) : path_(std::move(path)) {
  silence_hdf5();
  output_ = std::make_unique<OutputFile>(path_, "results");
  // In memory (the core driver, no backing store): HDF5 never writes to disk, so a full disk
  // is one error from OutputFile::commit, not a failed flush that leaves HDF5 with an open
  // file it crashes on at exit. A strong close closes every object still open.
  Owned access = own(checked(H5Pcreate(H5P_FILE_ACCESS), "create file access list"), H5Pclose);
  H5Pset_fclose_degree(access->id(), H5F_CLOSE_STRONG);
  checked_status(H5Pset_fapl_core(access->id(), size_t{1} << 20, false), "use an in-memory file");
  hid_t file = H5Fcreate(path_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, access->id());
  if (file < 0) throw RuntimeError("cannot create the HDF5 file for '" + path_ + "' in memory");
  file_ = std::make_shared<Handle>(file, H5Fclose);
  root().attr("schema_version", kSchemaVersion);
  points_ = root().subgroup("points").handle_;
}

ResultFile::~ResultFile() {
  points_.reset();
  file_.reset();
}

void ResultFile::write_provenance(const Provenance& p) {
  Group r = root();
  r.attr("app", p.app);
  r.attr("suite_version", p.suite_version);
  r.attr("git_commit", p.git_commit);
  r.attr("utc_time", p.utc_time);
  r.attr("command_line", p.command_line);
  r.attr("world_size", p.world_size);
  r.attr("hosts", p.hosts);
  r.attr("backend", p.backend);
  r.attr("device", p.device);
  r.attr("device_name", p.device_name);
  r.attr("cpu_isa", p.cpu_isa);
  r.attr("mode", p.mode);
  r.attr("config", p.config_json);
}

Group ResultFile::root() {
  return Group(file_);
}

Group ResultFile::add_point() {
  const int64_t index = point_count_++;
  char name[16];
  std::snprintf(name, sizeof name, "%06lld", static_cast<long long>(index));
  Group point = Group(points_).subgroup(name);
  if (mirror_points_) {
    point.mirror_ = std::make_shared<nlohmann::ordered_json>(nlohmann::ordered_json::object());
    (*point.mirror_)["point"] = index;
    point_json_.push_back(point.mirror_);
  }
  return point;
}

void ResultFile::mirror_points() {
  mirror_points_ = true;
}

void ResultFile::commit() {
  if (committed_) return;
  points_.reset();
  checked_status(H5Fflush(file_->id(), H5F_SCOPE_GLOBAL), "flush the results of '" + path_ + "'");
  const ssize_t size = H5Fget_file_image(file_->id(), nullptr, 0);
  if (size <= 0) throw RuntimeError("HDF5: cannot size the results of '" + path_ + "'");
  std::vector<std::byte> image(static_cast<size_t>(size));
  if (H5Fget_file_image(file_->id(), image.data(), image.size()) != size)
    throw RuntimeError("HDF5: cannot copy the results of '" + path_ + "'");
  file_.reset();
  output_->commit(image);
  committed_ = true;
}

std::string utc_now_iso() {
  return format_utc("%Y-%m-%dT%H:%M:%SZ");
}
std::string utc_stamp() {
  return format_utc("%Y%m%dT%H%M%SZ");
}

}  // namespace paralab::results
