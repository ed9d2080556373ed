#include "core/signals.hpp"

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstring>
#include <mutex>

namespace paralab {

namespace {

constexpr int kSlots = 16;
constexpr size_t kPathBytes = 4096;

// Paths the handler unlinks: plain character arrays and atomic flags, all the handler may
// touch (unlink is async-signal-safe; malloc and std::string are not).
struct CleanupTable {
  char paths[kSlots][kPathBytes] = {};
  std::atomic<bool> used[kSlots] = {};
};
CleanupTable cleanup;
std::mutex table_mutex;  // registration only, never in the handler

std::atomic<bool> graceful{false};
std::atomic<int> requested_by{0};

void remove_registered_files() {
  for (int slot = 0; slot < kSlots; ++slot)
    if (cleanup.used[slot].load()) unlink(cleanup.paths[slot]);
}

extern "C" void on_termination(int signal) {
  const bool first = requested_by.exchange(signal) == 0;
  if (graceful.load() && first) return;  // the app stops at its next safe point
  remove_registered_files();
  std::signal(signal, SIG_DFL);
  raise(signal);
}

}  // namespace

void install_termination_handlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction action = {};
    action.sa_handler = on_termination;
    sigemptyset(&action.sa_mask);
    for (int signal : {SIGTERM, SIGINT, SIGHUP}) sigaction(signal, &action, nullptr);
  });
}

void set_graceful_termination(bool on) {
  graceful.store(on);
}

bool termination_requested() {
  return requested_by.load() != 0;
}

int termination_signal() {
  return requested_by.load();
}

int register_cleanup_file(const std::string& path) {
  if (path.size() + 1 > kPathBytes) return -1;
  std::lock_guard lock(table_mutex);
  for (int slot = 0; slot < kSlots; ++slot) {
    if (cleanup.used[slot].load()) continue;
    std::memcpy(cleanup.paths[slot], path.c_str(), path.size() + 1);
    cleanup.used[slot].store(true);
    return slot;
  }
  return -1;
}

void unregister_cleanup_file(int slot) {
  if (slot < 0 || slot >= kSlots) return;
  std::lock_guard lock(table_mutex);
  cleanup.used[slot].store(false);
}

}  // namespace paralab
