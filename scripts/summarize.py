#!/usr/bin/env python3
"""Print a compact summary of paralab result files.

  summarize.py FILE.h5 [FILE.h5 ...]

Per file: the run's provenance (app, world size, mode, device, git commit,
number of points), then for comm_bench one row per operation with the peak bus
bandwidth and the size where it peaks, and the latency (median time) at the
smallest size; ring_attention gets one row per point with its latency and
its parallel efficiency t(1) / (N t(N)) against the one-rank point of the same
problem in any of the files given (measured and simulated kept apart); other
apps list their parameters and metric names. Unreadable files are reported
and make the exit code 1; the others are still summarized.
"""
import os
import signal
import sys

sys.dont_write_bytecode = True  # importing plot.py should not leave __pycache__ in scripts/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from plot import (FILE_ATTRS, ResultError, fmt_list, fmt_size, fmt_value,  # noqa: E402
                  is_number, load)


def print_table(header, rows):
    """Left-aligned first column, right-aligned numbers, two spaces between columns."""
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    for r in [header] + rows:
        cells = [str(c).rjust(w) for c, w in zip(r, widths)]
        cells[0] = str(r[0]).ljust(widths[0])
        print("  " + "  ".join(cells).rstrip())


def comm_bench_rows(points):
    """One row per operation (and dtype, when several), in run order."""
    ops = {}
    dtypes = {p.attrs.get("dtype") for p in points}
    for p in points:
        name = p.attrs["op"] + (f"/{p.attrs['dtype']}" if len(dtypes) > 1 else "")
        ops.setdefault(name, []).append(p)
    rows = []
    for name, pts in ops.items():
        peak = max(pts, key=lambda p: p.attrs["busbw_GBps"])
        peak_alg = max(pts, key=lambda p: p.attrs["algbw_GBps"])
        smallest = min(pts, key=lambda p: p.attrs["bytes"])
        wrong = [p.attrs.get("wrong", -1) for p in pts]
        # busbw is 0 for collectives on one rank (nothing crosses a link); no peak to name then.
        has_bus = peak.attrs["busbw_GBps"] > 0
        rows.append([name, len(pts),
                     f"{peak.attrs['busbw_GBps']:.2f}" if has_bus else "-",
                     fmt_size(peak.attrs["bytes"], exact=True) if has_bus else "-",
                     f"{peak_alg.attrs['algbw_GBps']:.2f}",
                     f"{smallest.attrs['time_us_median']:.2f}",
                     fmt_size(smallest.attrs["bytes"], exact=True),
                     "off" if min(wrong) < 0 else f"{sum(wrong)} WRONG" if sum(wrong) else "ok"])
    print_table(["op", "sizes", "peak busbw (GB/s)", "at size", "peak algbw (GB/s)",
                 "latency (us)", "at size", "check"], rows)


RING_KEY = ("algo_requested", "T", "P", "phase", "dtype", "sharding", "heads", "kv_heads",
            "head_dim", "documents", "model")


def ring_key(p):
    return tuple(p.attrs.get(k) for k in RING_KEY) + (p.file["simulated"],)


def model_time_s(a):
    """A simulated model's time: a prefill's TTFT or a decode step's TTIT (None without one)."""
    return a.get("ttft_s", a.get("ttit_s"))


def ring_latency(p):
    """The whole model's TTFT / TTIT where the point simulated a model, else the attention's."""
    t = model_time_s(p.attrs)
    return t * 1e3 if t is not None else p.attrs["time_ms_median"]


def ring_attention_rows(points, everything):
    """Latency and parallel efficiency of each point; the one-rank baseline may
    come from any file given (a scaling study is one file per rank count)."""
    one_rank = {ring_key(p): ring_latency(p) for p in everything
                if p.attrs.get("app") == "ring_attention" and p.attrs.get("ranks") == 1}
    rows = []
    for p in points:
        a = p.attrs
        base = one_rank.get(ring_key(p))
        decode = a.get("phase") == "decode"
        eff = f"{100 * base / (a['ranks'] * ring_latency(p)):.1f}" if base and not decode else "-"
        name = a["algo"] + ("*" if a.get("algo_requested") == "auto" else "")
        rows.append([name, a["T"], a["P"], a["ranks"], f"{a['time_ms_median']:.2f}",
                     f"{model_time_s(a):.3f}" if model_time_s(a) is not None else "-",
                     f"{a.get('comm_wait_ms', 0):.2f}", f"{a['tflops_per_rank']:.3f}", eff])
    print_table(["algo", "T", "P", "ranks", "attention (ms)", "TTFT/TTIT (s)", "wait (ms)",
                 "TFLOP/s/rank", "efficiency (%)"], rows)


def generic_summary(points):
    params = list(dict.fromkeys(k for p in points for k in p.params))
    metrics = list(dict.fromkeys(k for p in points for k in p.metrics))
    for k in params:
        values = list(dict.fromkeys(fmt_value(k, p.attrs.get(k)) for p in points))
        print(f"  {k}: {fmt_list(values, 10)}")
    print(f"  metrics: {', '.join(metrics)}")


def summarize(path, root, points, everything=()):
    hosts = root.get("hosts", ())
    hosts = (hosts,) if isinstance(hosts, str) else hosts
    mode = "simulated" if root["simulated"] else root.get("mode", "?")
    print(f"{path}")
    host_names = f" ({fmt_list(list(hosts), 4)})" if hosts else ""
    print(f"  {root.get('app', '?')}: world size {root.get('world_size', '?')} on {len(hosts)} "
          f"host(s){host_names}, {mode}, "
          f"backend {root.get('backend', '?')}, device {root.get('device', '?')} "
          f"({root.get('device_name', '?')})"
          + (f", CPU kernels on {root['cpu_isa']}" if root.get("cpu_isa") and not root["simulated"]
             else ""))
    print(f"  git {root.get('git_commit', '?')}, suite {root.get('suite_version', '?')}, "
          f"{root.get('utc_time', '?')}, {len(points)} points")
    needed = ("op", "bytes", "busbw_GBps", "algbw_GBps", "time_us_median")
    if not points:
        return
    ring_needed = ("algo", "T", "P", "ranks", "time_ms_median", "tflops_per_rank")
    if root.get("app") == "comm_bench" and all(k in p.attrs for p in points for k in needed):
        comm_bench_rows(points)
    elif root.get("app") == "ring_attention" and all(
            k in p.attrs for p in points for k in ring_needed):
        ring_attention_rows(points, everything)
    else:
        generic_summary(points)


def main(argv):
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # 'summarize.py ... | head' ends quietly
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 1
    status, printed, loaded = 0, False, []
    for path in argv:
        try:
            loaded.append((path, *load(path)))
        except ResultError as e:
            print(f"summarize.py: error: {e}", file=sys.stderr)
            status = 1
        except (OSError, KeyError, TypeError, ValueError) as e:  # a damaged file
            print(f"summarize.py: error: {path}: cannot read: {e}", file=sys.stderr)
            status = 1
    everything = [p for _, _, points in loaded for p in points]
    for path, root, points in loaded:
        try:
            if printed:
                print()
            summarize(path, root, points, everything)
            printed = True
        except ResultError as e:
            print(f"summarize.py: error: {e}", file=sys.stderr)
            status = 1
        except (OSError, KeyError, TypeError, ValueError) as e:  # a damaged file
            print(f"summarize.py: error: {path}: cannot read: {e}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
