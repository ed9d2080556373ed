// signals.hpp: what SIGTERM (Slurm's time limit, scancel, mpirun forwarding Ctrl-C) and SIGINT
// do to a run.
//
// By default a termination signal removes the files registered here (a result file's
// temporary, a lock) and ends the process the way the signal would have. An app that can stop
// cleanly (a training loop with a checkpoint to write) asks for a graceful stop instead: the
// first signal only sets termination_requested(), which the app polls at safe points (agreed
// on every rank, then it saves and exits with ExitCode::interrupted); a second signal ends the
// process at once, still removing the registered files.
#pragma once

#include <string>

namespace paralab {

// Installs the handlers for SIGTERM, SIGINT and SIGHUP (idempotent).
void install_termination_handlers();

// Graceful mode: the first signal sets termination_requested() instead of ending the process.
void set_graceful_termination(bool graceful);
bool termination_requested();
// The signal that asked (0 if none).
int termination_signal();

// Files the handler removes if a signal ends the process. Returns a slot for
// unregister_cleanup_file (-1 if the table is full: the file is then not removed).
int register_cleanup_file(const std::string& path);
void unregister_cleanup_file(int slot);

}  // namespace paralab
