#!/usr/bin/env bash
# tests/scripts/test_plot.sh BIN_DIR SOURCE_DIR
#
# End-to-end test of scripts/plot.py and scripts/summarize.py on real
# comm_bench results:
#   1. runs comm_bench at 1 and 2 ranks into a temp dir;
#   2. plots a size sweep (--series op) and a scaling curve over ranks from both
#      files (--where), checks each PNG (magic bytes, size, the curves' colours
#      drawn) and that the scaling points form one line;
#   3. checks summarize.py names every op of the file;
#   4. makes a simulated copy (mode=simulate, scaled metrics) and plots it
#      beside the measured file;
#   5. checks that bad input exits 1 with a clear message.
# Exit 0 pass, 1 fail, 77 skip (the Python lacks h5py or matplotlib).
#
# Environment: PARALAB_PYTHON (default /usr/bin/python3, Debian's, which has
# h5py and matplotlib), MPIRUN (default mpirun), PARALAB_PLOT_TEST_KEEP=1
# keeps the temp dir for looking at the plots.
set -euo pipefail

say() { echo "test_plot: $*"; }
fail() {
  echo "test_plot: FAIL: $*" >&2
  exit 1
}

if (($# != 2)); then
  echo "usage: $0 BIN_DIR SOURCE_DIR" >&2
  exit 1
fi
bin_dir=$(realpath -m "$1")
src_dir=$(realpath -m "$2")
python=${PARALAB_PYTHON:-/usr/bin/python3}
mpirun=${MPIRUN:-mpirun}
plot=("$python" "$src_dir/scripts/plot.py")
summarize=("$python" "$src_dir/scripts/summarize.py")
# mpirun refuses root without these; ctest sets them, a hand-run may not.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export PYTHONDONTWRITEBYTECODE=1  # the checks import plot.py; keep the source tree clean

if ! "$python" -c 'import h5py, matplotlib, numpy' 2>/dev/null; then
  say "SKIP: $python cannot import h5py, matplotlib and numpy"
  exit 77
fi
[[ -x $bin_dir/comm_bench ]] || fail "no comm_bench in $bin_dir"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/paralab_plot.XXXXXX")
if [[ ${PARALAB_PLOT_TEST_KEEP:-0} == 1 ]]; then
  trap 'say "kept $tmp"' EXIT
else
  trap 'rm -rf "$tmp"' EXIT
fi

# --- 1. results at 1 and 2 ranks ------------------------------------------------
for n in 1 2; do
  timeout 120 "$mpirun" --oversubscribe -np "$n" "$bin_dir/comm_bench" --op all \
    -b 1k -e 1M -f 4 -n 3 -w 1 -o "$tmp/np$n.h5" >"$tmp/np$n.log" 2>&1 ||
    fail "comm_bench at $n ranks failed: $(cat "$tmp/np$n.log")"
done
say "comm_bench wrote np1.h5 and np2.h5"

# check_png FILE MIN_COLOURS: a PNG, not tiny, and with at least MIN_COLOURS of the
# tab10 line colours (plot.py draws series 1, 2, ... in tab10 order) drawn, and no more.
check_png() {
  local png=$1 want=$2
  [[ -f $png ]] || fail "$png was not written"
  [[ $(head -c 8 "$png" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]] ||
    fail "$png is not a PNG"
  (($(stat -c %s "$png") > 20000)) || fail "$png is only $(stat -c %s "$png") bytes"
  "$python" - "$png" "$want" <<'EOF' || fail "$png does not show the expected curves"
import sys
import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
png, want = sys.argv[1], int(sys.argv[2])
rgb = (mpimg.imread(png)[:, :, :3] * 255).round().astype(int)
assert rgb.shape[0] > 300 and rgb.shape[1] > 500, rgb.shape
# tab10's grey (7) also appears in anti-aliased text, so it does not count.
drawn = [i for i, c in enumerate(plt.get_cmap("tab10").colors)
         if i != 7 and (np.abs(rgb - np.round(np.array(c) * 255)).sum(axis=2) < 10).sum() > 50]
print(f"  {png.rsplit('/', 1)[-1]}: {rgb.shape[1]}x{rgb.shape[0]}, line colours {drawn}")
sys.exit(0 if drawn == list(range(want)) else 1)
EOF
}

# --- 2. plots -------------------------------------------------------------------------
# Size sweep, one line per op, default output name next to the input.
ops=$("$python" -c '
import sys, h5py
with h5py.File(sys.argv[1]) as f:
    print(" ".join(dict.fromkeys(g.attrs["op"] for g in f["points"].values())))' "$tmp/np2.h5")
read -ra ops <<<"$ops"
((${#ops[@]} >= 6)) || fail "np2.h5 has only ${#ops[@]} ops: ${ops[*]}"
out=$("${plot[@]}" "$tmp/np2.h5" --x bytes --y busbw_GBps --series op --logx)
[[ $out == "$tmp/np2_busbw_GBps_vs_bytes.png" ]] || fail "plot.py printed '$out'"
check_png "$out" "${#ops[@]}"

# Scaling curve over ranks from two files: one line, points at 1 and 2 ranks.
out=$("${plot[@]}" "$tmp/np1.h5" "$tmp/np2.h5" --x ranks --y busbw_GBps \
  --where op=allreduce --where size=1048576 -o "$tmp/scaling.png")
[[ $out == "$tmp/scaling.png" ]] || fail "plot.py printed '$out'"
check_png "$tmp/scaling.png" 1
PYTHONPATH=$src_dir/scripts "$python" - "$tmp" <<'EOF' || fail "scaling points do not form one line"
import sys
import plot
points = [p for f in ("np1", "np2") for p in plot.load(f"{sys.argv[1]}/{f}.h5")[1]]
points = plot.select(points, [("op", ["allreduce"]), ("size", ["1M"])])  # suffix == 1048576
lines, _, _ = plot.make_lines(points, "ranks", plot.default_series(points, [], "ranks"))
assert len(lines) == 1, list(lines)
assert sorted(p.attrs["ranks"] for p in next(iter(lines.values()))) == [1, 2]
EOF

# --list shows parameters and metrics.
"${plot[@]}" "$tmp/np1.h5" --list >"$tmp/list.txt"
for attr in op size bytes busbw_GBps time_us_median world_size; do
  grep -qE "^  $attr " "$tmp/list.txt" || fail "--list does not show $attr: $(cat "$tmp/list.txt")"
done
say "plots and --list ok"

# --- 3. summary -------------------------------------------------------------------------
"${summarize[@]}" "$tmp/np1.h5" "$tmp/np2.h5" >"$tmp/summary.txt"
for op in "${ops[@]}"; do
  [[ $(grep -cE "^  $op +[0-9]" "$tmp/summary.txt") == 2 ]] ||
    fail "summary lacks a row for $op in each file: $(cat "$tmp/summary.txt")"
done
grep -q "world size 2" "$tmp/summary.txt" || fail "summary lacks the world size"
say "summary names every op: ${ops[*]}"

# --- 4. measured and simulated together --------------------------------------------------
"$python" - "$tmp/np2.h5" "$tmp/sim2.h5" <<'EOF'
import shutil, sys, h5py
shutil.copy(sys.argv[1], sys.argv[2])
with h5py.File(sys.argv[2], "r+") as f:
    f.attrs["mode"], f.attrs["backend"] = "simulate", "sim"
    for point in f["points"].values():
        for name in list(point.attrs):
            if name.endswith("_GBps"):
                point.attrs[name] = point.attrs[name] * 1.5
            elif name.startswith("time_us"):
                point.attrs[name] = point.attrs[name] / 1.5
EOF
"${plot[@]}" "$tmp/np2.h5" "$tmp/sim2.h5" --x bytes --y busbw_GBps --where op=allreduce,alltoall \
  --logx -o "$tmp/mixed.png" >/dev/null
check_png "$tmp/mixed.png" 2  # two ops, the simulated twin of each in the same colour
PYTHONPATH=$src_dir/scripts "$python" - "$tmp" <<'EOF' || fail "simulated lines are not separate"
import sys
import plot
files = [plot.load(f"{sys.argv[1]}/{f}.h5") for f in ("np2", "sim2")]
points = plot.select([p for _, pts in files for p in pts], [("op", ["allreduce", "alltoall"])])
lines, _, _ = plot.make_lines(points, "bytes", ["op"])
assert sorted((k[0], k[1]) for k in lines) == [(("allreduce",), False), (("allreduce",), True),
                                               (("alltoall",), False), (("alltoall",), True)], lines
EOF
summary=$("${summarize[@]}" "$tmp/sim2.h5")  # not piped into grep -q: pipefail + SIGPIPE
grep -q ", simulated," <<<"$summary" || fail "summary does not say simulated: $summary"
say "measured + simulated ok"

# --- 5. bad input: exit 1 and one clear message -------------------------------------------
# expect_error REGEX COMMAND...
expect_error() {
  local regex=$1 output code=0
  shift
  output=$("$@" 2>&1) || code=$?
  ((code == 1)) || fail "exit $code, expected 1, from: $* -- output: $output"
  grep -qE -- "$regex" <<<"$output" || fail "no /$regex/ in the output of: $* -- output: $output"
  echo "  ok: $(grep -m1 -E -- "$regex" <<<"$output")"
}
echo "not hdf5" >"$tmp/text.h5"
cp "$tmp/np1.h5" "$tmp/v2.h5"
"$python" -c '
import sys, h5py
with h5py.File(sys.argv[1], "w") as f:  # HDF5, but no paralab attributes
    f["x"] = 1
with h5py.File(sys.argv[2], "a") as f:  # a schema from the future
    f.attrs["schema_version"] = 2' "$tmp/plain.h5" "$tmp/v2.h5"
xy=(--x bytes --y busbw_GBps -o "$tmp/bad.png")
expect_error "missing.h5: no such file" "${plot[@]}" "$tmp/missing.h5" "${xy[@]}"
expect_error "text.h5: not an HDF5 file" "${plot[@]}" "$tmp/text.h5" "${xy[@]}"
expect_error "plain.h5: not a paralab result" "${plot[@]}" "$tmp/plain.h5" "${xy[@]}"
expect_error "schema_version 2 is newer" "${plot[@]}" "$tmp/v2.h5" "${xy[@]}"
expect_error "--x: unknown attribute 'bogus'; available: .*bytes" \
  "${plot[@]}" "$tmp/np1.h5" --x bogus --y busbw_GBps -o "$tmp/bad.png"
expect_error "--y: unknown attribute 'bw'; available: .*busbw_GBps" \
  "${plot[@]}" "$tmp/np1.h5" --x bytes --y bw -o "$tmp/bad.png"
expect_error "nothing left to plot after --where op=broadcast; .*allreduce" \
  "${plot[@]}" "$tmp/np1.h5" "${xy[@]}" --where op=broadcast
expect_error "nothing left to plot after --where bytes=1000" \
  "${plot[@]}" "$tmp/np1.h5" "${xy[@]}" --where bytes=1000
expect_error "missing.h5: no such file" "${summarize[@]}" "$tmp/np1.h5" "$tmp/missing.h5"
expect_error "text.h5: not an HDF5 file" "${summarize[@]}" "$tmp/text.h5"
[[ ! -e $tmp/bad.png ]] || fail "a failed plot.py left $tmp/bad.png behind"
say "PASS"
