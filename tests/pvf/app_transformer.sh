#!/usr/bin/env bash
# app_transformer.sh MPIEXEC PVF OUT-DIR: pvf --model transformer end to end.
# A small campaign on one rank and on two ranks (one thread per rank, the
# transformer's default); every cell's counts must be equal, and --check
# (partial == full recomputation on every component) must pass.
set -euo pipefail
mpiexec=$1 pvf=$2 out=$3
mkdir -p "$out"
rm -f "$out"/pvf_transformer_*
args=(--model transformer --layers 2 --d-model 32 --heads 2 --kv-heads 1 --ffn 64 --seq 16
      --eval-sequences 4 --train-steps 30 --batch 8 --trials 64 --round 16 --ci-width 0.2
      --dtypes fp32,int8 --faults flip,stuck1 --bench-trials 10 --check)
fail() { echo "FAIL: $*"; exit 1; }

"$mpiexec" --oversubscribe --bind-to none -n 1 "$pvf" "${args[@]}" -o "$out/pvf_transformer_np1.h5" |
  tee "$out/pvf_transformer_np1.log"
"$mpiexec" --oversubscribe --bind-to none -n 2 "$pvf" "${args[@]}" -o "$out/pvf_transformer_np2.h5"
grep -q "1 ranks, 1 threads each" "$out/pvf_transformer_np1.log" || fail "not 1 thread"
grep -q "eval top-1" "$out/pvf_transformer_np1.log" || fail "no training summary"
grep -q "lm_head .* yes" "$out/pvf_transformer_np1.log" || fail "no recomputation row for lm_head"

/usr/bin/python3 - "$out/pvf_transformer_np1.h5" "$out/pvf_transformer_np2.h5" <<'PY'
import sys
import h5py
keys = ("component", "fault", "dtype", "bits", "trials", "incorrect", "nan_inf")
def cells(path):
    with h5py.File(path, "r") as f:
        assert f["model"].attrs["model"] == "transformer"
        return [tuple(f["points"][p].attrs[k] for k in keys) for p in sorted(f["points"])]
a, b = cells(sys.argv[1]), cells(sys.argv[2])
# fp32 3 classes + int8 3 classes, 8 components, 2 faults
assert len(a) == len(b) == 96, (len(a), len(b))
assert a == b, "\n".join(f"{x} != {y}" for x, y in zip(a, b) if x != y)
assert any(c[5] + c[6] > 0 for c in a), "no cell saw an incorrect output"
assert any(c[5] + c[6] < c[4] for c in a), "every trial incorrect"
print(f"ok: {len(a)} cells equal at 1 and 2 ranks")
PY
