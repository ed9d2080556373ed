#!/usr/bin/env bash
# reliability.sh CASE BIN_DIR OUT_DIR -- MPIRUN...
# The reliability cases that need more than one command (docs/results.md, "Guarantees"):
#   divergence    a learning rate of 1e30: bf16_train, wlb_4d and dlrm_a2a say so, mark the
#                 result file and exit 4; with --allow-divergence they exit 0
#   sigterm       bf16_train with --checkpoint stopped by SIGTERM: checkpoint saved, exit 5, no
#                 result file, lock or temporary left; the same command continues and its
#                 curves equal an uninterrupted run's bit for bit
#   signal_clean  comm_bench killed by SIGTERM mid-run leaves nothing behind
#   same_out      a second run given the same --out while the first writes it is refused
#   dev_null      -o /dev/null is refused and /dev/null stays a character device
#   full_disk     results and checkpoints on a full file system (a 16 KiB tmpfs; skipped,
#                 exit 77, where mounting is not allowed): one message, exit 3, nothing left
set -uo pipefail
case=$1 bin=$2 out=$3
shift 3
[[ "$1" == "--" ]] && shift
mpirun=("$@")
mkdir -p "$out"
rm -rf "${out:?}"/*
fail() { echo "FAIL: $*"; exit 1; }
small_bf16=(--layers 1 --d-model 32 --heads 2 --kv-heads 1 --ffn 64 --context 32 --batch 5
  --eval-batches 2 --threads 1)
attribute() { h5dump -a "$2" "$1" 2>/dev/null | sed -n 's/^ *(0): //p' | head -1; }
# The first point group's attribute $2 of file $1.
point_attribute() {
  local group
  group=$(h5ls "$1/points" 2>/dev/null | awk 'NR == 1 {print $1}')
  attribute "$1" "/points/$group/$2"
}
leftovers() { compgen -G "$1*" | grep -v -- "$2" ; }

case $case in
divergence)
  run() {
    local name=$1 code=$2
    shift 2
    timeout 300 "${mpirun[@]}" "$@" -o "$out/$name.h5" >"$out/$name.txt" 2>&1
    local got=$?
    [[ $got -eq $code ]] || { cat "$out/$name.txt"; fail "$name: exit $got, expected $code"; }
    [[ -f "$out/$name.h5" ]] || fail "$name: no result file"
    local at
    at=$(point_attribute "$out/$name.h5" diverged_at_step)
    [[ -n "$at" && "$at" -ge 0 ]] || fail "$name: diverged_at_step is '$at', expected a step"
    grep -q "DIVERGED" "$out/$name.txt" || fail "$name: stdout does not say DIVERGED"
    echo "ok: $name exit $got, diverged_at_step $at"
  }
  run bf16 4 -n 2 "$bin/bf16_train" "${small_bf16[@]}" --precision fp32 --steps 4 --lr 1e30
  run bf16_allowed 0 -n 2 "$bin/bf16_train" "${small_bf16[@]}" --precision fp32 --steps 4 \
    --lr 1e30 --allow-divergence
  grep -q "training diverged" "$out/bf16.txt" || fail "bf16: no 'training diverged' message"
  run wlb 4 -n 2 "$bin/wlb_4d" --layers 2 --d-model 32 --heads 4 --kv-heads 2 --ffn 48 --vocab 32 \
    --context 96 --steps 3 --dp 2 --threads 1 --packing plain --lr 1e30
  run dlrm 4 -n 2 "$bin/dlrm_a2a" --tables 4 --rows 200 --batch 31 --steps 4 --eval-every 2 \
    --eval-batches 2 --codec none --lr 1e30
  ;;
sigterm)
  args=("${small_bf16[@]}" --precision fp32,bf16-pure-rne --steps 3000 --eval-every 500
    --checkpoint "$out/ck.h5")
  "${mpirun[@]}" -n 2 "$bin/bf16_train" "${args[@]}" -o "$out/r.h5" >"$out/first.txt" 2>&1 &
  pid=$!
  # Stop it once it trains (the first held-out row after step 0), well before it finishes.
  for _ in $(seq 600); do
    grep -qE "^ +fp32 +[1-9][0-9]* " "$out/first.txt" && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.05
  done
  kill -TERM $pid
  wait $pid
  code=$?
  cat "$out/first.txt"
  [[ $code -ne 0 ]] || fail "exit 0 after SIGTERM"
  grep -q "stopped at step" "$out/first.txt" || fail "no 'stopped at step' message"
  [[ -f "$out/ck.fp32.h5" ]] || fail "no checkpoint after SIGTERM"
  [[ -e "$out/r.h5" ]] && fail "a result file was written by a stopped run"
  compgen -G "$out/*.tmp-*" >/dev/null && fail "temporaries left: $(ls "$out")"
  compgen -G "$out/*.lock" >/dev/null && fail "locks left: $(ls "$out")"
  timeout 300 "${mpirun[@]}" -n 2 "$bin/bf16_train" "${args[@]}" -o "$out/r.h5" >"$out/second.txt" 2>&1 ||
    { cat "$out/second.txt"; fail "the continuation failed"; }
  grep -q "continuing from it" "$out/second.txt" || fail "the same command did not continue"
  timeout 300 "${mpirun[@]}" -n 2 "$bin/bf16_train" "${small_bf16[@]}" --precision fp32,bf16-pure-rne \
    --steps 3000 --eval-every 500 -o "$out/full.h5" >/dev/null 2>&1 || fail "the full run failed"
  for p in 000000 000001; do
    for d in loss heldout_loss grad_norm lost_fraction; do
      h5diff "$out/full.h5" "$out/r.h5" /points/$p/$d /points/$p/$d >/dev/null ||
        fail "policy $p: $d differs from an uninterrupted run's"
    done
  done
  echo "ok: stopped, saved, continued by the same command, curves equal an uninterrupted run's"
  ;;
signal_clean)
  "${mpirun[@]}" -n 2 "$bin/comm_bench" -b 1k -e 64M -n 2000 -o "$out/r.h5" >"$out/log.txt" 2>&1 &
  pid=$!
  for _ in $(seq 1200); do  # up to 60 s: mpirun starts slowly on a loaded machine
    [[ -e "$out/r.h5.lock" ]] && break
    sleep 0.05
  done
  sleep 0.5
  kill -TERM $pid
  wait $pid
  [[ -z "$(ls -A "$out" | grep -v log.txt)" ]] || fail "left behind: $(ls "$out")"
  echo "ok: SIGTERM left no result, lock or temporary"
  ;;
same_out)
  "${mpirun[@]}" -n 1 "$bin/comm_bench" -b 1k -e 64M -n 2000 -o "$out/r.h5" >"$out/first.txt" 2>&1 &
  pid=$!
  for _ in $(seq 1200); do  # up to 60 s: mpirun starts slowly on a loaded machine
    [[ -e "$out/r.h5.lock" ]] && break
    sleep 0.05
  done
  timeout 60 "${mpirun[@]}" -n 1 "$bin/comm_bench" -b 1k -e 1k -o "$out/r.h5" >"$out/second.txt" 2>&1
  code=$?
  kill -TERM $pid
  wait $pid
  cat "$out/second.txt"
  [[ $code -eq 3 ]] || fail "the second run exited $code, expected 3"
  grep -q "another run is writing it" "$out/second.txt" || fail "no 'another run' message"
  echo "ok: the second run was refused"
  ;;
dev_null)
  timeout 60 "${mpirun[@]}" -n 2 "$bin/comm_bench" -b 1k -e 1k -o /dev/null >"$out/log.txt" 2>&1
  code=$?
  cat "$out/log.txt"
  [[ -c /dev/null ]] || fail "/dev/null is no longer a character device"
  [[ $code -eq 1 ]] || fail "exit $code, expected 1"
  grep -q "is a character device" "$out/log.txt" || fail "no message naming the device"
  echo "ok: refused, /dev/null intact"
  ;;
full_disk)
  disk="$out/disk"
  mkdir -p "$disk"
  mount -t tmpfs -o size=16k tmpfs "$disk" 2>/dev/null || { echo "skipped: cannot mount a tmpfs"; exit 77; }
  trap 'umount "$disk"' EXIT
  timeout 60 "${mpirun[@]}" -n 2 "$bin/comm_bench" -b 1k -e 64k -o "$disk/r.h5" >"$out/results.txt" 2>&1
  code=$?
  cat "$out/results.txt"
  [[ $code -eq 3 ]] || fail "results: exit $code, expected 3"
  [[ -z "$(ls -A "$disk")" ]] || fail "results: left behind: $(ls "$disk")"
  # 1 layer, d_model 64: weights and AdamW state of about 300 KiB, beyond the 16 KiB.
  timeout 120 "${mpirun[@]}" -n 2 "$bin/bf16_train" --layers 1 --d-model 64 --heads 2 --ffn 64 \
    --context 32 --batch 4 --threads 1 --precision fp32 --steps 2 --checkpoint "$disk/ck.h5" \
    -o "$out/train.h5" >"$out/checkpoint.txt" 2>&1
  code=$?
  cat "$out/checkpoint.txt"
  [[ $code -eq 3 ]] || fail "checkpoint: exit $code, expected 3"
  grep -qi "no space left" "$out/checkpoint.txt" || fail "checkpoint: the message does not say the disk is full"
  [[ -z "$(ls -A "$disk")" ]] || fail "checkpoint: left behind: $(ls "$disk")"
  echo "ok: full disk: one message, exit 3, nothing left"
  ;;
*)
  fail "unknown case $case"
  ;;
esac
