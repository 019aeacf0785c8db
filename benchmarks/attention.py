"""Truncated attention vs full SDPA vs SDPA with a dense band mask: time and memory.

Each (method, T) runs in a fresh process, so that one measurement's memory cannot hide
another's. "added MB" is the peak RSS during the call minus the RSS just before it (the
inputs q, k, v are already allocated), sampled every 0.5 ms.

    python benchmarks/attention.py                      # T = 500 .. 128000, d=256, 4 heads
    python benchmarks/attention.py --lengths 500 2000 --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import ATTENTION_OPTIONS, PeakSampler, add_attention_options, environment  # noqa: E402
from _common import print_table, rss_bytes, run_isolated, timed, worker_options, write_json  # noqa: E402

from speechattn.nn.attention import band_mask, truncated_attention  # noqa: E402

METHODS = ("truncated", "sdpa_full", "sdpa_band")


def worker(method: str, time_frames: int, d_model: int, heads: int, left: int, right: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    shape = (1, heads, time_frames, d_model // heads)
    q, k, v = (torch.randn(shape, generator=gen) for _ in range(3))

    if method == "truncated":
        def call() -> torch.Tensor:
            return truncated_attention(q, k, v, left, right)
    elif method == "sdpa_full":
        def call() -> torch.Tensor:
            return F.scaled_dot_product_attention(q, k, v)
    else:
        def call() -> torch.Tensor:
            mask = band_mask(time_frames, time_frames, left, right)
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    with torch.inference_mode():
        # Memory of one cold call, then timing.
        before = rss_bytes()
        with PeakSampler() as sampler:
            start = __import__("time").perf_counter()
            out = call()
            first = __import__("time").perf_counter() - start
        added = sampler.peak - before
        del out
        repeats = 1 if first > 2.0 else 5
        times = [first] if first > 2.0 else timed(call, repeats, warmup=0)
    return {
        "method": method,
        "T": time_frames,
        "seconds": statistics.median(times),
        "added_mb": added / 2**20,
        "input_mb": 3 * q.numel() * 4 / 2**20,
        "repeats": len(times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[500, 2000, 8000, 32000, 128000])
    add_attention_options(parser)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-full-T", type=int, default=32000, help="longest T for full SDPA (O(T^2) time)")
    parser.add_argument("--max-band-gb", type=float, default=12.0, help="skip dense masks needing more memory")
    parser.add_argument("--json", default=None, help="output path (default benchmarks/out/attention.json)")
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "T"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        method, t = args.worker[0], int(args.worker[1])
        print(json.dumps(worker(method, t, args.d_model, args.heads, args.left, args.right, args.threads)))
        return

    common = worker_options(args, [*ATTENTION_OPTIONS, "threads"])
    results = []
    for t in args.lengths:
        for method in METHODS:
            if method == "sdpa_full" and t > args.max_full_T:
                results.append({"method": method, "T": t, "skipped": f"T > --max-full-T={args.max_full_T}"})
                continue
            # SDPA turns the T x T bool mask into a float mask: ~5 bytes per pair at least.
            if method == "sdpa_band" and 5 * t * t / 2**30 > args.max_band_gb:
                need = 5 * t * t / 2**30
                results.append({"method": method, "T": t, "skipped": f"needs ~{need:.0f} GB > --max-band-gb"})
                continue
            res = run_isolated([__file__, "--worker", method, str(t), *common])
            res.setdefault("method", method)
            res.setdefault("T", t)
            results.append(res)
            print(f"  {method:10s} T={t:>7d}: {res}", file=sys.stderr, flush=True)

    by_key = {(r["method"], r["T"]): r for r in results}
    rows = []
    for t in args.lengths:
        ours, full, band = (by_key.get((m, t), {}) for m in METHODS)
        row = {"T": t}
        for name, r in (("truncated", ours), ("full", full), ("band", band)):
            if "seconds" in r:
                row[f"{name}_ms"] = 1e3 * r["seconds"]
                row[f"{name}_mb"] = r["added_mb"]
            else:
                row[f"{name}_ms"] = r.get("skipped") or r.get("error", "-")
                row[f"{name}_mb"] = "-"
        if "seconds" in ours and "seconds" in full:
            row["speedup_vs_full"] = full["seconds"] / ours["seconds"]
        if "seconds" in ours and "seconds" in band:
            row["speedup_vs_band"] = band["seconds"] / ours["seconds"]
            row["memory_vs_band"] = band["added_mb"] / max(ours["added_mb"], 1e-9)
        rows.append(row)
    print(f"\nd_model={args.d_model} heads={args.heads} left={args.left} right={args.right} threads={args.threads}; "
          "ms = median wall time of one call, MB = peak RSS added by one call beyond its inputs\n")
    print_table(rows, [("T", "T"), ("truncated_ms", "truncated ms"), ("truncated_mb", "truncated MB"),
                       ("full_ms", "full SDPA ms"), ("full_mb", "full MB"), ("band_ms", "band-mask SDPA ms"),
                       ("band_mb", "band MB"), ("speedup_vs_full", "x vs full"), ("speedup_vs_band", "x vs band"),
                       ("memory_vs_band", "mem / band")])
    path = write_json("attention", {"environment": environment(), "args": vars(args), "results": results,
                                    "table": rows}, args.json)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
