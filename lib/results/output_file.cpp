#include "results/output_file.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/errors.hpp"
#include "core/signals.hpp"

namespace paralab::results {

namespace {

std::atomic<long long> write_budget{-1};

// write(2) until done; returns 0 or the errno that stopped it.
int write_all(int fd, const std::byte* data, size_t size) {
  while (size > 0) {
    size_t chunk = size;
    const long long budget = write_budget.load();
    if (budget >= 0) {
      if (budget == 0) return ENOSPC;
      chunk = std::min<size_t>(chunk, static_cast<size_t>(budget));
    }
    const ssize_t written = ::write(fd, data, chunk);
    if (written < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (budget >= 0) write_budget.store(budget - written);
    data += written;
    size -= static_cast<size_t>(written);
  }
  return 0;
}

}  // namespace

void fail_writes_after(long long bytes) {
  write_budget.store(bytes);
}

OutputFile::OutputFile(std::string path, std::string what)
    : path_(std::move(path)), what_(std::move(what)) {
  if (path_.empty()) throw RuntimeError("the " + what_ + " path is empty");
  lock_path_ = path_ + ".lock";
  temporary_path_ = path_ + ".tmp-" + std::to_string(getpid());
  install_termination_handlers();

  const std::filesystem::path parent = std::filesystem::path(path_).parent_path();
  std::error_code error;
  if (!parent.empty()) std::filesystem::create_directories(parent, error);
  if (error) fail("cannot create folder '" + parent.string() + "': " + error.message());

  struct stat info = {};
  if (::stat(path_.c_str(), &info) == 0 && !S_ISREG(info.st_mode)) {
    const char* kind = S_ISDIR(info.st_mode)    ? "a folder"
                       : S_ISCHR(info.st_mode)  ? "a character device"
                       : S_ISBLK(info.st_mode)  ? "a block device"
                       : S_ISFIFO(info.st_mode) ? "a pipe"
                       : S_ISSOCK(info.st_mode) ? "a socket"
                                                : "not a regular file";
    throw UsageError("cannot write " + what_ + " to '" + path_ + "': it is " + kind +
                     "; give the path of a file");
  }

  lock_fd_ = ::open(lock_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0) fail(std::strerror(errno));
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    const int reason = errno;
    ::close(lock_fd_);
    lock_fd_ = -1;
    if (reason == EWOULDBLOCK)
      fail("another run is writing it (it holds '" + lock_path_ + "'); give each run its own path");
    fail(std::string("cannot lock '") + lock_path_ + "': " + std::strerror(reason));
  }
  lock_slot_ = register_cleanup_file(lock_path_);
  open_ = true;

  // A file can be created beside the destination (a full or read-only folder fails here).
  const int probe = ::open(temporary_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (probe < 0) {
    const int reason = errno;
    release();
    fail(std::strerror(reason));
  }
  ::close(probe);
  ::unlink(temporary_path_.c_str());
}

OutputFile::~OutputFile() {
  release();
}

void OutputFile::fail(const std::string& reason) const {
  throw RuntimeError("cannot write " + what_ + " to '" + path_ + "': " + reason);
}

void OutputFile::release() {
  if (!open_) return;
  open_ = false;
  ::unlink(lock_path_.c_str());
  unregister_cleanup_file(lock_slot_);
  ::close(lock_fd_);
  lock_fd_ = -1;
}

void OutputFile::commit(std::span<const std::byte> bytes) {
  if (!open_) throw RuntimeError("OutputFile::commit: '" + path_ + "' is no longer claimed");
  const int temp_slot = register_cleanup_file(temporary_path_);
  auto failed = [&](int fd, const std::string& reason) {
    if (fd >= 0) ::close(fd);
    ::unlink(temporary_path_.c_str());
    unregister_cleanup_file(temp_slot);
    fail(reason);
  };
  const int fd = ::open(temporary_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) failed(-1, std::strerror(errno));
  if (const int error = write_all(fd, bytes.data(), bytes.size()))
    failed(fd, std::string(std::strerror(error)) + " (after writing part of the temporary file '" +
                   temporary_path_ + "', now removed)");
  // The data on the device before the rename, so a crash cannot leave a renamed empty file.
  if (::fsync(fd) != 0) failed(fd, std::string("cannot sync: ") + std::strerror(errno));
  if (::close(fd) != 0) failed(-1, std::string("cannot close: ") + std::strerror(errno));
  if (::rename(temporary_path_.c_str(), path_.c_str()) != 0)
    failed(-1, std::string("cannot rename '") + temporary_path_ + "': " + std::strerror(errno));
  unregister_cleanup_file(temp_slot);
  // The rename itself durable: sync the folder (some file systems refuse; nothing to do then).
  const std::filesystem::path parent = std::filesystem::path(path_).parent_path();
  const int dir = ::open(parent.empty() ? "." : parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

}  // namespace paralab::results
