#!/usr/bin/env python3
"""Writes a lib/sim hardware profile (JSON, docs/sim.md) of this machine from
a comm_bench result file with a sendrecv fit (/fit_sendrecv) and a
kernels_bench JSON report run on one thread (the FMA peak, the attention
kernel without mask at --block tokens as the flat rate, and at every length
the report has as the rate-by-keys curve). One simulated "GPU" is one
rank on one core; the two link classes are the same shared-memory link.

  make_profile.py --comm comm.h5 --kernels kernels.json [--block N] -o OUT.json
"""
import argparse
import datetime
import json
import sys

import h5py


def benchmark(report, prefix):
    """The first benchmark named with this prefix that ran (a benchmark this CPU's tier
    cannot run is reported with an error and no rates)."""
    for b in report["benchmarks"]:
        if b["name"].startswith(prefix) and not b.get("error_occurred"):
            return b
    sys.exit(f"make_profile.py: error: no benchmark {prefix!r} ran in the kernels report")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--comm", required=True)
    ap.add_argument("--kernels", required=True)
    ap.add_argument("--block", type=int, default=2048)
    ap.add_argument("-o", "--out", required=True)
    args = ap.parse_args()
    with h5py.File(args.comm, "r") as f:
        if "fit_sendrecv" not in f:
            sys.exit("make_profile.py: error: no /fit_sendrecv in " + args.comm)
        fit = dict(f["fit_sendrecv"].attrs)
    with open(args.kernels) as f:
        report = json.load(f)
    peak = benchmark(report, "BM_peak_fma_f32")["GFLOPs"] * 1e9
    attention = benchmark(report, f"BM_attention_nomask_f32/{args.block}/")["GFLOPs"] * 1e9
    # The kernel at several lengths: its rate falls as K/V outgrow the caches.
    curve = []
    for b in report["benchmarks"]:
        if b["name"].startswith("BM_attention_nomask_f32/") and not b.get("error_occurred"):
            keys = int(b["name"].split("/")[1])
            curve.append([keys, min(1.0, b["GFLOPs"] * 1e9 / peak)])
    curve.sort()
    merge = benchmark(report, "BM_attention_merge_into/32768/")["GBps"] * 1e9
    link = {"name": "shared-memory", "alpha_s": float(fit["alpha_s"]),
            "beta_s_per_byte": float(fit["beta_s_per_byte"])}
    today = datetime.date.today().isoformat()
    profile = {
        "name": "cpu-local",
        "description": f"this machine, one rank per core, calibrated {today} from comm_bench "
                       f"sendrecv and kernels_bench (attention {args.block}x{args.block} FP32)",
        "bf16_peak_flops": peak, "fp32_peak_flops": peak,
        "attention_efficiency": min(1.0, attention / peak),
        "gemm_efficiency": min(1.0, attention / peak),
        "attention_efficiency_by_keys": curve,
        "memory_bytes_per_s": merge,
        "kernel_overhead_s": 5e-6,  # an OpenMP parallel region's fork and join, about
        "gpus_per_node": 2,
        "intra_node": link, "inter_node": link,
    }
    with open(args.out, "w") as f:
        json.dump(profile, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
