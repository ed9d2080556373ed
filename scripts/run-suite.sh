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
    --benchmark_out="$out/kernels_bench.json" --benchmark_out_format=json -o "$out/kernels_bench.h5"
}

# Ring attention: every algorithm (and the automatic choice) at 2k and 4k
# tokens on one rank and on all, one thread each, checked against
# single-rank attention; persistent-KV prefill; decode; the same prefill
# simulated on this machine's calibrated profile (one plot: measured solid,
# simulated dashed); the Llama3-405B prefill on the paper's H100 clusters; and
# the paper's measured tables against simulate mode (reproduce-cp-paper.sh).
run_ring_attention() {
  local ra=("$bin/ring_attention" --threads 1 -n 3 -w 1)
  for ranks in 1 "$PARALAB_RANKS"; do
    paralab_mpirun -np "$ranks" "${ra[@]}" --algo all,auto -T 2k,4k --check \
      -o "$out/ring_attention_np$ranks.h5"
  done
  paralab_mpirun -np "$PARALAB_RANKS" "${ra[@]}" --algo all,auto -T 1k -P 3k --check \
    -o "$out/ring_attention_persistent.h5"
  paralab_mpirun -np "$PARALAB_RANKS" "${ra[@]}" --algo pass-q,pass-kv --decode-steps 4 \
    --batch 4 -P 8k --check -o "$out/ring_attention_decode.h5"
  "$here/calibrate-cpu-profile.sh" "$out/cpu-local.json" "$bin"
  "$bin/ring_attention" --mode simulate --profile "$out/cpu-local.json" --algo all -T 2k,4k \
    --sim-ranks 1,2,4,8 -o "$out/ring_attention_sim.h5"
  "$bin/ring_attention" --mode simulate --profile h100-gtt --model llama3-405b -d bf16 \
    --algo pass-kv,auto -T 128k,1000000 --sim-ranks 1,2,4,8,16 -o "$out/ring_attention_llama.h5"
  # The CP paper's measured tables against simulate mode (paper, simulated, error per case).
  "$here/reproduce-cp-paper.sh" --bin "$bin/ring_attention" | tee "$out/cp_paper_tables.txt"
  "$PARALAB_PYTHON" "$here/plot.py" "$out"/ring_attention_np*.h5 "$out/ring_attention_sim.h5" \
    --x ranks --y time_ms_median --series algo_requested --where T=4096 \
    --where algo_requested=pass_kv,pass_q,all_gather --logy -o "$out/ring_attention_scaling.png"
  "$PARALAB_PYTHON" "$here/plot.py" "$out/ring_attention_llama.h5" --x ranks --y ttft_s \
    --series T --where algo_requested=pass_kv --logx --logy -o "$out/ring_attention_llama_ttft.png"
}

# BF16 numerics: every precision policy for 100 steps on the Markov language,
# loss curves overlaid (docs/bf16_train.md has the full-length comparison).
run_bf16_train() {
  paralab_mpirun -np "$PARALAB_RANKS" "$bin/bf16_train" --precision all --steps 100 \
    --eval-every 25 -o "$out/bf16_train.h5"
  "$PARALAB_PYTHON" "$here/plot_curves.py" "$out/bf16_train.h5" \
    --y heldout_loss,loss,lost_fraction --smooth 10 --floor -o "$out/bf16_train_curves.png"
}

# DLRM with a compressed embedding all-to-all: a small Criteo-like model, four codecs.
run_dlrm_a2a() {
  paralab_mpirun -np "$PARALAB_RANKS" "$bin/dlrm_a2a" --model criteo-kaggle --max-rows 10000 \
    --batch 512 --steps 100 --eval-every 50 --codec none,fp16,int8,quantize_huffman \
    -o "$out/dlrm_a2a.h5"
}

# 4D-parallel training with workload-balanced packing: the three packings on
# the same long-tailed documents, trained for real over all ranks (context-
# parallel, first step checked against the single-rank model), then the
# paper's configurations and imbalance table simulated on H100 profiles.
run_wlb_4d() {
  paralab_mpirun -np "$PARALAB_RANKS" "$bin/wlb_4d" --cp "$PARALAB_RANKS" --layers 2 --d-model 128 \
    --heads 2 --kv-heads 2 --ffn 256 --context 2048 --steps 6 --threads 1 --check \
    -o "$out/wlb_4d.h5"
  "$bin/wlb_4d" --mode simulate --steps 32 -o "$out/wlb_4d_sim.h5"
}

# Parameter vulnerability: a small DLRM trained here, then single bit flips in
# its stored parameters per component, storage type and bit class.
run_pvf() {
  paralab_mpirun -np "$PARALAB_RANKS" "$bin/pvf" --train-steps 1000 --trials 256 \
    --dtypes fp32,bf16,int8 -o "$out/pvf.h5"
  "$PARALAB_PYTHON" "$here/plot_pvf.py" "$out/pvf.h5" --dtype fp32 -o "$out/pvf_fp32.png"
}

run_comm_bench
run_ring_attention
run_bf16_train
run_dlrm_a2a
run_wlb_4d
run_pvf
run_kernels_bench

echo
"$PARALAB_PYTHON" "$here/summarize.py" "$out"/*.h5
