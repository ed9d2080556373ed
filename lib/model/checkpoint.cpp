// HDF5 checkpoints of a training state; see checkpoint.hpp. The only file of
// lib/model that includes HDF5 (a private dependency of paralab_model).
#include "model/checkpoint.hpp"

#include <hdf5.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "core/errors.hpp"
#include "kernels/compress.hpp"
#include "results/output_file.hpp"

namespace paralab::model {

namespace {

constexpr const char* kFormat = "paralab-checkpoint";
// 2: the checksummed user block. 1 had none and is refused (its damage could not be seen).
constexpr int64_t kVersion = 2;

// The user block at the start of the file: magic (bytes 0-7), CRC32C (8-11) of the whole file
// with those four bytes as zero, the file's size (16-23); zeros to its end. HDF5 finds its
// superblock after it.
constexpr size_t kUserBlock = 512;
constexpr char kSumMagic[8] = {'P', 'L', 'C', 'K', 'S', 'U', 'M', '1'};

uint32_t checksum(std::span<const std::byte> file) {
  const std::byte zeros[4] = {};
  uint32_t crc = kernels::compress::crc32c(file.first(8));
  crc = kernels::compress::crc32c(zeros, crc);
  return kernels::compress::crc32c(file.subspan(12), crc);
}
static_assert(sizeof(bf16) == sizeof(uint16_t), "BF16 is stored as its 16-bit pattern");

// An HDF5 object closed when it goes out of scope.
class Hid {
 public:
  Hid(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~Hid() {
    if (id_ >= 0) close_(id_);
  }
  Hid(const Hid&) = delete;
  Hid& operator=(const Hid&) = delete;
  hid_t id() const { return id_; }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

void silence_hdf5() {
  static const bool silenced = [] { return H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr) >= 0; }();
  (void)silenced;
}

// --- writing --------------------------------------------------------------------

struct Writer {
  std::string path;  // for messages

  [[noreturn]] void fail(const std::string& what) const {
    throw RuntimeError("cannot write checkpoint '" + path + "': " + what);
  }
  hid_t check(hid_t id, const std::string& what) const {
    if (id < 0) fail(what);
    return id;
  }
  void check_status(herr_t status, const std::string& what) const {
    if (status < 0) fail(what);
  }

  // data nullptr: an empty list (a null space, nothing to write).
  void attr(hid_t object, const std::string& name, hid_t type, hid_t space, const void* data) {
    Hid a(check(H5Acreate2(object, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT),
                "attribute " + name),
          H5Aclose);
    if (data) check_status(H5Awrite(a.id(), type, data), "attribute " + name);
  }
  void attr(hid_t object, const std::string& name, int64_t value) {
    Hid space(H5Screate(H5S_SCALAR), H5Sclose);
    attr(object, name, H5T_NATIVE_INT64, space.id(), &value);
  }
  void attr(hid_t object, const std::string& name, double value) {
    Hid space(H5Screate(H5S_SCALAR), H5Sclose);
    attr(object, name, H5T_NATIVE_DOUBLE, space.id(), &value);
  }
  void attr(hid_t object, const std::string& name, const std::string& value) {
    Hid type(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(type.id(), H5T_VARIABLE);
    H5Tset_cset(type.id(), H5T_CSET_UTF8);
    Hid space(H5Screate(H5S_SCALAR), H5Sclose);
    const char* text = value.c_str();
    attr(object, name, type.id(), space.id(), &text);
  }
  void attr(hid_t object, const std::string& name, const std::vector<std::string>& values) {
    Hid type(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(type.id(), H5T_VARIABLE);
    H5Tset_cset(type.id(), H5T_CSET_UTF8);
    const hsize_t n = values.size();
    // HDF5 has no empty simple attribute space: an empty list is a null space.
    Hid space(n ? H5Screate_simple(1, &n, nullptr) : H5Screate(H5S_NULL), H5Sclose);
    std::vector<const char*> texts;
    for (const auto& v : values) texts.push_back(v.c_str());
    attr(object, name, type.id(), space.id(), n ? texts.data() : nullptr);
  }
  void attr(hid_t object, const std::string& name, const std::vector<int64_t>& values) {
    const hsize_t n = values.size();
    Hid space(n ? H5Screate_simple(1, &n, nullptr) : H5Screate(H5S_NULL), H5Sclose);
    attr(object, name, H5T_NATIVE_INT64, space.id(), n ? values.data() : nullptr);
  }

  void dataset(hid_t group, const std::string& name, hid_t file_type, hid_t memory_type,
               const void* data, size_t count) {
    const hsize_t n = count;
    Hid space(check(H5Screate_simple(1, &n, nullptr), "dataspace"), H5Sclose);
    Hid set(check(H5Dcreate2(group, name.c_str(), file_type, space.id(), H5P_DEFAULT, H5P_DEFAULT,
                             H5P_DEFAULT),
                  "dataset " + name),
            H5Dclose);
    if (count > 0)
      check_status(H5Dwrite(set.id(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data),
                   "dataset " + name);
  }

  hid_t group(hid_t parent, const std::string& name) {
    return check(H5Gcreate2(parent, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                 "group " + name);
  }
};

void write_config(Writer& w, hid_t root, const ModelConfig& c) {
  w.attr(root, "vocab", int64_t{c.vocab});
  w.attr(root, "layers", int64_t{c.layers});
  w.attr(root, "d_model", int64_t{c.d_model});
  w.attr(root, "heads", int64_t{c.heads});
  w.attr(root, "kv_heads", int64_t{c.kv_heads});
  w.attr(root, "ffn", int64_t{c.ffn});
  w.attr(root, "context", int64_t{c.context});
  w.attr(root, "rope_theta", double{c.rope_theta});
  w.attr(root, "norm_eps", double{c.norm_eps});
  w.attr(root, "init_std", double{c.init_std});
}

// --- reading --------------------------------------------------------------------

struct Reader {
  std::string path;
  hid_t file = -1;

  [[noreturn]] void fail(const std::string& what) const {
    throw UsageError("checkpoint '" + path + "': " + what);
  }

  bool has_attr(const std::string& name) const { return H5Aexists(file, name.c_str()) > 0; }

  int64_t integer(const std::string& name) const {
    if (!has_attr(name)) fail("no attribute '" + name + "' (not a paralab checkpoint?)");
    Hid a(H5Aopen(file, name.c_str(), H5P_DEFAULT), H5Aclose);
    int64_t value = 0;
    if (!a.ok() || H5Aread(a.id(), H5T_NATIVE_INT64, &value) < 0)
      fail("cannot read attribute '" + name + "'");
    return value;
  }
  double real(const std::string& name) const {
    if (!has_attr(name)) fail("no attribute '" + name + "' (not a paralab checkpoint?)");
    Hid a(H5Aopen(file, name.c_str(), H5P_DEFAULT), H5Aclose);
    double value = 0;
    if (!a.ok() || H5Aread(a.id(), H5T_NATIVE_DOUBLE, &value) < 0)
      fail("cannot read attribute '" + name + "'");
    return value;
  }
  std::vector<std::string> strings(const std::string& name) const {
    if (!has_attr(name)) fail("no attribute '" + name + "' (not a paralab checkpoint?)");
    Hid a(H5Aopen(file, name.c_str(), H5P_DEFAULT), H5Aclose);
    if (!a.ok()) fail("cannot read attribute '" + name + "'");
    Hid space(H5Aget_space(a.id()), H5Sclose);
    const hssize_t n = H5Sget_simple_extent_npoints(space.id());
    Hid type(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(type.id(), H5T_VARIABLE);
    H5Tset_cset(type.id(), H5T_CSET_UTF8);
    std::vector<char*> texts(static_cast<size_t>(std::max<hssize_t>(n, 0)), nullptr);
    if (n < 0 || (n > 0 && H5Aread(a.id(), type.id(), texts.data()) < 0))
      fail("cannot read attribute '" + name + "'");
    std::vector<std::string> out;
    if (n == 0) return out;
    for (char* t : texts) out.emplace_back(t ? t : "");
    H5Dvlen_reclaim(type.id(), space.id(), H5P_DEFAULT, texts.data());
    return out;
  }
  std::string text(const std::string& name) const {
    const auto values = strings(name);
    if (values.size() != 1) fail("attribute '" + name + "' is not one string");
    return values[0];
  }
  std::vector<int64_t> integers(const std::string& name) const {
    if (!has_attr(name)) fail("no attribute '" + name + "' (not a paralab checkpoint?)");
    Hid a(H5Aopen(file, name.c_str(), H5P_DEFAULT), H5Aclose);
    if (!a.ok()) fail("cannot read attribute '" + name + "'");
    Hid space(H5Aget_space(a.id()), H5Sclose);
    const hssize_t n = H5Sget_simple_extent_npoints(space.id());
    std::vector<int64_t> values(static_cast<size_t>(std::max<hssize_t>(n, 0)));
    if (n < 0 || (n > 0 && H5Aread(a.id(), H5T_NATIVE_INT64, values.data()) < 0))
      fail("cannot read attribute '" + name + "'");
    return values;
  }

  bool has_dataset(const std::string& name) const {
    // Walk the path so that a missing group is "no" rather than an error.
    size_t slash = 0;
    while ((slash = name.find('/', slash + 1)) != std::string::npos)
      if (H5Lexists(file, name.substr(0, slash).c_str(), H5P_DEFAULT) <= 0) return false;
    return H5Lexists(file, name.c_str(), H5P_DEFAULT) > 0;
  }

  // Reads a 1-D dataset of exactly `count` elements into data.
  void read(const std::string& name, hid_t memory_type, void* data, size_t count) const {
    if (!has_dataset(name)) fail("no dataset '" + name + "'");
    Hid set(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose);
    if (!set.ok()) fail("cannot open dataset '" + name + "'");
    Hid space(H5Dget_space(set.id()), H5Sclose);
    const hssize_t n = H5Sget_simple_extent_npoints(space.id());
    if (n < 0 || static_cast<size_t>(n) != count)
      fail("dataset '" + name + "' holds " + std::to_string(n) + " values, expected " +
           std::to_string(count));
    if (count > 0 && H5Dread(set.id(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
      fail("cannot read dataset '" + name + "' (a damaged file?)");
  }
  size_t length(const std::string& name) const {
    Hid set(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose);
    if (!set.ok()) fail("cannot open dataset '" + name + "'");
    Hid space(H5Dget_space(set.id()), H5Sclose);
    const hssize_t n = H5Sget_simple_extent_npoints(space.id());
    if (n < 0) fail("cannot read dataset '" + name + "'");
    return static_cast<size_t>(n);
  }
};

// The user block's checksum and size against the file's bytes: a damaged or truncated
// checkpoint is refused before HDF5 reads any of it.
void verify_checksum(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<std::byte> bytes;
  if (in) {
    in.seekg(0, std::ios::end);
    bytes.resize(static_cast<size_t>(std::max<std::streamoff>(0, in.tellg())));
    in.seekg(0);
    in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  if (!in) throw UsageError("checkpoint '" + path + "' cannot be read");
  const std::string name = "checkpoint '" + path + "' ";
  if (bytes.size() < kUserBlock || std::memcmp(bytes.data(), kSumMagic, sizeof kSumMagic) != 0) {
    if (H5Fis_hdf5(path.c_str()) > 0)
      throw UsageError(name +
                       "is not a paralab checkpoint with a checksum (another HDF5 file, "
                       "or one written before checkpoint format 2: start again without "
                       "--resume)");
    throw UsageError(name + "is not an HDF5 file (damaged or not a checkpoint)");
  }
  uint32_t crc = 0;
  uint64_t size = 0;
  std::memcpy(&crc, bytes.data() + 8, sizeof crc);
  std::memcpy(&size, bytes.data() + 16, sizeof size);
  if (size != bytes.size())
    throw UsageError(name + "is truncated or extended: " + std::to_string(bytes.size()) +
                     " bytes, written as " + std::to_string(size));
  const uint32_t actual = checksum(bytes);
  if (actual != crc) {
    char text[96];
    std::snprintf(text, sizeof text, "(CRC32C %08x, written as %08x)", actual, crc);
    throw UsageError(name + "is damaged: its checksum does not match " + text);
  }
}

// Opens the file read-only and checks that it is a checkpoint of this format.
std::unique_ptr<Hid> open_checkpoint(const std::string& path) {
  silence_hdf5();
  std::error_code error;
  if (!std::filesystem::exists(path, error))
    throw UsageError("checkpoint '" + path + "' does not exist");
  if (!std::filesystem::is_regular_file(path, error))
    throw UsageError("checkpoint '" + path + "' is not a file");
  verify_checksum(path);
  if (H5Fis_hdf5(path.c_str()) <= 0)
    throw UsageError("checkpoint '" + path + "' is not an HDF5 file (damaged or not a checkpoint)");
  auto file = std::make_unique<Hid>(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!file->ok()) throw UsageError("checkpoint '" + path + "' cannot be opened (damaged?)");
  Reader r{path, file->id()};
  if (!r.has_attr("format") || r.text("format") != kFormat)
    r.fail("not a paralab checkpoint (no format attribute '" + std::string(kFormat) + "')");
  const int64_t version = r.integer("version");
  if (version != kVersion)
    r.fail("format version " + std::to_string(version) + ", this build reads " +
           std::to_string(kVersion));
  return file;
}

CheckpointInfo read_info(const Reader& r) {
  CheckpointInfo info;
  info.step = r.integer("step");
  info.data_position = r.integer("data_position");
  info.world_size = r.integer("world_size");
  info.run_config = r.text("run_config");
  for (const std::string& name : r.strings("history_names")) {
    std::vector<double> values(r.length("history/" + name));
    r.read("history/" + name, H5T_NATIVE_DOUBLE, values.data(), values.size());
    info.history.emplace_back(name, std::move(values));
  }
  return info;
}

template <class T>
std::string str(T value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

void check_config(const Reader& r, const ModelConfig& c) {
  auto same_int = [&](const char* name, int mine) {
    const int64_t theirs = r.integer(name);
    if (theirs != mine)
      r.fail(std::string("written for ") + name + " " + std::to_string(theirs) + ", this run has " +
             std::to_string(mine));
  };
  auto same_real = [&](const char* name, float mine) {
    const double theirs = r.real(name);
    if (theirs != double{mine})
      r.fail(std::string("written for ") + name + " " + str(theirs) + ", this run has " +
             str(mine));
  };
  same_int("vocab", c.vocab);
  same_int("layers", c.layers);
  same_int("d_model", c.d_model);
  same_int("heads", c.heads);
  same_int("kv_heads", c.kv_heads);
  same_int("ffn", c.ffn);
  same_int("context", c.context);
  same_real("rope_theta", c.rope_theta);
  same_real("norm_eps", c.norm_eps);
  same_real("init_std", c.init_std);
}

std::vector<std::string> state_names(Optimizer& optimizer) {
  std::vector<std::string> names;
  for (const auto& [name, state] : optimizer.state()) names.push_back(name);
  return names;
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out.empty() ? "none" : out;
}

}  // namespace

const std::vector<double>* CheckpointInfo::find(const std::string& name) const {
  for (const auto& [n, values] : history)
    if (n == name) return &values;
  return nullptr;
}

void save_checkpoint(results::OutputFile& target, const Model& model, Optimizer& optimizer,
                     const CheckpointInfo& info) {
  silence_hdf5();
  Writer w{target.path()};
  std::vector<std::byte> image;
  {
    // In memory (the core driver, no backing store), with the user block reserved; the
    // image is then checksummed and written through the claimed OutputFile.
    Hid access(w.check(H5Pcreate(H5P_FILE_ACCESS), "file access list"), H5Pclose);
    H5Pset_fclose_degree(access.id(), H5F_CLOSE_STRONG);
    w.check_status(H5Pset_fapl_core(access.id(), size_t{1} << 20, false), "in-memory file");
    Hid create(w.check(H5Pcreate(H5P_FILE_CREATE), "file creation list"), H5Pclose);
    w.check_status(H5Pset_userblock(create.id(), kUserBlock), "user block");
    Hid file(H5Fcreate(target.path().c_str(), H5F_ACC_TRUNC, create.id(), access.id()), H5Fclose);
    w.check(file.id(), "cannot create the HDF5 file in memory");
    const hid_t root = file.id();
    const Parameters& params = model.parameters();
    const Precision precision = model.precision();
    w.attr(root, "format", std::string(kFormat));
    w.attr(root, "version", kVersion);
    write_config(w, root, model.config());
    w.attr(root, "precision", std::string(to_string(precision)));
    w.attr(root, "step", optimizer.steps());
    w.attr(root, "data_position", info.data_position);
    w.attr(root, "world_size", info.world_size);
    w.attr(root, "run_config", info.run_config);
    std::vector<std::string> names;
    std::vector<int64_t> sizes;
    for (const Parameter& p : params) {
      names.push_back(p.name());
      sizes.push_back(static_cast<int64_t>(p.size()));
    }
    w.attr(root, "tensor_names", names);
    w.attr(root, "tensor_sizes", sizes);

    Hid weights(w.group(root, "weights"), H5Gclose);
    if (stores_bf16_weights(precision)) {
      w.dataset(weights.id(), "bf16", H5T_STD_U16LE, H5T_NATIVE_UINT16, params.bf16_values().data(),
                params.numel());
      auto& mutable_params = const_cast<Parameters&>(params);  // kahan(): no const overload
      if (precision == Precision::bf16_pure_kahan)
        w.dataset(weights.id(), "kahan", H5T_STD_U16LE, H5T_NATIVE_UINT16,
                  mutable_params.kahan().data(), params.numel());
    } else {
      w.dataset(weights.id(), "values", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, params.values().data(),
                params.numel());
    }

    Hid state(w.group(root, "optimizer"), H5Gclose);
    std::vector<std::string> state_list;
    for (const auto& [name, values] : optimizer.state()) {
      state_list.push_back(name);
      w.dataset(state.id(), name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, values.data(), values.size());
    }
    w.attr(root, "optimizer_state", state_list);

    Hid history(w.group(root, "history"), H5Gclose);
    std::vector<std::string> history_names;
    for (const auto& [name, values] : info.history) {
      history_names.push_back(name);
      w.dataset(history.id(), name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, values.data(),
                values.size());
    }
    w.attr(root, "history_names", history_names);
    w.check_status(H5Fflush(file.id(), H5F_SCOPE_GLOBAL), "flush");
    // The image starts at the superblock; the user block goes in front of it on disk.
    const ssize_t size = H5Fget_file_image(file.id(), nullptr, 0);
    if (size <= 0) w.fail("cannot size the file image");
    image.resize(kUserBlock + static_cast<size_t>(size));
    if (H5Fget_file_image(file.id(), image.data() + kUserBlock, static_cast<size_t>(size)) != size)
      w.fail("cannot copy the file image");
  }
  std::memcpy(image.data(), kSumMagic, sizeof kSumMagic);
  const uint64_t bytes = image.size();
  std::memcpy(image.data() + 16, &bytes, sizeof bytes);
  const uint32_t crc = checksum(image);
  std::memcpy(image.data() + 8, &crc, sizeof crc);
  target.commit(image);
}

void save_checkpoint(const std::string& path, const Model& model, Optimizer& optimizer,
                     const CheckpointInfo& info) {
  results::OutputFile target(path, "checkpoint");
  save_checkpoint(target, model, optimizer, info);
}

CheckpointInfo read_checkpoint_info(const std::string& path) {
  const auto file = open_checkpoint(path);
  return read_info(Reader{path, file->id()});
}

CheckpointInfo load_checkpoint(const std::string& path, Model& model, Optimizer& optimizer) {
  const auto file = open_checkpoint(path);
  const Reader r{path, file->id()};
  Parameters& params = model.parameters();
  const Precision precision = model.precision();

  check_config(r, model.config());
  const std::string their_precision = r.text("precision");
  if (their_precision != to_string(precision))
    r.fail("written under precision " + their_precision + ", this run trains " +
           std::string(to_string(precision)));
  const auto names = r.strings("tensor_names");
  const auto sizes = r.integers("tensor_sizes");
  if (names.size() != params.count() || sizes.size() != params.count())
    r.fail("holds " + std::to_string(names.size()) + " tensors, this model has " +
           std::to_string(params.count()));
  for (size_t i = 0; i < params.count(); ++i)
    if (names[i] != params[i].name() || sizes[i] != static_cast<int64_t>(params[i].size()))
      r.fail("tensor " + std::to_string(i) + " is '" + names[i] + "' of " +
             std::to_string(sizes[i]) + " values, this model has '" + params[i].name() + "' of " +
             std::to_string(params[i].size()));
  const auto theirs = r.strings("optimizer_state");
  const auto mine = state_names(optimizer);
  if (theirs != mine)
    r.fail("written by an optimizer with state (" + joined(theirs) + "), this run's has (" +
           joined(mine) + ")");

  CheckpointInfo info = read_info(r);
  if (stores_bf16_weights(precision)) {
    r.read("weights/bf16", H5T_NATIVE_UINT16, params.bf16_values().data(), params.numel());
    if (precision == Precision::bf16_pure_kahan)
      r.read("weights/kahan", H5T_NATIVE_UINT16, params.kahan().data(), params.numel());
  } else {
    r.read("weights/values", H5T_NATIVE_FLOAT, params.values().data(), params.numel());
  }
  params.sync();

  // A checkpoint taken before the first step has empty state: nothing to read.
  const bool has_state = !theirs.empty() && r.length("optimizer/" + theirs.front()) > 0;
  if (has_state) optimizer.prepare_state(params.numel());
  for (const auto& [name, values] : optimizer.state()) {
    if (!has_state) break;
    r.read("optimizer/" + name, H5T_NATIVE_FLOAT, values.data(), values.size());
  }
  optimizer.set_steps(info.step);
  return info;
}

}  // namespace paralab::model
