#!/usr/bin/env bash
# On a lent GPU machine (through the device tool), after scripts/device-bundle.sh
# ran here and .device is carried:
#   bash scripts/device-check.sh        (writes logs and results under $OUT)
# Builds with CUDA, runs the cuda/unit/mpi tests, the kernel benchmarks, PyTorch's
# SDPA as the attention peer (with the machine's own python3 and torch) and a
# CPU scaling sweep of comm_bench over the machine's cores. Everything lands
# in one archive, $OUT/device-results.tgz (the tool returns at most 8 files).
set -uo pipefail
out=/tmp/paralab-device
mkdir -p "$out"
trap 'tar -C "$out" -czf "${OUT:-/tmp}/device-results.tgz" .' EXIT
# The machine's own environment, for its python3 and torch (env.sh puts the bundled
# libraries first on LD_LIBRARY_PATH).
host_path=$PATH host_ld_library_path=${LD_LIBRARY_PATH-}
source .device/env.sh
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"

cmake -S . -B build-gpu -DPARALAB_CUDA=ON $PARALAB_DEVICE_CMAKE_FLAGS >"$out/configure.log" 2>&1 &&
  cmake --build build-gpu -j"$(nproc)" >"$out/build.log" 2>&1 || { tail -50 "$out/build.log"; exit 1; }

(cd build-gpu && ctest -L 'cuda|unit|mpi' --output-on-failure -j4) 2>&1 | tail -60 | tee "$out/ctest.log"
build-gpu/bin/kernels_bench --threads "$(nproc)" -o "$out/kernels_bench.h5" \
  --benchmark_out="$out/kernels_bench.json" \
  --benchmark_out_format=json 2>&1 | tee "$out/kernels_bench.txt" | tail -40
env PATH="$host_path" LD_LIBRARY_PATH="$host_ld_library_path" \
  python3 scripts/sdpa_peer.py --out "$out/sdpa.json" 2>&1 | tee "$out/sdpa.txt" | tail -40
python3 scripts/compare_sdpa.py "$out/kernels_bench.json" "$out/sdpa.json" | tee "$out/sdpa_compare.md"
for n in 1 2 4 8 16; do
  mpirun --oversubscribe -np $n build-gpu/bin/comm_bench --op all -b 1k -e 64M -f 4 \
    -o "$out/comm_bench_np$n.h5" >"$out/comm_bench_np$n.txt" 2>&1
done
tail -3 "$out"/comm_bench_np*.txt
