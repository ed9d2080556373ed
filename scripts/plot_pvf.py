#!/usr/bin/env python3
"""Draw the parameter vulnerability factor (PVF) of a pvf result file.

  plot_pvf.py RESULT.h5 [--fault flip] [--dtype fp32] [-o OUT.png]

Two panels, for one fault model (default: the first in the file):
  left   PVF per component and storage type: the PVF of a fault on a uniformly
         random bit of the word, i.e. the bit classes' PVFs weighted by their
         share of the word's bits (sign 1, exponent 8, mantissa 23 of FP32;
         sign 1, high 3, low 4 of INT8). Components need all of their type's
         classes in the file for this (else that bar is missing).
  right  PVF per component and bit class for one type (default fp32), with
         the 95% Wilson intervals the file holds.
The y axis is logarithmic from 1e-4 (a PVF of 0 is drawn at the floor).
Errors (no such file, not a pvf result, no such fault or type) exit 1.
"""
import argparse
import sys

import h5py
import matplotlib
import numpy as np

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402

CLASS_BITS = {
    "fp32": {"sign": 1, "exponent": 8, "mantissa": 23},
    "bf16": {"sign": 1, "exponent": 8, "mantissa": 7},
    "fp16": {"sign": 1, "exponent": 5, "mantissa": 10},
    "int8": {"sign": 1, "high": 3, "low": 4},
}
COMPONENTS = ["embedding", "bottom.weight", "bottom.bias", "top.weight", "top.bias"]
FLOOR = 1e-4


def text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def load(path):
    """The cells of a pvf result: a list of dicts."""
    try:
        with h5py.File(path, "r") as f:
            if text(f.attrs.get("app", "")) != "pvf" or "points" not in f:
                raise ValueError(f"{path} is not a pvf result file")
            cells = []
            for name in sorted(f["points"]):
                a = f["points"][name].attrs
                cells.append({k: text(a[k]) for k in ("component", "fault", "dtype", "bits")} |
                             {k: float(a[k]) for k in ("pvf", "ci_low", "ci_high", "trials")})
            return cells
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e}") from e


def word_pvf(cells, component, dtype):
    """PVF of a random bit of the word, from the per-class PVFs; None if a class is missing."""
    shares = CLASS_BITS[dtype]
    by_class = {c["bits"]: c["pvf"] for c in cells if c["component"] == component and c["dtype"] == dtype}
    if "any" in by_class:
        return by_class["any"]
    if not all(b in by_class for b in shares):
        return None
    return sum(by_class[b] * n for b, n in shares.items()) / sum(shares.values())


def draw_components(ax, cells, components):
    dtypes = [d for d in CLASS_BITS if any(c["dtype"] == d for c in cells)]
    width = 0.8 / max(1, len(dtypes))
    x = np.arange(len(components))
    for i, d in enumerate(dtypes):
        values = [word_pvf(cells, comp, d) for comp in components]
        ax.bar(x + i * width, [max(FLOOR, v) if v is not None else 0 for v in values], width, label=d)
    ax.set_xticks(x + width * (len(dtypes) - 1) / 2, components, rotation=20)
    ax.set_title("PVF of a random bit, per component")


def draw_classes(ax, cells, components, dtype):
    classes = list(CLASS_BITS[dtype]) + ["any"]
    classes = [b for b in classes if any(c["bits"] == b and c["dtype"] == dtype for c in cells)]
    width = 0.8 / max(1, len(classes))
    x = np.arange(len(components))
    for i, b in enumerate(classes):
        rows = [next((c for c in cells if c["component"] == comp and c["dtype"] == dtype and c["bits"] == b), None)
                for comp in components]
        y = np.array([max(FLOOR, r["pvf"]) if r else 0 for r in rows])
        lo = np.array([y[j] - max(FLOOR, r["ci_low"]) if r else 0 for j, r in enumerate(rows)])
        hi = np.array([max(FLOOR, r["ci_high"]) - y[j] if r else 0 for j, r in enumerate(rows)])
        ax.bar(x + i * width, y, width, yerr=[lo, hi], capsize=2, label=b)
    ax.set_xticks(x + width * (len(classes) - 1) / 2, components, rotation=20)
    ax.set_title(f"PVF per bit class, {dtype} (95% Wilson)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--fault", help="fault model (default: the first in the file)")
    parser.add_argument("--dtype", default="fp32", help="storage type of the right panel")
    parser.add_argument("-o", "--out", default="pvf.png")
    args = parser.parse_args()
    try:
        cells = load(args.file)
        if not cells:
            raise ValueError(f"{args.file} holds no cells")
        fault = args.fault or cells[0]["fault"]
        cells = [c for c in cells if c["fault"] == fault]
        if not cells:
            raise ValueError(f"no cells of fault model '{fault}'")
        if args.dtype not in CLASS_BITS or not any(c["dtype"] == args.dtype for c in cells):
            raise ValueError(f"no cells of type '{args.dtype}'")
    except ValueError as e:
        print(f"plot_pvf.py: error: {e}", file=sys.stderr)
        return 1
    # The DLRM's components in their order, then any other (the transformer's) as the file has them.
    components = [c for c in COMPONENTS if any(x["component"] == c for x in cells)]
    components += list(dict.fromkeys(x["component"] for x in cells if x["component"] not in components))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    draw_components(axes[0], cells, components)
    draw_classes(axes[1], cells, components, args.dtype)
    for ax in axes:
        ax.set_yscale("log")
        ax.set_ylim(FLOOR * 0.8, 1.2)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel(f"PVF ({fault})")
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"plot_pvf.py: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
