#!/usr/bin/env python3
"""Draw curves of one point attribute against another from paralab result files.

  plot.py FILE.h5 [FILE.h5 ...] --x ATTR --y ATTR [--series A[,B]] [--where A=V[,V2] ...]
          [--logx] [--logy] [--title T] [-o OUT.png]
  plot.py FILE.h5 [...] --list      the attributes of the points, with their values

One line per distinct value of the --series attributes (default: the point's
`parameters` except --x) and per file. With --x world_size or ranks the files
join instead, so runs at 1, 2, 4 ranks make one scaling curve:
  plot.py np1.h5 np2.h5 np4.h5 --x ranks --y busbw_GBps --where op=allreduce --where bytes=1M
--where keeps points whose attribute equals one of the values, compared as
numbers when both sides are numbers (size suffixes allowed: 1M = 1048576).
Simulated runs (root attribute mode=simulate) are dashed with 'x' markers.
Reads schema_version 1 (docs/results.md). Errors exit 1.
"""
import argparse
import os
import re
import signal
import sys

import h5py
import matplotlib
import numpy as np

matplotlib.use("Agg")  # no display: this runs on cluster nodes and in CI
from matplotlib import pyplot as plt  # noqa: E402 (after choosing the backend)
from matplotlib import ticker  # noqa: E402

SCHEMA_VERSION = 1
RANK_ATTRS = ("world_size", "ranks")  # x axes along which files join into one curve
# Root attributes copied onto every point, so they work with --x, --where and --series.
FILE_ATTRS = ("app", "world_size", "mode", "backend", "device", "device_name", "git_commit", "file")
# Unit suffixes of docs/results.md (and a few likely ones) -> axis label units.
UNITS = {"us": "us", "ms": "ms", "ns": "ns", "s": "s", "GBps": "GB/s", "MBps": "MB/s",
         "Gbps": "Gb/s", "gflops": "GFLOP/s", "tflops": "TFLOP/s", "pct": "%", "B": "B"}
SIZE_SUFFIXES = ["", "K", "M", "G", "T"]


class ResultError(Exception):
    """A problem with the input; the script reports it and exits 1."""


class Point:
    def __init__(self, file, attrs, params, metrics=()):
        self.file, self.attrs, self.params, self.metrics = file, attrs, params, metrics


def python_value(v):
    """h5py's numpy scalars, arrays and bytes -> plain str, int, float, tuple."""
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.ndarray):
        return tuple(python_value(e) for e in v.tolist())
    return v.item() if isinstance(v, np.generic) else v


def load(path):
    """Reads one result file -> (root attributes, [Point]) or raises ResultError."""
    if not os.path.exists(path):
        raise ResultError(f"{path}: no such file")
    if not h5py.is_hdf5(path):
        raise ResultError(f"{path}: not an HDF5 file")
    with h5py.File(path, "r") as f:
        root = {k: python_value(v) for k, v in f.attrs.items()}
        if "schema_version" not in root or "points" not in f:
            raise ResultError(f"{path}: not a paralab result file (no schema_version or /points)")
        if root["schema_version"] > SCHEMA_VERSION:
            raise ResultError(f"{path}: schema_version {root['schema_version']} is newer than this "
                              f"script reads ({SCHEMA_VERSION}); update paralab's scripts/")
        root["path"] = path
        root["file"] = os.path.splitext(os.path.basename(path))[0]
        root["simulated"] = root.get("mode") == "simulate"
        common = {k: root[k] for k in FILE_ATTRS if k in root}
        points = []
        for name in sorted(f["points"]):  # zero-padded names sort in run order
            attrs = {k: python_value(v) for k, v in f["points"][name].attrs.items()}
            params, metrics = (as_names(attrs.pop(k, ())) for k in ("parameters", "metrics"))
            points.append(Point(root, {**common, **attrs}, params, metrics))
    return root, points


def as_names(value):
    """A string-list attribute as a tuple (h5py gives a lone string for one name)."""
    return (value,) if isinstance(value, str) else tuple(value)


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def parse_number(text):
    """'2.5' -> 2.5; '8k', '1M', '1MiB' -> 8192, 1048576 (the suite's size suffixes); else None."""
    try:
        return float(text)
    except ValueError:
        m = re.fullmatch(r"(\d+)([kKMGT])(i?B)?", text.strip())
        return int(m[1]) * 1024 ** SIZE_SUFFIXES.index(m[2].upper()) if m else None


def matches(value, wanted):
    number = parse_number(wanted)
    if is_number(value) and number is not None:
        return abs(value - number) <= 1e-9 * max(abs(number), 1.0)
    return str(value) == wanted


def sort_key(v):
    """Numbers in numeric order, before strings and tuples (which cannot be compared with them)."""
    return (0, v, "") if is_number(v) else (1, 0, str(v))


def is_size(name):
    return name == "bytes" or name.endswith("_bytes") or name.endswith("_B")


def fmt_size(v, exact=False):
    """1024 -> '1K', 1572864 -> '1.5M' (or '1572864' when exact, so no size looks rounded)."""
    p = 0
    while p < len(SIZE_SUFFIXES) - 1 and abs(v) >= 1024 ** (p + 1):
        p += 1
    scaled = v / 1024 ** p
    if scaled == int(scaled):
        return f"{int(scaled)}{SIZE_SUFFIXES[p]}"
    return str(int(v)) if exact else f"{scaled:.3g}{SIZE_SUFFIXES[p]}"


def fmt_value(name, v):
    if is_number(v) and is_size(name):
        return fmt_size(v, exact=True)
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def fmt_list(items, most):
    return ", ".join(items[:most]) + (" ..." if len(items) > most else "")


def axis_label(name):
    """busbw_GBps -> 'busbw (GB/s)', time_us_median -> 'time median (us)'."""
    first, *rest = name.split("_")
    units = [UNITS[w] for w in rest if w in UNITS]
    words = [first] + [w for w in rest if w not in UNITS]
    return " ".join(words) + (f" ({units[0]})" if units else "")


def attribute_names(points):
    """All attribute names: parameters first, then metrics and the rest, then file attributes."""
    names = dict.fromkeys([k for p in points for k in p.params] +
                          [k for p in points for k in p.attrs if k not in FILE_ATTRS])
    return list(names) + [k for k in FILE_ATTRS if any(k in p.attrs for p in points)]


def select(points, wheres):
    """Applies the --where clauses in turn; an empty result says which values there were."""
    for attr, wanted in wheres:
        kept = [p for p in points if any(matches(p.attrs.get(attr), w) for w in wanted)]
        if not kept:
            values = sorted({p.attrs[attr] for p in points if attr in p.attrs}, key=sort_key)
            shown = fmt_list([fmt_value(attr, v) for v in values], 12)
            raise ResultError(f"nothing left to plot after --where {attr}={','.join(wanted)}; "
                              f"the points there have {attr} = {shown or 'nothing'}")
        points = kept
    return points


def renames_x(points, x, key):
    """True when key and x determine each other one to one among points that agree on
    everything else (comm_bench's requested `size` against its rounded `bytes`)."""
    groups = {}
    for p in points:
        rest = tuple((k, p.attrs.get(k)) for k in p.params if k not in (x, key))
        groups.setdefault((p.file["path"], rest), set()).add((p.attrs.get(key), p.attrs.get(x)))
    return all(len(g) == len({k for k, _ in g}) == len({v for _, v in g})
               for g in groups.values())


def default_series(points, files, x):
    keys = list(dict.fromkeys(k for p in points for k in p.params))
    # A rank count as a series would split a scaling curve into one-point lines.
    keys = [k for k in keys if k not in (RANK_ATTRS if x in RANK_ATTRS else (x,))]
    # A parameter that only renames x within each file (comm_bench's requested `size`
    # against the rounded `bytes`) would give every point a line of its own.
    keys = [k for k in keys if not renames_x(points, x, k)]
    # Apps whose parameters do not name the rank count still get one line per world size.
    world_sizes = {f.get("world_size") for f in files}
    if x not in RANK_ATTRS and "ranks" not in keys and len(world_sizes) > 1:
        keys.append("world_size")
    return keys


def make_lines(points, x, series_keys):
    """-> ({key: [points]}, {key: label}, varying keys). A key is (series values, simulated,
    file); the file is left out when x is a rank count, so the files join into one curve."""
    lines = {}
    for p in points:
        key = (tuple(p.attrs.get(k) for k in series_keys), p.file["simulated"],
               None if x in RANK_ATTRS else p.file["path"])
        lines.setdefault(key, []).append(p)
    varying = [k for i, k in enumerate(series_keys) if len({key[0][i] for key in lines}) > 1]
    labels = {}
    for key in lines:
        values = dict(zip(series_keys, key[0]))
        if len(varying) == 1:  # the legend title names the attribute, entries are its values
            labels[key] = fmt_value(varying[0], values[varying[0]])
        else:
            labels[key] = ", ".join(f"{k}={fmt_value(k, values[k])}" for k in varying)
    if len({(labels[k], k[1]) for k in lines}) < len(lines):  # the same series in several files
        labels = {k: ", ".join(s for s in (labels[k], lines[k][0].file["file"]) if s)
                  for k in lines}
    return lines, labels, varying


def set_ticks(ax, which, name, values, log):
    """Log axes of integers (sizes, rank counts) use powers of two; a few rank counts get
    exactly their own ticks; sizes read 1K, 4M."""
    axis = ax.xaxis if which == "x" else ax.yaxis
    integers = bool(values) and all(is_number(v) and float(v).is_integer() for v in values)
    if log:
        set_scale = ax.set_xscale if which == "x" else ax.set_yscale
        set_scale("log", **({"base": 2} if integers else {}))
    if not integers:
        return
    distinct = sorted(set(values))
    if not is_size(name) and len(distinct) <= 10:
        axis.set_major_locator(ticker.FixedLocator(distinct))
    elif log and distinct[-1] > 0:  # <= 10 powers of two, in phase with the data (1K, 4K, 16K)
        exps = [round(np.log2(v)) for v in distinct if v > 0]
        stride = max(1, -(-(max(exps) - min(exps)) // 9))
        phase = max(range(stride), key=lambda r: sum(e % stride == r for e in exps))
        axis.set_major_locator(ticker.FixedLocator(
            [2.0 ** e for e in range(min(exps), max(exps) + 1) if e % stride == phase]))
    if log:
        axis.set_minor_locator(ticker.NullLocator())
    fmt = fmt_size if is_size(name) else (lambda v: f"{v:g}")
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: fmt(v)))


def draw(args, points, series_keys):
    lines, labels, varying = make_lines(points, args.x, series_keys)
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    palette = plt.get_cmap("tab10").colors
    colors = {}  # a measured line and its simulated twin share a colour
    dropped = 0
    for key, pts in lines.items():
        pts = [p for p in pts if args.x in p.attrs and is_number(p.attrs.get(args.y))]
        if args.logy:  # a log axis cannot show zero (e.g. busbw of a collective on one rank)
            dropped += sum(p.attrs[args.y] <= 0 for p in pts)
            pts = [p for p in pts if p.attrs[args.y] > 0]
        if all(is_number(p.attrs[args.x]) for p in pts):
            pts.sort(key=lambda p: p.attrs[args.x])
        if len({p.attrs[args.x] for p in pts}) < len(pts):
            print(f"plot.py: warning: line '{labels[key] or 'all'}' has several points at one "
                  f"{args.x}; separate them with --series or --where", file=sys.stderr)
        label, sim = labels[key], key[1]
        legend = (f"{label} (simulated)" if label else "simulated") if sim else label or "measured"
        ax.plot([p.attrs[args.x] for p in pts], [p.attrs[args.y] for p in pts],
                linestyle="--" if sim else "-", marker="x" if sim else "o", markersize=5,
                linewidth=1.5, clip_on=False,  # markers at y=0 stay whole
                color=colors.setdefault(label, palette[len(colors) % len(palette)]),
                label=legend)
    if dropped:
        print(f"plot.py: warning: left out {dropped} point(s) with {args.y} <= 0 (log axis)",
              file=sys.stderr)

    set_ticks(ax, "x", args.x, [p.attrs[args.x] for p in points if args.x in p.attrs], args.logx)
    ys = [p.attrs[args.y] for p in points if is_number(p.attrs.get(args.y))]
    set_ticks(ax, "y", args.y, [y for y in ys if y > 0] if args.logy else ys, args.logy)
    if not args.logy and ys and min(ys) >= 0:
        ax.set_ylim(bottom=0)  # bandwidths and times read honestly from zero

    # The subtitle names what every point shares (e.g. the --where choices), so labels stay short.
    params = list(dict.fromkeys(k for p in points for k in p.params))
    candidates = params + ([] if "ranks" in params else ["world_size"])
    shared = [k for k in ["app", "device_name"] + candidates
              if k != args.x and k not in varying and k in points[0].attrs
              and len({p.attrs.get(k) for p in points}) == 1]
    first = points[0].attrs
    where = " on ".join(str(first[k]) for k in ("app", "device_name") if k in shared)
    values = ", ".join(f"{k}={fmt_value(k, first[k])}" for k in shared
                       if k not in ("app", "device_name"))
    ax.set_title(": ".join(s for s in (where, values) if s), fontsize=9, color="0.35")
    fig.suptitle(args.title or f"{axis_label(args.y)} vs {axis_label(args.x)}", fontsize=12)
    ax.set_xlabel(axis_label(args.x))
    ax.set_ylabel(axis_label(args.y))
    ax.grid(True, alpha=0.3)
    if len(lines) > 1:  # outside the axes, so the legend never hides a curve
        ax.legend(title=varying[0] if len(varying) == 1 else None, loc="upper left",
                  bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=9, title_fontsize=9)
    try:
        fig.savefig(args.output, bbox_inches="tight")
    except OSError as e:
        raise ResultError(f"cannot write {args.output}: {e.strerror or e}")
    plt.close(fig)


def list_attributes(files, points):
    for f in files:
        print(f"{f['path']}: {f.get('app')}, world_size {f.get('world_size')}, "
              f"mode {f.get('mode')}, {sum(p.file is f for p in points)} points")
    params = {k for p in points for k in p.params}
    metrics = {k for p in points for k in p.metrics}
    sections = [("parameters (identify a point)", lambda k: k in params),
                ("metrics", lambda k: k in metrics),
                ("other point attributes",
                 lambda k: k not in params and k not in metrics and k not in FILE_ATTRS),
                ("file attributes (the same for all points of a file)", lambda k: k in FILE_ATTRS)]
    for title, wanted in sections:
        print(title + ":")
        for k in filter(wanted, attribute_names(points)):
            vals = sorted({p.attrs[k] for p in points if k in p.attrs}, key=sort_key)
            if len(vals) > 6 and all(is_number(v) for v in vals):
                desc = f"{fmt_value(k, vals[0])} .. {fmt_value(k, vals[-1])} ({len(vals)} values)"
            else:
                desc = fmt_list([fmt_value(k, v) for v in vals], 8)
            print(f"  {k:<16} {desc}")


def fail(message):
    print(f"plot.py: error: {message}", file=sys.stderr)
    sys.exit(1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    # Usage errors exit 1 like every paralab tool (argparse's own choice is 2).
    parser.error = lambda msg: (parser.print_usage(sys.stderr), fail(msg))
    parser.add_argument("files", nargs="+", metavar="FILE.h5")
    parser.add_argument("--x", help="point attribute on the x axis (e.g. bytes, ranks)")
    parser.add_argument("--y", help="point attribute on the y axis (e.g. busbw_GBps)")
    parser.add_argument("--series", help="comma list of attributes: one line per distinct value")
    parser.add_argument("--where", action="append", default=[], metavar="ATTR=VALUE[,VALUE]",
                        help="keep only points whose ATTR is one of the VALUEs (repeatable)")
    parser.add_argument("--logx", action="store_true")
    parser.add_argument("--logy", action="store_true")
    parser.add_argument("--title")
    parser.add_argument("-o", "--output", metavar="OUT.png",
                        help="default: <first file's stem>_<y>_vs_<x>.png next to it")
    parser.add_argument("--list", action="store_true", help="print the point attributes and exit")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # 'plot.py --list | head' ends quietly
    try:
        loaded = [load(path) for path in args.files]
        files, points = [r for r, _ in loaded], [p for _, pts in loaded for p in pts]
        if not points:
            raise ResultError("the files hold no points")
        if args.list:
            list_attributes(files, points)
            return 0
        if not args.x or not args.y:
            raise ResultError("--x and --y are required (--list shows the attributes)")
        wheres = []
        for clause in args.where:
            attr, eq, value = clause.partition("=")
            if not eq or not attr:
                raise ResultError(f"--where '{clause}' is not ATTR=VALUE")
            wheres.append((attr, value.split(",")))
        series_keys = (args.series.split(",") if args.series
                       else default_series(points, files, args.x))
        available = attribute_names(points)
        named = ([("--x", args.x), ("--y", args.y)] + [("--where", a) for a, _ in wheres]
                 + [("--series", k) for k in series_keys])
        for option, name in named:
            if name not in available:
                raise ResultError(f"{option}: unknown attribute '{name}'; "
                                  f"available: {', '.join(available)}")
        if not any(is_number(p.attrs.get(args.y)) for p in points):
            raise ResultError(f"--y {args.y} is not a number in any point")
        points = select(points, wheres)
        for f in files:
            if not any(p.file is f for p in points):
                print(f"plot.py: warning: {f['path']}: no point left after --where",
                      file=sys.stderr)
        stem = os.path.splitext(args.files[0])[0]
        args.output = args.output or f"{stem}_{args.y}_vs_{args.x}.png"
        draw(args, points, series_keys)
    except ResultError as e:
        fail(str(e))
    print(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
