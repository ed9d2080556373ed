#!/usr/bin/env bash
# The kernel library and its tests cross-built for aarch64 with Debian's cross compiler and
# arm64 multiarch packages, run under qemu-user on every tier the emulated CPU offers (scalar,
# neon, sve, sve2: the tests loop over them), at two SVE vector lengths: 128 bits (Grace's
# Neoverse V2; Highway's SVE2_128 target) and 256 bits (Graviton 3; SVE_256). Emulated timings
# mean nothing; this checks correctness only.
#
# Only the kernels: the apps need HDF5, whose Debian -dev package cannot be installed for two
# architectures at once, and lib/ and apps/ hold no architecture-specific code.
#   scripts/test-aarch64.sh [BUILD_DIR]        (default build/aarch64)
# Exit 77 (ctest: skipped) without the cross toolchain: scripts/setup-deps.sh --aarch64.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build/aarch64}

missing=()
command -v aarch64-linux-gnu-g++ >/dev/null || missing+=(g++-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
for dir in hwy openblas GTest; do
  [[ -d /usr/lib/aarch64-linux-gnu/cmake/$dir ]] || missing+=("arm64 $dir")
done
if ((${#missing[@]} > 0)); then
  echo "test-aarch64: skipped, missing ${missing[*]} (scripts/setup-deps.sh --aarch64)"
  exit 77
fi

cmake -S "$root" -B "$build" -DCMAKE_TOOLCHAIN_FILE="$root/cmake/toolchains/aarch64-linux-gnu.cmake" \
  -DPARALAB_KERNELS_ONLY=ON -DPARALAB_CUDA=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j "$(nproc)"
# Emulation runs the tests 20-100x slower than a real core. Left out: the BF16 GEMM's cache-
# blocking shapes (on aarch64 that GEMM is widening + OpenBLAS, which the other GEMM tests
# cover; 5 minutes under qemu); at 256 bits also the largest attention cases and the GEMM
# (nothing in them depends on the vector length beyond what the smaller cases exercise).
run() {
  local sve_bytes=$1 exclude=$2
  echo "# kernel tests under qemu-aarch64 -cpu max, SVE vectors of $((8 * sve_bytes)) bits"
  # OpenBLAS's thread pool hangs at start-up under qemu-user: one OpenBLAS thread (the
  # kernels' own OpenMP threads still run two).
  QEMU_CPU="max,sve-default-vector-length=$sve_bytes" OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=2 \
    ctest --test-dir "$build" -L kernels -E "$exclude" -j "$(nproc)" --output-on-failure
}
status=0
run 16 "BlockedShapes" || status=1
run 32 "BlockedShapes|large_causal|Gemm" || status=1
exit $status
