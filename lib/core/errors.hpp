// errors.hpp: exit codes and the exceptions that map to them.
//
// The rule that keeps MPI runs from hanging: an exception whose scope is
// Scope::all_ranks must be thrown by every rank at the same point (option
// validation that every rank performs identically, or a decision taken with
// agree()). run_app() then prints it once, from rank 0, and every rank exits
// with its code. Anything else (Scope::this_rank, std::exception) aborts the
// whole job with MPI_Abort, so a failure on one rank never leaves the others
// waiting.
#pragma once

#include <stdexcept>
#include <string>

namespace paralab {

// The codes every app exits with (docs/results.md lists them for users).
enum class ExitCode : int {
  ok = 0,
  usage = 1,         // bad options or input files; nothing written
  check_failed = 2,  // --check found wrong results; the result file is written
  runtime = 3,       // the system failed (I/O, a full disk, CUDA, MPI)
  diverged = 4,      // training diverged (non-finite or exploding loss); the file is marked
  interrupted = 5,   // stopped by SIGTERM/SIGINT after saving a checkpoint; rerun to resume
};

enum class Scope { all_ranks, this_rank };

class Error : public std::runtime_error {
 public:
  Error(ExitCode code, Scope scope, const std::string& message)
      : std::runtime_error(message), code_(code), scope_(scope) {}
  ExitCode code() const { return code_; }
  Scope scope() const { return scope_; }

 private:
  ExitCode code_;
  Scope scope_;
};

// Bad options or impossible configurations; raised on every rank.
class UsageError : public Error {
 public:
  explicit UsageError(const std::string& message)
      : Error(ExitCode::usage, Scope::all_ranks, message) {}
};

// A --check found wrong results; raised on every rank after agreement.
class CheckFailed : public Error {
 public:
  explicit CheckFailed(const std::string& message)
      : Error(ExitCode::check_failed, Scope::all_ranks, message) {}
};

// A failure of the system (I/O, CUDA, a library). Local unless stated.
class RuntimeError : public Error {
 public:
  explicit RuntimeError(const std::string& message, Scope scope = Scope::this_rank)
      : Error(ExitCode::runtime, scope, message) {}
};

// Training diverged: written to the result file, then raised on every rank after agreement.
class Diverged : public Error {
 public:
  explicit Diverged(const std::string& message)
      : Error(ExitCode::diverged, Scope::all_ranks, message) {}
};

// A termination signal stopped the run at a safe point (after a checkpoint); every rank.
class Interrupted : public Error {
 public:
  explicit Interrupted(const std::string& message)
      : Error(ExitCode::interrupted, Scope::all_ranks, message) {}
};

// Thrown to end a run early with success on every rank (e.g. after --help).
class EarlyExit : public Error {
 public:
  EarlyExit() : Error(ExitCode::ok, Scope::all_ranks, "") {}
};

}  // namespace paralab
