#include "core/resources.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "core/options.hpp"
#include "kernels/compress.hpp"

namespace paralab {

namespace {

namespace fs = std::filesystem;
constexpr uint64_t kUnlimited = std::numeric_limits<uint64_t>::max();

std::string host_name() {
  char name[MPI_MAX_PROCESSOR_NAME] = {};
  int length = 0;
  MPI_Get_processor_name(name, &length);
  return name;
}

// A "Key:   123 kB" line of a /proc file, in bytes; kUnlimited if absent.
uint64_t proc_kib(const std::string& file, const std::string& key) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.starts_with(key + ":")) continue;
    std::istringstream fields(line.substr(key.size() + 1));
    uint64_t kib = 0;
    if (fields >> kib) return kib * 1024;
  }
  return kUnlimited;
}

// A number in a cgroup file ("max" and absent: kUnlimited).
uint64_t cgroup_number(const fs::path& file) {
  std::ifstream in(file);
  std::string text;
  if (!(in >> text) || text == "max") return kUnlimited;
  char* end = nullptr;
  const unsigned long long value = std::strtoull(text.c_str(), &end, 10);
  return *end == '\0' ? value : kUnlimited;
}

// Room left under the cgroup limits of this process and its ancestors (v2), or the v1 memory
// controller's limit.
uint64_t cgroup_room() {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  uint64_t room = kUnlimited;
  while (std::getline(in, line)) {
    const size_t first = line.find(':'), second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    const std::string controllers = line.substr(first + 1, second - first - 1);
    const fs::path relative = fs::path(line.substr(second + 1)).relative_path();
    if (controllers.empty()) {  // v2: walk up from this cgroup to the root
      for (fs::path p = fs::path("/sys/fs/cgroup") / relative;; p = p.parent_path()) {
        const uint64_t limit = cgroup_number(p / "memory.max");
        if (limit != kUnlimited) {
          const uint64_t used = cgroup_number(p / "memory.current");
          room = std::min(room, used == kUnlimited || used > limit ? 0 : limit - used);
        }
        if (p == "/sys/fs/cgroup" || !p.has_parent_path() || p == p.parent_path()) break;
      }
    } else if (controllers.find("memory") != std::string::npos) {
      const fs::path p = fs::path("/sys/fs/cgroup/memory") / relative;
      const uint64_t limit = cgroup_number(p / "memory.limit_in_bytes");
      const uint64_t used = cgroup_number(p / "memory.usage_in_bytes");
      if (limit < (uint64_t{1} << 60) && used != kUnlimited)
        room = std::min(room, used > limit ? 0 : limit - used);
    }
  }
  return room;
}

// Room left under this process's address-space limit (ulimit -v).
uint64_t address_space_room() {
  rlimit limit{};
  if (getrlimit(RLIMIT_AS, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return kUnlimited;
  const uint64_t used = proc_kib("/proc/self/status", "VmSize");
  if (used == kUnlimited) return limit.rlim_cur;
  return used > limit.rlim_cur ? 0 : limit.rlim_cur - used;
}

struct Fingerprint {
  uint64_t bytes = 0;
  uint32_t crc = 0;
  bool operator==(const Fingerprint&) const = default;
};

void add_file(Fingerprint& f, const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error("cannot be read");
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const auto n = static_cast<size_t>(in.gcount());
    f.crc = kernels::compress::crc32c(std::as_bytes(std::span(buffer.data(), n)), f.crc);
    f.bytes += n;
  }
  if (in.bad()) throw std::runtime_error("cannot be read (I/O error)");
}

Fingerprint fingerprint(const std::string& path, bool folder_allowed) {
  std::error_code error;
  const fs::file_status status = fs::status(path, error);
  if (error || !fs::exists(status)) throw std::runtime_error("does not exist");
  Fingerprint f;
  if (fs::is_regular_file(status)) {
    add_file(f, path);
  } else if (fs::is_directory(status)) {
    if (!folder_allowed) throw std::runtime_error("is a folder, not a file");
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(path, error))
      if (entry.is_regular_file()) files.push_back(entry.path());
    if (error) throw std::runtime_error("is a folder that cannot be listed");
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      const std::string name = file.filename().string();
      f.crc =
          kernels::compress::crc32c(std::as_bytes(std::span(name.data(), name.size() + 1)), f.crc);
      add_file(f, file);
    }
  } else {
    throw std::runtime_error("is not a file (a device, pipe or socket)");
  }
  return f;
}

}  // namespace

MemoryLimit node_memory() {
  MemoryLimit m{proc_kib("/proc/meminfo", "MemAvailable"), "MemAvailable in /proc/meminfo"};
  auto lower = [&](uint64_t bytes, const char* source) {
    if (bytes < m.bytes) m = {bytes, source};
  };
  lower(cgroup_room(), "the cgroup memory limit (Slurm --mem)");
  if (const char* text = std::getenv("PARALAB_MEMORY_LIMIT"); text && *text)
    lower(parse_size(text, "PARALAB_MEMORY_LIMIT"), "PARALAB_MEMORY_LIMIT");
  return m;
}

MemoryLimit process_memory() {
  return {address_space_room(), "the address-space limit (ulimit -v)"};
}

void check_memory(const World& world, uint64_t bytes_per_rank, const std::string& what,
                  const std::string& advice) {
  MPI_Comm node;
  MPI_Comm_split_type(world.comm(), MPI_COMM_TYPE_SHARED, world.rank(), MPI_INFO_NULL, &node);
  unsigned long long on_node = bytes_per_rank;
  MPI_Allreduce(MPI_IN_PLACE, &on_node, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, node);
  int ranks_on_node = 1;
  MPI_Comm_size(node, &ranks_on_node);
  MPI_Comm_free(&node);
  agree_on(world.comm(), [&] {
    const std::string need = what + " needs about " + format_bytes(bytes_per_rank) + " per rank";
    const MemoryLimit process = process_memory();
    if (bytes_per_rank > process.bytes)
      throw UsageError(need + ", but a rank may use only " + format_bytes(process.bytes) + " (" +
                       process.source + "); " + advice);
    const MemoryLimit limit = node_memory();
    if (on_node <= limit.bytes) return;
    const std::string all = ranks_on_node > 1 ? ", " + format_bytes(on_node) + " for the " +
                                                    std::to_string(ranks_on_node) +
                                                    " ranks on host " + host_name()
                                              : " on host " + host_name();
    throw UsageError(need + all + ", but only " + format_bytes(limit.bytes) + " is available (" +
                     limit.source + "); " + advice);
  });
}

void agree_on_inputs(const World& world, const std::vector<InputPath>& inputs) {
  std::vector<Fingerprint> mine(inputs.size());
  agree_on(world.comm(), [&] {
    for (size_t i = 0; i < inputs.size(); ++i) {
      try {
        mine[i] = fingerprint(inputs[i].path, inputs[i].folder_allowed);
      } catch (const std::exception& e) {
        throw UsageError(inputs[i].option + " '" + inputs[i].path + "' " + e.what() + " on host " +
                         host_name());
      }
    }
  });
  static_assert(sizeof(Fingerprint) == 16);
  std::vector<Fingerprint> root = mine;
  MPI_Bcast(root.data(), static_cast<int>(root.size() * sizeof(Fingerprint)), MPI_BYTE, 0,
            world.comm());
  size_t differing = inputs.size();
  for (size_t i = 0; i < inputs.size() && differing == inputs.size(); ++i)
    if (!(mine[i] == root[i])) differing = i;
  agree(world.comm(), differing == inputs.size(),
        differing == inputs.size()
            ? ""
            : inputs[differing].option + " '" + inputs[differing].path + "' on host " +
                  host_name() + " holds other bytes than rank 0 reads (" +
                  std::to_string(mine[differing].bytes) + " bytes against " +
                  std::to_string(root[differing].bytes) +
                  "): give every rank the same file, on a shared file system or copied alike",
        ExitCode::usage);
}

}  // namespace paralab
