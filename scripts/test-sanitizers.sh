#!/usr/bin/env bash
# The suite built with AddressSanitizer + UndefinedBehaviorSanitizer (-DPARALAB_SANITIZE=ON,
# no CUDA, no benchmarks), running the unit, kernel, model, packing, wlb, dlrm and small MPI
# tests: any memory error, leak or undefined behaviour fails the test that hit it.
#   scripts/test-sanitizers.sh [BUILD_DIR]        (default build/sanitize)
# Open MPI's own allocations at start-up are not ours: leaks inside libmpi/libopen-pal/hwloc/
# libhdf5's one-time initialisation are suppressed (tests/sanitize/lsan.supp); nothing else is.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build/sanitize}
cmake -S "$root" -B "$build" -DPARALAB_SANITIZE=ON -DPARALAB_CUDA=OFF -DPARALAB_BENCHMARKS=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:detect_odr_violation=0"
export LSAN_OPTIONS="suppressions=$root/tests/sanitize/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# Unit-level tests and the MPI tests at small sizes; the long runs (make run's apps, the
# aarch64 build, the reliability scripts that time signals) stay in the plain build.
ctest --test-dir "$build" -j "$(nproc)" -L "unit|kernels|model|packing|wlb|dlrm|mpi" \
  -E "aarch64|large|BlockedShapes|slurm|bf16_train_resume|wlb_4d_check_2221" --output-on-failure
