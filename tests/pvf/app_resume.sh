#!/usr/bin/env bash
# app_resume.sh MPIEXEC PVF OUT-DIR: pvf end to end. One uninterrupted run on
# one rank; one run on three ranks stopped after 4 rounds (a checkpoint, no
# result file), then resumed. Every cell's counts must be equal, and the
# resumed run's --check (partial == full recomputation) must pass. Then
# scripts/plot_pvf.py draws the result (when matplotlib is there).
set -euo pipefail
mpiexec=$1 pvf=$2 out=$3
scripts=$(cd "$(dirname "$0")/../../scripts" && pwd)
mkdir -p "$out"
rm -f "$out"/pvf_resume_*
args=(--train-steps 50 --trials 96 --round 16 --ci-width 0.15 --dtypes fp32,bf16
      --faults flip,burst:3 --eval-samples 64 --bench-trials 20 --check)
fail() { echo "FAIL: $*"; exit 1; }

"$mpiexec" --oversubscribe -n 1 "$pvf" "${args[@]}" -o "$out/pvf_resume_whole.h5"
"$mpiexec" --oversubscribe -n 3 "$pvf" "${args[@]}" --stop-after-rounds 4 \
  -o "$out/pvf_resume_split.h5" | tee "$out/pvf_resume_stop.log"
[[ -e "$out/pvf_resume_split.h5" ]] && fail "a stopped run left a result file"
[[ -e "$out/pvf_resume_split.h5.ckpt" ]] || fail "a stopped run left no checkpoint"
grep -q "rerun with --resume" "$out/pvf_resume_stop.log" || fail "no resume hint"
"$mpiexec" --oversubscribe -n 3 "$pvf" "${args[@]}" --resume -o "$out/pvf_resume_split.h5" |
  tee "$out/pvf_resume_rest.log"
grep -q "# resumed from" "$out/pvf_resume_rest.log" || fail "did not resume"
[[ -e "$out/pvf_resume_split.h5.ckpt" ]] && fail "the checkpoint outlived the result file"

/usr/bin/python3 - "$out/pvf_resume_whole.h5" "$out/pvf_resume_split.h5" <<'PY'
import sys
import h5py
keys = ("component", "fault", "dtype", "bits", "trials", "incorrect", "nan_inf")
def cells(path):
    with h5py.File(path, "r") as f:
        return [tuple(f["points"][p].attrs[k] for k in keys) for p in sorted(f["points"])]
a, b = cells(sys.argv[1]), cells(sys.argv[2])
assert len(a) == len(b) == 60, (len(a), len(b))  # 2 types x 5 components x 2 faults x 3 classes
assert a == b, "\n".join(f"{x} != {y}" for x, y in zip(a, b) if x != y)
assert any(c[5] + c[6] > 0 for c in a), "no cell saw an incorrect output"
print(f"ok: {len(a)} cells equal at 1 rank and at 3 ranks stopped and resumed")
PY

if /usr/bin/python3 -c "import matplotlib" 2>/dev/null; then
  /usr/bin/python3 "$scripts/plot_pvf.py" "$out/pvf_resume_split.h5" --dtype bf16 -o "$out/pvf_resume.png"
  [[ -s "$out/pvf_resume.png" ]] || fail "plot_pvf.py drew nothing"
  if /usr/bin/python3 "$scripts/plot_pvf.py" "$out/pvf_resume_split.h5" --dtype int8 -o "$out/x.png" 2>"$out/plot.err"; then
    fail "plot_pvf.py accepted a type the file lacks"
  fi
  grep -q "no cells of type 'int8'" "$out/plot.err" || fail "plot_pvf.py: unclear error"
fi
