#!/usr/bin/env bash
# The suite's main job (make run): every available app at a small default
# scale on this machine's cores, into results/<UTC stamp>/, then plots and a
# summary table. Usage: scripts/run-suite.sh [BIN_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/common.sh"
bin=${1:-$here/../build/bin}
out=$here/../results/$(paralab_stamp)
mkdir -p "$out"
out=$(cd "$out" && pwd)

echo "# paralab suite: $PARALAB_RANKS ranks, results in $out"

# One entry per app; each later app adds its own run here.
run_comm_bench() {
  paralab_mpirun -np "$PARALAB_RANKS" "$bin/comm_bench" --op all -b 1k -e 16M -f 4 -n 20 -w 5 \
    --check -o "$out/comm_bench.h5"
  "$PARALAB_PYTHON" "$here/plot.py" "$out/comm_bench.h5" --x bytes --y busbw_GBps --series op \
    --logx -o "$out/comm_bench_busbw.png"
  "$PARALAB_PYTHON" "$here/plot.py" "$out/comm_bench.h5" --x bytes --y time_us_median \
    --series op --logx --logy -o "$out/comm_bench_latency.png"
}

# A few representative kernels (Google Benchmark, JSON), with their ratios to
# the limits measured on the same cores.
run_kernels_bench() {
  "$bin/kernels_bench" --threads "$PARALAB_RANKS" \
    --benchmark_filter='attention_causal_(f32|bf16)/(1024|4096)|gemm_(f32|bf16)/square|bf16_convert_from_f32/nearest' \
    --benchmark_out="$out/kernels_bench.json" --benchmark_out_format=json
}

# Ring attention: every algorithm at 8k tokens, full and persistent-KV
# prefill, checked against single-rank attention.
run_ring_attention() {
  paralab_mpirun -np "$PARALAB_RANKS" "$bin/ring_attention" --algo all -T 4k,8k -n 5 -w 1 \
    --check -o "$out/ring_attention.h5"
  paralab_mpirun -np "$PARALAB_RANKS" "$bin/ring_attention" --algo all -T 1k -P 7k -n 5 -w 1 \
    --check -o "$out/ring_attention_persistent.h5"
  "$PARALAB_PYTHON" "$here/plot.py" "$out/ring_attention.h5" --x T --y tflops_per_rank \
    --series algo -o "$out/ring_attention_tflops.png"
}

run_comm_bench
run_ring_attention
run_kernels_bench

echo
"$PARALAB_PYTHON" "$here/summarize.py" "$out"/*.h5
