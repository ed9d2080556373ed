#!/usr/bin/env bash
# make bench: the benchmarks at full size on this machine, into
# results/bench-<UTC stamp>/. Usage: scripts/bench.sh [BIN_DIR]
#  - comm_bench: every operation, 1 KiB to 256 MiB, on all local cores;
#  - every Google Benchmark program in BIN_DIR (*_bench other than the
#    MPI apps), each writing its JSON report.
set -euo pipefail
shopt -s nullglob
here=$(cd "$(dirname "$0")" && pwd)
source "$here/common.sh"
bin=${1:-$here/../build/bin}
out=$here/../results/bench-$(paralab_stamp)
mkdir -p "$out"

paralab_mpirun -np "$PARALAB_RANKS" "$bin/comm_bench" --op all -b 1k -e 256M -f 2 -n 30 -w 5 \
  -o "$out/comm_bench.h5"
"$PARALAB_PYTHON" "$here/plot.py" "$out/comm_bench.h5" --x bytes --y busbw_GBps --series op \
  --logx -o "$out/comm_bench_busbw.png"

for program in "$bin"/*_bench; do
  name=$(basename "$program")
  [[ "$name" == comm_bench ]] && continue
  "$program" --benchmark_out="$out/$name.json" --benchmark_out_format=json -o "$out/$name.h5"
done
echo "# benchmarks written to $out"
