// output_file.hpp: a file written all at once and never left half-written: the bytes go to a
// temporary file beside the destination (PATH.tmp-PID), which is flushed to the device,
// renamed over PATH and its folder synced. The result writer and the checkpoints build their
// HDF5 file in memory and commit its image through this.
//
// The destination is claimed when the object is made, at start-up, so that a bad path fails
// before the run, not after it:
//   - its folder exists or is created;
//   - it is absent or a regular file: never a device, folder, pipe or socket (as root,
//     `-o /dev/null` would otherwise rename an HDF5 file over /dev/null);
//   - no other process is writing it: an advisory lock on PATH.lock, held until commit or
//     destruction (two runs given the same --out would otherwise both report success and one
//     result be lost);
//   - a file can be created in the folder.
// A termination signal removes the lock and any temporary (core/signals.hpp).
#pragma once

#include <cstddef>
#include <span>
#include <string>

namespace paralab::results {

class OutputFile {
 public:
  // `what` names the file in messages ("results", "checkpoint"). Throws UsageError for a
  // destination that is not a regular file, RuntimeError for the others (naming the reason).
  OutputFile(std::string path, std::string what);
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  // Writes `bytes` in place of the destination (atomically). The claim stays held, so a file
  // saved again and again (a checkpoint) stays this run's. Throws RuntimeError (a full disk
  // included) and leaves the destination as it was.
  void commit(std::span<const std::byte> bytes);
  // Releases the claim (also what the destructor does).
  void release();

  const std::string& path() const { return path_; }

 private:
  [[noreturn]] void fail(const std::string& reason) const;

  std::string path_, what_, lock_path_, temporary_path_;
  int lock_fd_ = -1;
  int lock_slot_ = -1;
  bool open_ = false;
};

// Test hook: commit() fails after writing this many bytes of the temporary file, as a full
// device would (ENOSPC); negative: never (the default).
void fail_writes_after(long long bytes);

}  // namespace paralab::results
