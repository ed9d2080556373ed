#!/usr/bin/env python3
"""Overlay per-step curves (datasets inside the points) from paralab result files.

  plot_curves.py FILE.h5 [FILE.h5 ...] [--y DATASET[,DATASET...]] [--series A[,B]]
                 [--where A=V[,V2] ...] [--smooth N] [--floor] [--relative-to A=V]
                 [--logy] [--title T] [-o OUT.png]
  plot_curves.py FILE.h5 [...] --list      the points, their parameters and datasets

scripts/plot.py draws one point attribute against another; this draws the
curves a point holds as datasets, e.g. bf16_train's loss per step, one panel
per --y dataset and one line per point (labelled by the --series attributes,
default: the point parameters that differ between the points plotted):
  plot_curves.py run.h5 --y heldout_loss,loss,lost_fraction --smooth 20 --floor
A dataset whose dims are "step" is drawn against the steps taken (1, 2, ...);
one whose dims are "eval" against the point's `heldout_step` dataset (the
steps taken at each evaluation). --smooth N replaces per-step curves by their
trailing mean over N steps. --floor draws the points' `entropy_floor_nats`
(the Markov data's loss floor) on loss panels. --relative-to precision=fp32
plots each curve as its difference from the curve of the point with that
attribute value in the same file, in percent of it. --where keeps points as in
plot.py. Reads schema_version 1 (docs/results.md). Errors exit 1.
"""
import argparse
import os
import signal
import sys

import h5py
import matplotlib
import numpy as np

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402

sys.dont_write_bytecode = True  # importing plot.py should not leave __pycache__ in scripts/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from plot import ResultError, fmt_value, load, matches, python_value, select  # noqa: E402

EVAL_STEPS = "heldout_step"
LABELS = {"loss": "train loss (nats/token)", "heldout_loss": "held-out loss (nats/token)",
          "lost_fraction": "updates lost to rounding (fraction)", "grad_norm": "gradient norm",
          "lr": "learning rate", "step_time_s": "step time (s)"}


def read_curves(path, points):
    """Attaches each point's datasets (name -> (values, dims)) as p.curves."""
    with h5py.File(path, "r") as f:
        for name, p in zip(sorted(f["points"]), points):
            group = f["points"][name]
            p.curves = {}
            for dname, d in group.items():
                if isinstance(d, h5py.Dataset):
                    p.curves[dname] = (np.asarray(d[()], dtype=float),
                                       python_value(d.attrs.get("dims", "")))


def x_of(p, name):
    values, dims = p.curves[name]
    if dims == "eval" and EVAL_STEPS in p.curves:
        steps = p.curves[EVAL_STEPS][0]
        if len(steps) == len(values):
            return steps
    return np.arange(1, len(values) + 1, dtype=float)


def smoothed(values, n):
    """Trailing mean over n values (shorter at the start)."""
    if n <= 1 or len(values) == 0:
        return values
    sums = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(idx - n, 0)
    return (sums[idx] - sums[lo]) / (idx - lo)


def default_series(points):
    keys = list(dict.fromkeys(k for p in points for k in p.params))
    varying = [k for k in keys if len({str(p.attrs.get(k)) for p in points}) > 1]
    return varying or keys[:1]


def label_of(p, series, many_files):
    text = ", ".join(fmt_value(k, p.attrs.get(k)) for k in series)
    return f"{text} [{p.file['file']}]" if many_files else text


def reference_of(p, points, attr, value):
    """The point of the same file whose attr equals value and whose other parameters match."""
    for q in points:
        if q.file["path"] != p.file["path"] or not matches(q.attrs.get(attr), value):
            continue
        if all(q.attrs.get(k) == p.attrs.get(k) for k in p.params if k != attr):
            return q
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("files", nargs="+", metavar="FILE.h5")
    ap.add_argument("--y", default="heldout_loss,loss",
                    help="comma list of datasets, one panel each (default heldout_loss,loss)")
    ap.add_argument("--series", help="comma list of attributes naming the lines")
    ap.add_argument("--where", action="append", default=[], metavar="ATTR=VALUE[,VALUE]",
                    help="keep only points whose ATTR is one of the VALUEs (repeatable)")
    ap.add_argument("--smooth", type=int, default=1,
                    help="trailing mean over this many steps for per-step curves")
    ap.add_argument("--floor", action="store_true",
                    help="draw entropy_floor_nats on the loss panels")
    ap.add_argument("--relative-to", metavar="ATTR=VALUE",
                    help="plot 100 * (curve - reference) / reference, the reference being the "
                         "point of the same file with ATTR=VALUE")
    ap.add_argument("--logy", action="store_true")
    ap.add_argument("--title")
    ap.add_argument("-o", "--output", metavar="OUT.png",
                    help="default: <first file's stem>_curves.png next to it")
    ap.add_argument("--list", action="store_true", help="print the points and their datasets")
    args = ap.parse_args()

    points = []
    for path in args.files:
        _, pts = load(path)
        read_curves(path, pts)
        points += pts
    if args.list:
        for p in points:
            params = ", ".join(f"{k}={fmt_value(k, p.attrs.get(k))}" for k in p.params)
            curves = ", ".join(f"{k}[{len(v)}]" for k, (v, _) in sorted(p.curves.items()))
            print(f"{p.file['file']}: {params}: {curves or 'no datasets'}")
        return
    wheres = []
    for w in args.where:
        if "=" not in w:
            raise ResultError(f"--where {w}: expected ATTR=VALUE[,VALUE]")
        attr, values = w.split("=", 1)
        wheres.append((attr, values.split(",")))
    points = select(points, wheres)
    names = [n for n in args.y.split(",") if n]
    for n in names:
        missing = [p for p in points if n not in p.curves]
        if missing:
            have = sorted({k for p in points for k in p.curves})
            raise ResultError(f"--y {n}: no such dataset in {len(missing)} point(s); they have: "
                              f"{', '.join(have) or 'none'}")
    series = args.series.split(",") if args.series else default_series(points)
    many_files = len({p.file["path"] for p in points}) > 1
    relative = None
    if args.relative_to:
        if "=" not in args.relative_to:
            raise ResultError(f"--relative-to {args.relative_to}: expected ATTR=VALUE")
        relative = args.relative_to.split("=", 1)

    fig, axes = plt.subplots(1, len(names), figsize=(5.2 * len(names), 4.0), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, name in zip(axes[0], names):
        floors = set()
        for i, p in enumerate(points):
            values, dims = p.curves[name]
            x = x_of(p, name)
            y = smoothed(values, args.smooth) if dims == "step" else values
            if relative:
                ref = reference_of(p, points, *relative)
                if ref is None:
                    raise ResultError(f"--relative-to {args.relative_to}: no such point beside "
                                      f"{label_of(p, series, many_files)}")
                rv, rdims = ref.curves[name]
                ry = smoothed(rv, args.smooth) if rdims == "step" else rv
                n = min(len(y), len(ry))
                x, y = x[:n], 100 * (y[:n] - ry[:n]) / ry[:n]
            style = "-o" if dims == "eval" and len(y) <= 40 else "-"
            ax.plot(x, y, style, color=colours[i % len(colours)], markersize=3, linewidth=1.2,
                    label=label_of(p, series, many_files))
            if "entropy_floor_nats" in p.attrs:
                floors.add(p.attrs["entropy_floor_nats"])
        if args.floor and not relative and "loss" in name:
            for f in sorted(floors):
                ax.axhline(f, color="black", linestyle="--", linewidth=1,
                           label=f"entropy floor {f:.4f}")
        ax.set_xlabel("step")
        label = LABELS.get(name, name)
        ax.set_ylabel(f"{label}: % vs {relative[1]}" if relative else label)
        if args.smooth > 1 and any(p.curves[name][1] == "step" for p in points):
            ax.set_title(f"{name} (mean of {args.smooth} steps)", fontsize=10)
        else:
            ax.set_title(name, fontsize=10)
        if args.logy:
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    if args.title:
        fig.suptitle(args.title)
    fig.tight_layout()
    out = args.output or os.path.splitext(args.files[0])[0] + "_curves.png"
    fig.savefig(out, dpi=100)
    print(f"wrote {out}")


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        main()
    except ResultError as e:
        print(f"plot_curves.py: error: {e}", file=sys.stderr)
        sys.exit(1)
    except OSError as e:
        print(f"plot_curves.py: error: {e}", file=sys.stderr)
        sys.exit(1)
