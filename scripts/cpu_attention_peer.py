#!/usr/bin/env python3
"""paralab's CPU attention forward beside PyTorch's scaled_dot_product_attention, on the same
cores in the same run, with OpenBLAS SGEMM (the limit) measured in that run too.

  python scripts/cpu_attention_peer.py [--bench build/bin/kernels_bench] [--seqlens 1k,2k,4k,8k]
      [--dtypes f32,bf16] [--threads N] [--isa TIER] [--rounds 3] [--out peer.json]

Run it with a python that has torch (a venv: `pip install torch`; never needed by the build
or CI). Shapes are kernels_bench's BM_attention_causal_*: batch 1, causal, T = S, H = 16 query
heads over H_kv = 2 key/value heads (GQA 8:1), D = 128; FP32, or BF16 inputs (paralab
accumulates in FP32; so does SDPA's CPU kernel). Tensors are made in paralab's layout
[T, H, D] and viewed as [1, H, T, D]; GQA through enable_gqa=True, or K and V repeated
before the timed region where the torch version lacks it (the same FLOPs).

Each round runs kernels_bench once over every shape (and BM_sgemm_openblas/4096), then torch
over the same shapes, so that the machine's drift hits both alike; the table shows the
median over rounds of each rate, GFLOP/s counting 4 D H T (T + 1) / 2, paralab's
attention_forward_flops for a causal mask. --isa runs paralab's kernels on a lower
instruction-set tier (kernels/cpu/isa.hpp); torch picks its own.

Exit codes: 0 success, 1 usage error or torch missing, 3 a benchmark failed.
"""
import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

HEADS, KV_HEADS, HEAD_DIM = 16, 2, 128


def fail(message, code=1):
    print(f"cpu_attention_peer.py: error: {message}", file=sys.stderr)
    sys.exit(code)


class Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def parse_sizes(text):
    sizes = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*([kK]?)\s*", part)
        if not m:
            raise argparse.ArgumentTypeError(f"not a size: '{part}' (use e.g. 1024, 4k)")
        sizes.append(int(m.group(1)) * (1024 if m.group(2) else 1))
    return sizes


def causal_flops(T):
    return 4.0 * HEAD_DIM * HEADS * T * (T + 1) / 2


def run_ours(bench, seqlens, dtypes, threads, isa):
    names = "|".join(f"attention_causal_{d}/{T}/" for d in dtypes for T in seqlens)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "kb.json")
        cmd = [bench, f"--threads={threads}", f"--benchmark_filter=BM_({names})|sgemm_openblas/4096",
               "--benchmark_min_time=0.5", f"--benchmark_out={out}", "--benchmark_out_format=json",
               "-o", os.path.join(tmp, "kb.h5")]
        if isa:
            cmd.append(f"--isa={isa}")
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode != 0:
            fail(f"{' '.join(cmd)} failed:\n{run.stderr}", 3)
        with open(out) as f:
            report = json.load(f)
    rates, sgemm = {}, None
    for b in report["benchmarks"]:
        if b.get("error_occurred"):
            continue
        m = re.match(r"BM_attention_causal_(f32|bf16)/(\d+)/", b["name"])
        if m:
            rates[(m.group(1), int(m.group(2)))] = b["GFLOPs"]
        elif b["name"].startswith("BM_sgemm_openblas/4096"):
            sgemm = b["GFLOPs"]
    return rates, sgemm, report["context"].get("isa", "?")


def run_torch(torch, seqlens, dtypes, min_seconds=1.0):
    F = torch.nn.functional
    rates = {}
    for dtype in dtypes:
        tdtype = torch.float32 if dtype == "f32" else torch.bfloat16
        for T in seqlens:
            gen = torch.Generator().manual_seed(T)
            q = torch.rand(1, T, HEADS, HEAD_DIM, generator=gen).mul_(2).sub_(1).to(tdtype)
            k = torch.rand(1, T, KV_HEADS, HEAD_DIM, generator=gen).mul_(2).sub_(1).to(tdtype)
            v = torch.rand(1, T, KV_HEADS, HEAD_DIM, generator=gen).mul_(2).sub_(1).to(tdtype)
            q, k, v = (x.transpose(1, 2) for x in (q, k, v))  # [1, heads, T, D] views
            try:
                call = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
                call()
            except (TypeError, RuntimeError):
                group = HEADS // KV_HEADS
                k, v = (x.repeat_interleave(group, dim=1) for x in (k, v))
                call = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)
                call()
            times = []
            start = time.perf_counter()
            while len(times) < 3 or time.perf_counter() - start < min_seconds:
                t0 = time.perf_counter()
                call()
                times.append(time.perf_counter() - t0)
            rates[(dtype, T)] = causal_flops(T) / statistics.median(times) / 1e9
    return rates


def main():
    ap = Parser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", default=os.path.join(os.path.dirname(__file__), "..", "build", "bin",
                                                    "kernels_bench"))
    ap.add_argument("--seqlens", type=parse_sizes, default=[1024, 2048, 4096, 8192])
    ap.add_argument("--dtypes", default="f32,bf16")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--isa", default="")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    dtypes = [d for d in args.dtypes.split(",") if d]
    if not dtypes or any(d not in ("f32", "bf16") for d in dtypes):
        ap.error("--dtypes takes f32 and/or bf16")
    if args.threads < 1 or args.rounds < 1:
        ap.error("--threads and --rounds need positive integers")
    if not os.access(args.bench, os.X_OK):
        fail(f"no kernels_bench at {args.bench} (build first, or --bench PATH)")
    try:
        import torch
    except ImportError:
        fail("torch is not installed for this python: pip install torch into a venv and run "
             "this script with its python")
    torch.set_num_threads(args.threads)

    ours, theirs, sgemm, isa = {}, {}, [], "?"
    for r in range(args.rounds):
        print(f"# round {r + 1} of {args.rounds}", file=sys.stderr)
        rates, s, isa = run_ours(args.bench, args.seqlens, dtypes, args.threads, args.isa)
        for key, value in rates.items():
            ours.setdefault(key, []).append(value)
        if s:
            sgemm.append(s)
        for key, value in run_torch(torch, args.seqlens, dtypes).items():
            theirs.setdefault(key, []).append(value)

    limit = statistics.median(sgemm) if sgemm else float("nan")
    print(f"# {platform.processor() or platform.machine()}, {args.threads} threads, paralab tier "
          f"{isa}, torch {torch.__version__}; OpenBLAS SGEMM {limit:.1f} GFLOP/s (median of "
          f"{len(sgemm)})")
    print(f"{'dtype':>5} {'T':>6} {'paralab GFLOP/s':>16} {'of SGEMM':>9} {'torch GFLOP/s':>14} "
          f"{'paralab/torch':>14}")
    rows = []
    for dtype in dtypes:
        for T in args.seqlens:
            a = statistics.median(ours.get((dtype, T), [float("nan")]))
            b = statistics.median(theirs.get((dtype, T), [float("nan")]))
            rows.append({"dtype": dtype, "T": T, "paralab_GFLOPs": a, "torch_GFLOPs": b,
                         "paralab_of_sgemm": a / limit, "paralab_over_torch": a / b,
                         "paralab_rounds": ours.get((dtype, T), []),
                         "torch_rounds": theirs.get((dtype, T), [])})
            print(f"{dtype:>5} {T:>6} {a:>16.1f} {a / limit:>9.2f} {b:>14.1f} {a / b:>14.2f}")
    if args.out:
        result = {"schema": "paralab-cpu-attention-peer/1", "threads": args.threads,
                  "isa": isa, "torch": torch.__version__, "sgemm_GFLOPs": sgemm,
                  "heads": HEADS, "kv_heads": KV_HEADS, "head_dim": HEAD_DIM, "rows": rows,
                  "machine": platform.machine(), "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                      time.gmtime())}
        tmp = args.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(result, f, indent=1)
        os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
