// resources.hpp: checks, made before a run allocates or reads anything, that every rank can do
// what it is about to: enough memory on its node for what the run will hold, and the same
// input files as rank 0.
//
// Both are collective and end in one usage error on every rank (printed once by rank 0), so
// a run that cannot go on never reaches the out-of-memory killer, a std::bad_alloc on some
// ranks, or a hang where one rank failed to read a node-local file and the others wait.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/world.hpp"

namespace paralab {

// Memory the ranks of this node may still use together, in bytes: the least of the node's
// MemAvailable (/proc/meminfo) and the room left under the process's cgroup limits (v2
// memory.max up the hierarchy, or v1 memory.limit_in_bytes; Slurm's --mem sets one).
// PARALAB_MEMORY_LIMIT (a size, "512M") lowers it further, for tests and for shared nodes.
// `source` names the binding limit.
struct MemoryLimit {
  uint64_t bytes = 0;
  std::string source;
};
MemoryLimit node_memory();
// What this one process may still map: RLIMIT_AS (ulimit -v) less its current size.
MemoryLimit process_memory();

// Collective: the run needs `bytes_per_rank` on every rank (an estimate of what it allocates
// at its largest). If one rank needs more than process_memory(), or the ranks on some node
// together more than node_memory(), every rank throws UsageError:
// "<what> needs about X per rank, Y for the N ranks on host H, but only Z is available
// (<source>); <advice>". Advice names the options that set the size.
void check_memory(const World& world, uint64_t bytes_per_rank, const std::string& what,
                  const std::string& advice);

// An input that every rank reads: a file, or a folder whose regular files are read in name
// order. `option` names it in messages ("--lengths file:", "--corpus").
struct InputPath {
  std::string option;
  std::string path;
  bool folder_allowed = false;  // a folder of files (a text corpus); else a file only
};

// Collective: each rank fingerprints every input (size and CRC32C of its bytes). If any rank
// cannot read one, or reads bytes different from rank 0's (node-local copies that differ),
// every rank throws the same UsageError naming the option, the path, the first such rank and
// its host.
void agree_on_inputs(const World& world, const std::vector<InputPath>& inputs);

}  // namespace paralab
