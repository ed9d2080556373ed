#!/usr/bin/env python3
"""Time PyTorch's scaled_dot_product_attention as the peer of paralab's CUDA attention.

  python3 scripts/sdpa_peer.py [--out sdpa.json] [--seqlens 1k,2k,4k,8k,16k,32k]
                               [--backends auto,flash,efficient,cudnn] [--iters 50] [--warmup 5]

Runs on a GPU machine with the python3 that has torch (no network needed). The shapes are
those of kernels_bench's BM_cuda_attention_causal_bf16: batch 1, H = 32 query heads over
H_kv = 8 key/value heads (GQA 4:1), D = 128, causal, T = S, BF16 inputs in paralab's layout
([T, H, D] per batch: tensors made as [B, T, H, D] and viewed as [B, H, T, D]). GQA uses
enable_gqa=True where the torch version and the backend take it, else K and V are expanded
with repeat_interleave before the timed region (the same FLOPs; recorded as "gqa").

Timing, as kernels_bench does it: per call, CUDA events around one SDPA call, each after a
256 MiB memset that evicts the L2 cache and keeps the GPU busy while Python queues the call
(so dispatch overhead stays out of the interval); --warmup calls first, then the median of
--iters calls. Also recorded: the mean, the minimum, and "batched", the mean of --iters
back-to-back calls between two events without the memset. TFLOP/s count
4 * D * H * T * (T + 1) / 2 per batch element, paralab's attention_forward_flops for a
causal mask.

Backends: "auto" is SDPA's own choice, identified with torch._fused_sdp_choice where it
exists; flash, efficient, cudnn and math are forced one at a time with
torch.nn.attention.sdpa_kernel (or the older torch.backends.cuda.sdp_kernel). A backend that
cannot run a shape gets an "error" entry instead of numbers. Once per backend (at every T for
"auto" when torch has no _fused_sdp_choice) the kernels an SDPA call launches are listed with
the profiler, as evidence of which backend ran. math is not in the default list: at 32k it
would materialise a 32 x 32k x 32k score matrix.

Writes JSON (--out, atomically) and prints a table. Exit codes: 0 success, 1 when torch or
a CUDA GPU is missing or the options are wrong, 3 when no backend produced a number.
"""
import argparse
import functools
import json
import os
import platform
import re
import socket
import statistics
import sys
import time
import warnings

SCHEMA = "paralab-sdpa-peer/1"
FLUSH_BYTES = 256 << 20  # as kernels_bench's bench_cuda.cpp
BACKENDS = ("auto", "flash", "efficient", "cudnn", "math")
# at::SDPBackend, the value torch._fused_sdp_choice returns.
CHOICE_NAMES = {-1: "error", 0: "math", 1: "flash", 2: "efficient", 3: "cudnn", 4: "overrideable"}


def fail(message, code=1):
    print(f"sdpa_peer.py: error: {message}", file=sys.stderr)
    sys.exit(code)


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error exits 1 (paralab's exit code for usage errors), not 2."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def parse_size(text):
    """1024, 8k, 1M (binary suffixes, as paralab's options)."""
    match = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: '{text}' (use e.g. 4096, 8k)")
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[match.group(2).lower()]
    return int(match.group(1)) * scale


def parse_sizes(text):
    sizes = [parse_size(part) for part in text.split(",") if part.strip()]
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("needs a comma list of positive sizes")
    return sizes


def parse_backends(text):
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in BACKENDS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown backend(s) {unknown}; choose from {', '.join(BACKENDS)}")
    return names


def size_label(n):
    return f"{n >> 10}k" if n % 1024 == 0 else str(n)


def causal_flops(batch, heads, head_dim, t):
    """paralab's attention_forward_flops for a causal mask with T = S."""
    return 4.0 * head_dim * heads * batch * t * (t + 1) / 2


def import_torch():
    try:
        import torch  # noqa: F401  (imported here so a missing torch gets a clear message)
        import torch.nn.functional  # noqa: F401
    except Exception as error:  # ImportError, or a broken install failing to load its libraries
        fail(f"PyTorch cannot be imported by {sys.executable} ({type(error).__name__}: {error}); "
             "run this on the GPU machine with the python3 that has torch")
    import torch
    if not torch.cuda.is_available() or torch.cuda.device_count() == 0:
        fail(f"no CUDA GPU is visible to PyTorch {torch.__version__} "
             f"(built with CUDA {torch.version.cuda}; CUDA_VISIBLE_DEVICES="
             f"{os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')})")
    return torch


class Peer:
    """SDPA on one GPU: contexts per backend, inputs per shape, timing and kernel probing."""

    def __init__(self, torch, args):
        self.torch = torch
        self.F = torch.nn.functional
        self.args = args
        self.device = torch.device("cuda")
        self.flush = torch.empty(FLUSH_BYTES, dtype=torch.uint8, device=self.device)
        self.sdpa_kernel = None
        self.backend_enum = {}
        try:
            from torch.nn.attention import SDPBackend, sdpa_kernel
            self.sdpa_kernel = sdpa_kernel
            for name, member in (("flash", "FLASH_ATTENTION"), ("efficient", "EFFICIENT_ATTENTION"),
                                 ("cudnn", "CUDNN_ATTENTION"), ("math", "MATH")):
                if hasattr(SDPBackend, member):
                    self.backend_enum[name] = getattr(SDPBackend, member)
        except ImportError:
            pass

    # --- which backend -------------------------------------------------------------------

    def context(self, backend):
        """A context manager that allows only `backend` ("auto": no restriction)."""
        import contextlib
        if backend == "auto":
            return contextlib.nullcontext()
        if self.sdpa_kernel is not None:
            if backend not in self.backend_enum:
                raise RuntimeError(f"torch {self.torch.__version__} has no {backend} SDPA backend")
            return self.sdpa_kernel([self.backend_enum[backend]])
        legacy = getattr(self.torch.backends.cuda, "sdp_kernel", None)
        if legacy is None or backend == "cudnn":
            raise RuntimeError(f"torch {self.torch.__version__} cannot force the {backend} backend")
        return legacy(enable_flash=backend == "flash", enable_mem_efficient=backend == "efficient",
                      enable_math=backend == "math")

    def choice(self, q, k, v, gqa_native):
        """SDPA's own pick for these inputs (torch._fused_sdp_choice), or None."""
        choose = getattr(self.torch, "_fused_sdp_choice", None)
        if choose is None:
            return None
        try:
            extra = {"enable_gqa": True} if gqa_native else {}
            value = int(choose(q, k, v, is_causal=True, **extra))
        except Exception:
            return None
        return CHOICE_NAMES.get(value, f"unknown({value})")

    def kernels(self, call):
        """The names of the GPU kernels one call launches, or an error string."""
        try:
            from torch.profiler import ProfilerActivity, profile
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                call()
                self.torch.cuda.synchronize()
            names = []
            for event in prof.key_averages():
                name = event.key
                # Runtime and driver API calls (cudaLaunchKernel, cuLaunchKernelEx), copies.
                if re.match(r"cuda|cu[A-Z]|Memset|Memcpy", name) or name in names:
                    continue
                names.append(name)
            return names
        except Exception as error:
            return f"profiler failed: {type(error).__name__}: {error}"

    @staticmethod
    def classify(names):
        """The backend a list of kernel names points to, or None."""
        if not isinstance(names, list) or not names:
            return None
        text = " ".join(names).lower()
        if "cudnn" in text or "fort_native_sdpa" in text:
            return "cudnn"
        if "flash" in text:
            return "flash"
        if "fmha" in text or "efficient" in text or "cutlassf" in text:
            return "efficient"
        if "softmax" in text or "gemm" in text or "bmm" in text:
            return "math"
        return None

    # --- inputs and timing -----------------------------------------------------------------

    def inputs(self, t, seed):
        """Q [B,T,H,D], K, V [B,T,H_kv,D] uniform in [-1, 1), viewed as [B, heads, T, D]."""
        torch, a = self.torch, self.args
        generator = torch.Generator(device=self.device)
        generator.manual_seed(seed)

        def make(heads):
            x = torch.empty(a.batch, t, heads, a.head_dim, dtype=torch.bfloat16,
                            device=self.device)
            x.uniform_(-1.0, 1.0, generator=generator)
            return x

        return make(a.heads), make(a.kv_heads), make(a.kv_heads)

    def time(self, call):
        """(per-call milliseconds, batched mean milliseconds): see the module's docstring."""
        torch, a = self.torch, self.args
        for _ in range(a.warmup):
            call()
        torch.cuda.synchronize()
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(a.iters)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(a.iters)]
        for start, end in zip(starts, ends):
            self.flush.zero_()
            start.record()
            call()
            end.record()
        torch.cuda.synchronize()
        per_call = [start.elapsed_time(end) for start, end in zip(starts, ends)]
        first, last = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        first.record()
        for _ in range(a.iters):
            call()
        last.record()
        torch.cuda.synchronize()
        return per_call, first.elapsed_time(last) / a.iters

    # --- one measurement ---------------------------------------------------------------------

    def measure(self, backend, t, probe):
        """One results entry: the timings, or "error" saying why there are none."""
        torch, a = self.torch, self.args
        entry = {"T": t, "S": t, "requested": backend, "backend": None, "backend_from": None,
                 "gqa": None, "flops": causal_flops(a.batch, a.heads, a.head_dim, t),
                 "error": None}
        if backend == "math":
            # The math backend materialises [B, H, T, S] scores (and an FP32 softmax): skip
            # a shape that cannot fit.
            need = 3 * 4 * a.batch * a.heads * t * t
            free, _ = torch.cuda.mem_get_info()
            if need > 0.8 * free:
                entry["error"] = (f"math backend would need about {need / 2**30:.0f} GiB, "
                                  f"{free / 2**30:.0f} GiB free")
                return entry
        try:
            with self.context(backend):
                self.run(entry, backend, t, probe)
        except RuntimeError as error:  # cannot force the backend, or out of memory while timing
            entry["error"] = f"{type(error).__name__}: {first_line(error)}"
        finally:
            torch.cuda.empty_cache()
        return entry

    def run(self, entry, backend, t, probe):
        """Tries native GQA, then K and V expanded; times the first way that runs."""
        torch, a = self.torch, self.args
        group = a.heads // a.kv_heads
        q_bthd, k_bthd, v_bthd = self.inputs(t, seed=t)
        q = q_bthd.transpose(1, 2)
        ways = ["none"] if group == 1 else ["enable_gqa", "repeat_interleave"]
        out_of_memory = getattr(torch.cuda, "OutOfMemoryError", MemoryError)
        problems = []
        for gqa in ways:
            if gqa == "repeat_interleave":  # expanded K and V, made outside the timed region
                k = k_bthd.repeat_interleave(group, dim=2).transpose(1, 2)
                v = v_bthd.repeat_interleave(group, dim=2).transpose(1, 2)
            else:
                k, v = k_bthd.transpose(1, 2), v_bthd.transpose(1, 2)
            extra = {"enable_gqa": True} if gqa == "enable_gqa" else {}
            call = functools.partial(self.F.scaled_dot_product_attention, q, k, v,
                                     is_causal=True, **extra)
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    call()
                    torch.cuda.synchronize()
            except (TypeError, RuntimeError) as error:
                hints = "; ".join(first_line(w.message) for w in caught[:3])
                problems.append(f"{gqa}: {type(error).__name__}: {first_line(error)}" +
                                (f" ({hints})" if hints else ""))
                if isinstance(error, out_of_memory):
                    break
                continue
            entry["gqa"] = gqa
            if backend == "auto":
                entry["backend"] = self.choice(q, k, v, gqa == "enable_gqa")
                entry["backend_from"] = "_fused_sdp_choice" if entry["backend"] else None
            else:
                entry["backend"], entry["backend_from"] = backend, "forced"
            if probe or entry["backend"] is None:  # no _fused_sdp_choice: kernel names tell
                names = self.kernels(call)
                entry["kernels"] = names
                entry["backend_kernels"] = self.classify(names)
                if entry["backend"] is None and entry["backend_kernels"]:
                    entry["backend"], entry["backend_from"] = entry["backend_kernels"], "kernels"
            per_call, batched = self.time(call)
            median, mean = statistics.median(per_call), statistics.fmean(per_call)
            flops = entry["flops"]
            entry.update({
                "ms_median": median, "ms_mean": mean, "ms_min": min(per_call),
                "ms_batched": batched, "tflops": flops / (median * 1e-3) / 1e12,
                "tflops_mean": flops / (mean * 1e-3) / 1e12,
                "tflops_batched": flops / (batched * 1e-3) / 1e12,
            })
            if problems:
                entry["fallback_reason"] = " | ".join(problems)
            return
        entry["error"] = " | ".join(problems)


def first_line(message):
    lines = str(message).strip().splitlines()
    return lines[0] if lines else ""


def print_table(results):
    header = ["T", "requested", "backend", "gqa", "median ms", "TFLOP/s", "mean TFLOP/s",
              "batched TFLOP/s", "note"]
    rows = []
    for r in results:
        if r.get("error"):
            rows.append([size_label(r["T"]), r["requested"], "-", "-", "-", "-", "-", "-",
                         "error: " + r["error"][:100]])
            continue
        rows.append([size_label(r["T"]), r["requested"], r["backend"] or "?", r["gqa"],
                     f"{r['ms_median']:.3f}", f"{r['tflops']:.1f}", f"{r['tflops_mean']:.1f}",
                     f"{r['tflops_batched']:.1f}",
                     "" if r["backend"] == r.get("backend_kernels", r["backend"]) else
                     f"kernels look like {r.get('backend_kernels')}"])
    widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]
    for row in [header] + rows:
        cells = [str(c).rjust(w) if 4 <= i <= 7 else str(c).ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths))]
        print("  ".join(cells).rstrip())


def write_json(path, document):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    temporary = f"{path}.tmp{os.getpid()}"
    with open(temporary, "w") as stream:
        json.dump(document, stream, indent=2)
        stream.write("\n")
    os.replace(temporary, path)


def main():
    parser = Parser(
        description="Time torch.nn.functional.scaled_dot_product_attention (causal, BF16, GQA) "
                    "at kernels_bench's attention shapes; TFLOP/s as paralab counts them.")
    parser.add_argument("--out", help="write the results as JSON to this file")
    parser.add_argument("--seqlens", type=parse_sizes, default=parse_sizes("1k,2k,4k,8k,16k,32k"),
                        help="T = S values, comma list with k/M suffixes (default: 1k..32k)")
    parser.add_argument("--backends", type=parse_backends,
                        default=parse_backends("auto,flash,efficient,cudnn"),
                        help="comma list of auto, flash, efficient, cudnn, math "
                             "(default: auto,flash,efficient,cudnn)")
    parser.add_argument("--batch", type=int, default=1, help="batch size (default: 1)")
    parser.add_argument("--heads", type=int, default=32, help="query heads H (default: 32)")
    parser.add_argument("--kv-heads", type=int, default=8, help="key/value heads (default: 8)")
    parser.add_argument("--head-dim", type=int, default=128, help="head dimension D (default: 128)")
    parser.add_argument("--iters", type=int, default=50, help="timed calls (default: 50)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls first (default: 5)")
    parser.add_argument("--no-probe", action="store_true",
                        help="do not list the launched kernels with the profiler")
    args = parser.parse_args()
    if min(args.batch, args.heads, args.kv_heads, args.head_dim, args.iters) < 1 or \
            args.warmup < 0:
        parser.error("sizes and --iters must be positive, --warmup not negative")
    if args.heads % args.kv_heads:
        parser.error("--heads must be a multiple of --kv-heads")

    torch = import_torch()
    peer = Peer(torch, args)
    properties = torch.cuda.get_device_properties(0)
    flash_impl = None
    current_impl = getattr(torch.nn.attention, "current_flash_attention_impl", None) \
        if hasattr(torch.nn, "attention") else None
    if current_impl is not None:
        try:
            flash_impl = str(current_impl())
        except Exception:
            flash_impl = None
    document = {
        "schema": SCHEMA,
        "tool": "scripts/sdpa_peer.py",
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": socket.gethostname(),
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "device": torch.cuda.get_device_name(0),
        "capability": f"{properties.major}.{properties.minor}",
        "flash_impl": flash_impl,
        "config": {
            "batch": args.batch, "heads": args.heads, "kv_heads": args.kv_heads,
            "head_dim": args.head_dim, "dtype": "bfloat16", "causal": True,
            "layout": "[B, T, H, D] viewed as [B, H, T, D]", "iters": args.iters,
            "warmup": args.warmup, "flush_bytes": FLUSH_BYTES,
            "flops": "4 * D * H * B * T * (T + 1) / 2",
            "tflops_statistic": "median of per-call times",
        },
        "results": [],
    }
    print(f"SDPA peer on {document['device']} (sm_{properties.major}{properties.minor}), "
          f"torch {torch.__version__}, CUDA {torch.version.cuda}; B={args.batch} H={args.heads} "
          f"H_kv={args.kv_heads} D={args.head_dim} causal bf16; median of {args.iters} calls",
          flush=True)
    for backend in args.backends:
        probed = args.no_probe
        for t in args.seqlens:
            entry = peer.measure(backend, t, probe=not probed)
            probed = probed or entry.get("error") is None
            document["results"].append(entry)
            status = entry["error"] or (f"{entry['backend']} {entry['ms_median']:.3f} ms "
                                        f"{entry['tflops']:.1f} TFLOP/s")
            print(f"  {backend:9s} T={size_label(t):>4s}: {status}", file=sys.stderr, flush=True)
    print_table(document["results"])
    if args.out:
        write_json(args.out, document)
        print(f"wrote {args.out}")
    if not any(r.get("error") is None for r in document["results"]):
        fail("no backend produced a measurement", code=3)


if __name__ == "__main__":
    main()
