#!/usr/bin/env bash
# A simulate-mode hardware profile of this machine, one rank per core, from
# its own measurements: comm_bench's sendrecv alpha-beta fit between two
# ranks (the link), and kernels_bench on one thread (the FP32 FMA peak, the
# attention kernel's rate on the blocks a ring step runs, the LSE merge's
# memory rate). Usage: scripts/calibrate-cpu-profile.sh [OUT.json] [BIN_DIR]
# Then: ring_attention --mode simulate --profile OUT.json ...
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/common.sh"
out=${1:-$here/../results/profiles/cpu-local.json}
bin=${2:-$here/../build/bin}
block=${PARALAB_CALIBRATION_BLOCK:-2048}  # tokens per attention call to calibrate on
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$(dirname "$out")"

paralab_mpirun -np 2 "$bin/comm_bench" --op sendrecv -b 256k -e 64M -f 2 -n 20 -w 3 \
  -o "$tmp/comm.h5" >/dev/null
"$bin/kernels_bench" --threads 1 --benchmark_min_time=0.5 \
  --benchmark_filter="BM_attention_nomask_f32/(1024|2048|4096)/|BM_attention_merge_into/32768/|BM_peak_fma_f32" \
  --benchmark_out="$tmp/kernels.json" --benchmark_out_format=json -o "$tmp/kernels.h5" \
  >"$tmp/kernels.log" 2>&1
"$PARALAB_PYTHON" "$here/make_profile.py" --comm "$tmp/comm.h5" --kernels "$tmp/kernels.json" \
  --block "$block" -o "$out"
echo "# profile written to $out"
