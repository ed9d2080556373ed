#!/usr/bin/env python3
"""Compare paralab's CUDA BF16 attention with PyTorch SDPA measured on the same GPU.

  python3 scripts/compare_sdpa.py KERNELS_BENCH.json SDPA.json [--backend auto|best|flash|...]
                                  [--target 0.70] [--target-from 8k] [--strict]

KERNELS_BENCH.json: kernels_bench --benchmark_out=FILE --benchmark_out_format=json (the rows
BM_cuda_attention_causal_bf16/<T>; its TFLOPs counter, and the of_cublas ratio). With
--benchmark_repetitions the median aggregate is used, else the median of the runs; a case that
was skipped ("no CUDA GPU", a CUDA error) shows its message.
SDPA.json: scripts/sdpa_peer.py --out FILE. --backend picks its rows: "auto" (default; SDPA's
own choice, as a user gets it), "best" (the fastest backend at each T), or one forced backend.

Prints a markdown section for docs/kernels.md on stdout: the setting, then one row per T with
paralab TFLOP/s, SDPA TFLOP/s and their ratio, which should be at least --target (0.70) for
T >= --target-from (8k). Both sides count FLOPs as attention_forward_flops does for a causal
mask, 4 * D * H * T * (T + 1) / 2. Standard library only.

Exit codes: 0 success (also when the target is missed, unless --strict), 1 unreadable input or
nothing to compare, 2 --strict and a ratio at T >= --target-from is below the target or missing.
"""
import argparse
import json
import re
import statistics
import sys

PARALAB_FAMILY = "BM_cuda_attention_causal_bf16"
TIME_UNIT_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}


class InputError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error exits 1 (paralab's exit code for usage errors), not 2."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def parse_size(text):
    match = re.fullmatch(r"\s*(\d+)\s*([kKmM]?)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: '{text}' (use e.g. 8192, 8k)")
    return int(match.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20}[match.group(2).lower()]


def size_label(n):
    return f"{n >> 10}k" if n % 1024 == 0 else str(n)


def load_json(path, what):
    try:
        with open(path) as stream:
            return json.load(stream)
    except OSError as error:
        raise InputError(f"cannot read {what} {path}: {error.strerror}")
    except json.JSONDecodeError as error:
        raise InputError(f"{what} {path} is not JSON: {error}")


def paralab_rows(document, path):
    """{T: {"tflops", "ms", "of_cublas"} or {"error"}} from Google Benchmark's JSON."""
    benchmarks = document.get("benchmarks") if isinstance(document, dict) else None
    if not isinstance(benchmarks, list):
        raise InputError(f"{path} has no 'benchmarks' list: not Google Benchmark JSON output")
    pattern = re.compile(re.escape(PARALAB_FAMILY) + r"/(\d+)(?:/|$)")
    runs, medians, errors = {}, {}, {}
    for entry in benchmarks:
        match = pattern.match(str(entry.get("name", "")))
        if not match:
            continue
        t = int(match.group(1))
        if entry.get("error_occurred"):
            errors[t] = entry.get("error_message") or "error"
            continue
        if "TFLOPs" not in entry:
            continue
        scale = TIME_UNIT_MS.get(entry.get("time_unit", "ns"), 1e-6)
        row = {"tflops": float(entry["TFLOPs"]),
               "ms": float(entry.get("real_time", float("nan"))) * scale,
               "of_cublas": entry.get("of_cublas")}
        if entry.get("run_type") == "aggregate":
            if entry.get("aggregate_name") == "median":
                medians[t] = row
        else:
            runs.setdefault(t, []).append(row)
    rows = {t: {"error": message} for t, message in errors.items()}
    for t, measured in runs.items():  # repetitions without aggregates: their median
        ratios = [r["of_cublas"] for r in measured if isinstance(r["of_cublas"], (int, float))]
        rows[t] = {"tflops": statistics.median(r["tflops"] for r in measured),
                   "ms": statistics.median(r["ms"] for r in measured),
                   "of_cublas": statistics.median(ratios) if ratios else None}
    rows.update(medians)
    return rows


def sdpa_rows(document, path, backend):
    """{T: entry} from sdpa_peer.py's JSON for the chosen backend ("best": the fastest)."""
    results = document.get("results") if isinstance(document, dict) else None
    if not isinstance(results, list):
        raise InputError(f"{path} has no 'results' list: not sdpa_peer.py output")
    rows = {}
    for entry in results:
        try:
            t = int(entry["T"])
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{path}: a result without an integer T: {entry!r}")
        if backend != "best" and entry.get("requested") != backend:
            continue
        ok = entry.get("error") is None and isinstance(entry.get("tflops"), (int, float))
        previous = rows.get(t)
        if previous is None or (ok and (previous.get("error") is not None or
                                        entry["tflops"] > previous["tflops"])):
            rows[t] = entry if ok else {"error": entry.get("error") or "no tflops",
                                        "requested": entry.get("requested")}
    return rows


def cell(text, width=60):
    """Text for a markdown table cell: one line, no column separators, at most `width` chars."""
    text = " ".join(str(text).split()).replace("|", "/")
    return text if len(text) <= width else text[:width - 3] + "..."


def fmt(value, digits):
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(paralab, sdpa, kernels_doc, sdpa_doc, args):
    """The markdown lines and whether every T in the target range meets the target."""
    config = sdpa_doc.get("config", {})
    context = kernels_doc.get("context", {}) if isinstance(kernels_doc, dict) else {}
    lines = [
        "### Causal attention forward, BF16: paralab CUDA vs PyTorch SDPA",
        "",
        f"{sdpa_doc.get('device', 'unknown GPU')} (compute capability "
        f"{sdpa_doc.get('capability', '?')}), SDPA run of {sdpa_doc.get('time_utc', '?')}, "
        f"kernels_bench run of {context.get('date', '?')} on {context.get('host_name', '?')}; "
        f"torch {sdpa_doc.get('torch', '?')} (CUDA {sdpa_doc.get('torch_cuda', '?')}).",
        "",
        f"Shape: batch {config.get('batch', 1)}, H = {config.get('heads', 32)} query heads over "
        f"H_kv = {config.get('kv_heads', 8)} key/value heads, D = {config.get('head_dim', 128)}, "
        "causal, T = S; TFLOP/s = 4 D H T (T + 1) / 2 / time on both sides. paralab: kernels_bench "
        f"`{PARALAB_FAMILY}` (BF16 Q, K, V; FP32 O and LSE; mean of its iterations). "
        f"SDPA: `scripts/sdpa_peer.py` (BF16 in and out; median of {config.get('iters', '?')} "
        f"calls), backend rows `{args.backend}`. Both time one call with CUDA events after a "
        "256 MiB L2-evicting memset.",
        "",
        "| T | paralab ms | paralab TFLOP/s | of cuBLAS BF16 | SDPA backend | SDPA ms "
        "| SDPA TFLOP/s | paralab / SDPA | target |",
        "|---:|---:|---:|---:|:---|---:|---:|---:|:---|",
    ]
    met, checked, problems = True, [], []
    for t in sorted(set(paralab) | set(sdpa)):
        ours = paralab.get(t, {"error": "not measured", "missing": True})
        peer = sdpa.get(t, {"error": "not measured", "missing": True})
        ratio = None
        if not ours.get("error") and not peer.get("error") and peer["tflops"] > 0:
            ratio = ours["tflops"] / peer["tflops"]
        in_range = t >= args.target_from
        if in_range:
            checked.append(t)
            if ratio is None or ratio < args.target:
                met = False
                problems.append(size_label(t))
        verdict = ""
        if in_range:
            verdict = f">= {args.target:.2f} " + ("met" if ratio is not None and
                                                  ratio >= args.target else "MISSED")
        if peer.get("missing"):
            backend, sdpa_cells = "(not measured)", "- | -"
        elif peer.get("error"):
            backend, sdpa_cells = f"(error: {cell(peer['error'])})", "- | -"
        else:
            backend = peer.get("backend") or peer.get("requested") or "-"
            if peer.get("gqa") == "repeat_interleave":
                backend += ", K/V expanded"
            sdpa_cells = f"{fmt(peer.get('ms_median'), 3)} | {fmt(peer['tflops'], 1)}"
        if ours.get("missing"):
            paralab_cells = "(not measured) | - | -"
        elif ours.get("error"):
            paralab_cells = f"(skipped: {cell(ours['error'])}) | - | -"
        else:
            of_cublas = ours.get("of_cublas")
            paralab_cells = (f"{fmt(ours['ms'], 3)} | {fmt(ours['tflops'], 1)} | " +
                             (fmt(of_cublas, 2) if isinstance(of_cublas, (int, float)) else "-"))
        lines.append(f"| {size_label(t)} | {paralab_cells} | {backend} | {sdpa_cells} | "
                     f"{fmt(ratio, 2)} | {verdict} |")
    lines.append("")
    if not checked:
        lines.append(f"Target (paralab / SDPA >= {args.target:.2f} for T >= "
                     f"{size_label(args.target_from)}): no measurement in that range.")
        met = False
    elif met:
        lines.append(f"Target (paralab / SDPA >= {args.target:.2f} for T >= "
                     f"{size_label(args.target_from)}): met at every T "
                     f"({', '.join(size_label(t) for t in checked)}).")
    else:
        lines.append(f"Target (paralab / SDPA >= {args.target:.2f} for T >= "
                     f"{size_label(args.target_from)}): missed or not measured at "
                     f"{', '.join(problems)}.")
    return lines, met


def main():
    parser = Parser(
        description="paralab CUDA BF16 attention vs PyTorch SDPA: a markdown table on stdout.")
    parser.add_argument("kernels_json", help="kernels_bench --benchmark_out_format=json output")
    parser.add_argument("sdpa_json", help="scripts/sdpa_peer.py --out output")
    parser.add_argument("--backend", default="auto",
                        help="SDPA rows: auto (default), best, flash, efficient, cudnn or math")
    parser.add_argument("--target", type=float, default=0.70,
                        help="paralab / SDPA ratio to reach (default: 0.70)")
    parser.add_argument("--target-from", type=parse_size, default=8192,
                        help="smallest T the target applies to (default: 8k)")
    parser.add_argument("--strict", action="store_true",
                        help="exit 2 when the target is missed or not measured")
    args = parser.parse_args()
    try:
        kernels_doc = load_json(args.kernels_json, "kernels_bench JSON")
        sdpa_doc = load_json(args.sdpa_json, "sdpa_peer JSON")
        paralab = paralab_rows(kernels_doc, args.kernels_json)
        sdpa = sdpa_rows(sdpa_doc, args.sdpa_json, args.backend)
    except InputError as error:
        print(f"compare_sdpa.py: error: {error}", file=sys.stderr)
        return 1
    if not paralab:
        print(f"compare_sdpa.py: error: {args.kernels_json} has no {PARALAB_FAMILY} rows "
              "(run kernels_bench with the CUDA backend, e.g. --benchmark_filter=cuda)",
              file=sys.stderr)
        return 1
    if not sdpa:
        print(f"compare_sdpa.py: error: {args.sdpa_json} has no results for backend "
              f"'{args.backend}'", file=sys.stderr)
        return 1
    lines, met = markdown(paralab, sdpa, kernels_doc, sdpa_doc, args)
    print("\n".join(lines))
    return 2 if args.strict and not met else 0


if __name__ == "__main__":
    sys.exit(main())
