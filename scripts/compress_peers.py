#!/usr/bin/env python3
"""SZ3 beside paralab's compressor and ZFP on the same DLRM embedding blocks (issue 5).

  python3 scripts/compress_peers.py [--exe build/bin/compress_peers] [--repeats 5]
                                    [--out results/compress_peers.h5] [-- APP OPTIONS...]
  python3 scripts/compress_peers.py --file results/compress_peers.h5

Runs the compress_peers executable (or reads the HDF5 file it wrote with --file), which
trained the Criteo-like DLRM, captured each table's pooled embeddings as the forward
exchange sends them and each table's rows, and measured our codecs (quantize_huffman,
dedup_quantize_huffman, auto) and ZFP's fixed-accuracy mode on them. Then it compresses the
same blocks with SZ3 through pysz (pip package "pysz", SZ3's own Python bindings) at the
same absolute bound per block (szErrorBoundMode.ABS, absErrorBound = the bound the
executable recorded for that block), on one thread (openmp off), default algorithm
(interpolation + Lorenzo): sz3-1d on the block flattened, sz3-2d on [rows, d]. Ratio =
FP32 input bytes / compressed bytes; GB/s = FP32 input bytes (1e9) per second, the median
of --repeats calls per block, summed over the tables; max err / bound is the largest over
the tables of max |decoded - original| / that table's bound (> 1: the bound was missed).

Prints, per kind of data and bound, one markdown table of every codec (overall over the
tables), then per table: our auto codec's ratio, rates and choice beside the ratios of
ZFP and SZ3. Times from Python include pysz's call overhead (a few microseconds per block).

Exit codes: 0 success, 1 bad options, a missing h5py/pysz or a file without the blocks,
3 when the executable failed.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time


def fail(message, code=1):
    print(f"compress_peers.py: {message}", file=sys.stderr)
    sys.exit(code)


def text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def pysz_version():
    try:
        from importlib.metadata import version
        return version("pysz")
    except Exception:  # not installed as a distribution: the module still works
        return "?"


def median_seconds(repeats, f):
    times = []
    result = None
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        result = f()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def max_abs_error(np, original, decoded):
    nan_a, nan_b = np.isnan(original), np.isnan(decoded)
    if (nan_a != nan_b).any():
        return float("inf")
    keep = ~nan_a & (original != decoded)  # equal infinities are exact
    if not keep.any():
        return 0.0
    a = original[keep].astype(np.float64)
    b = decoded[keep].astype(np.float64)
    return float(np.abs(a - b).max())


def run_sz3(np, pysz, block, bound, two_d, repeats):
    """One block through SZ3 at an absolute bound: (bytes, compress s, decompress s, max err)."""
    sz, config_type, modes = pysz.sz, pysz.szConfig, pysz.szErrorBoundMode
    data = block if two_d else block.reshape(-1)
    config = config_type()
    config.errorBoundMode = modes.ABS
    config.absErrorBound = float(bound)
    config.openmp = False
    compress_s, (compressed, _) = median_seconds(repeats, lambda: sz.compress(data, config))
    decompress_s, (decoded, _) = median_seconds(
        repeats, lambda: sz.decompress(compressed, np.float32, data.shape))
    error = max_abs_error(np, data.reshape(-1), np.asarray(decoded).reshape(-1))
    return int(compressed.size), compress_s, decompress_s, error


class Run:
    """One codec on every block of one kind at one bound: per-table and overall numbers."""

    def __init__(self, codec, available=True, note=""):
        self.codec, self.available, self.note = codec, available, note
        self.input_bytes, self.compressed_bytes = [], []
        self.compress_s, self.decompress_s, self.error, self.bound = [], [], [], []
        self.chosen = []

    def add(self, input_bytes, compressed_bytes, compress_s, decompress_s, error, bound):
        self.input_bytes.append(input_bytes)
        self.compressed_bytes.append(compressed_bytes)
        self.compress_s.append(compress_s)
        self.decompress_s.append(decompress_s)
        self.error.append(error)
        self.bound.append(bound)

    def table(self, t):
        return (self.input_bytes[t] / self.compressed_bytes[t],
                self.input_bytes[t] / self.compress_s[t] / 1e9,
                self.input_bytes[t] / self.decompress_s[t] / 1e9,
                error_over_bound(self.error[t], self.bound[t]))

    def overall(self):
        total = sum(self.input_bytes)
        return (total / sum(self.compressed_bytes), total / sum(self.compress_s) / 1e9,
                total / sum(self.decompress_s) / 1e9,
                max(error_over_bound(e, b) for e, b in zip(self.error, self.bound)))


def error_over_bound(error, bound):
    if error == 0:
        return 0.0
    return error / bound if bound > 0 else float("inf")


def read_file(h5py, np, path):
    """The blocks per kind, the runs per (kind, bound) in file order, and the app's config."""
    with h5py.File(path, "r") as f:
        kinds = [k[len("blocks_"):] for k in f if k.startswith("blocks_")]
        if not kinds or "points" not in f:
            fail(f"{path} has no blocks_* groups or no points: not a compress_peers result")
        blocks = {}
        for kind in kinds:
            group = f["blocks_" + kind]
            blocks[kind] = [np.asarray(group[name][()], dtype=np.float32)
                            for name in sorted(group)]
        runs = {}
        for name in sorted(f["points"]):
            g = f["points"][name]
            a = g.attrs
            key = (text(a["data"]), float(a["bound_value"]))
            run = Run(text(a["codec"]), bool(a["available"]), text(a["note"]))
            if run.available:
                for t in range(len(g["table"])):
                    run.add(int(g["table_input_bytes"][t]), int(g["table_compressed_bytes"][t]),
                            float(g["table_compress_s"][t]), float(g["table_decompress_s"][t]),
                            float(g["table_max_error"][t]), float(g["table_bound"][t]))
                if "table_codec" in a:
                    run.chosen = [text(c) for c in a["table_codec"]]
            runs.setdefault(key, []).append(run)
        bound_mode = text(f["points"][sorted(f["points"])[0]].attrs["bound_mode"])
        config = text(f.attrs.get("command_line", ""))
    return blocks, runs, bound_mode, config


def add_sz3(np, pysz, blocks, runs, repeats):
    for (kind, bound_value), kind_runs in runs.items():
        reference = next(r for r in kind_runs if r.available)  # the per-table bounds
        for two_d in (False, True):
            run = Run("sz3-2d" if two_d else "sz3-1d")
            for t, block in enumerate(blocks[kind]):
                bound = reference.bound[t]
                size, cs, ds, err = run_sz3(np, pysz, block, bound, two_d, repeats)
                run.add(block.size * 4, size, cs, ds, err, bound)
            kind_runs.append(run)


def print_tables(runs, bound_mode):
    scale = "x each table's value range" if bound_mode == "rel" else "absolute"
    for (kind, bound_value), kind_runs in runs.items():
        print(f"\n### {kind}, bound {bound_value:g} ({scale})\n")
        print("| codec | ratio | compress GB/s | decompress GB/s | max err / bound | note |")
        print("|---|---:|---:|---:|---:|---|")
        for r in kind_runs:
            if not r.available:
                print(f"| {r.codec} | - | - | - | - | {r.note} |")
                continue
            ratio, comp, decomp, err = r.overall()
            note = r.note
            if err > 1 and "EXCEEDS" not in note:
                note += ("; " if note else "") + "EXCEEDS the bound"
            print(f"| {r.codec} | {ratio:.2f} | {comp:.3f} | {decomp:.3f} | {err:.3f} | {note} |")
        ours = next((r for r in kind_runs if r.codec == "auto" and r.available), None)
        if ours is None:
            continue
        peers = [r for r in kind_runs if r.available and r.codec in ("zfp-2d", "sz3-2d")]
        print(f"\nPer table, our auto codec ({kind}, bound {bound_value:g}):\n")
        head = "| table | values | bound | codec | ratio | compress GB/s | decompress GB/s | " \
               "max err / bound |" + "".join(f" {p.codec} ratio |" for p in peers)
        print(head)
        print("|---:|---:|---:|---|---:|---:|---:|---:|" + "---:|" * len(peers))
        for t in range(len(ours.bound)):
            ratio, comp, decomp, err = ours.table(t)
            chosen = ours.chosen[t] if t < len(ours.chosen) else ""
            others = "".join(f" {p.table(t)[0]:.2f} |" for p in peers)
            print(f"| {t} | {ours.input_bytes[t] // 4} | {ours.bound[t]:.3g} | {chosen} | "
                  f"{ratio:.2f} | {comp:.3f} | {decomp:.3f} | {err:.3f} |{others}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--exe", default=None,
                        help="the compress_peers executable (default: build/bin/compress_peers "
                             "beside this script's repository)")
    parser.add_argument("--file", default=None,
                        help="read this compress_peers result instead of running the executable")
    parser.add_argument("--out", default=None,
                        help="where the executable writes its HDF5 (default: a temporary file)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="SZ3 calls per block and direction, median (default 5)")
    parser.add_argument("app_args", nargs="*", help="options for the executable, after --")
    args = parser.parse_args()
    if args.repeats < 1:
        fail("--repeats must be at least 1")
    try:
        import h5py
        import numpy as np
    except ImportError as e:
        fail(f"needs h5py and numpy ({e}); scripts/setup-deps.sh installs them")
    try:
        import pysz
    except ImportError as e:
        fail(f"needs pysz, SZ3's Python bindings ({e}); scripts/setup-deps.sh installs it")

    path = args.file
    if path is None:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        exe = args.exe or os.path.join(root, "build", "bin", "compress_peers")
        if not os.path.exists(exe):
            fail(f"no executable at {exe}: build compress_peers or pass --exe / --file")
        temporary = None
        if args.out is None:
            temporary = tempfile.TemporaryDirectory(prefix="compress_peers-")
            path = os.path.join(temporary.name, "compress_peers.h5")
        else:
            path = args.out
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        command = [exe, *args.app_args, "-o", path]
        print("# " + " ".join(command), flush=True)
        done = subprocess.run(command, env=env)
        if done.returncode != 0:
            fail(f"compress_peers exited with {done.returncode}", 3)
    elif not os.path.exists(path):
        fail(f"no such file: {path}")

    blocks, runs, bound_mode, command_line = read_file(h5py, np, path)
    print(f"\n# SZ3 (pysz {pysz_version()}) on the blocks of {path}, "
          f"{args.repeats} repeats, one thread")
    if command_line:
        print(f"# the blocks came from: {command_line}")
    add_sz3(np, pysz, blocks, runs, args.repeats)
    print_tables(runs, bound_mode)


if __name__ == "__main__":
    main()
