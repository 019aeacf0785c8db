"""Attention kernels on short sequences (training batches): which one is fastest, by length.

``truncated_attention`` picks a dense kernel for sequences of up to ``DENSE_MAX_FRAMES`` frames
and the banded kernel above. This script checks that choice: for each window and length it
times, in bf16 on a batch like the CTC recipe's (16 utterances of random lengths, 4 heads of
64), the library's choice (``auto``), the banded kernel (forced with an explicit block) and SDPA
with a dense boolean mask, both for training (forward + backward) and for inference (forward
under ``torch.inference_mode``). Times are the best of ``--repeats`` rounds of ``--calls`` calls.

    python benchmarks/attention_short.py
    python benchmarks/attention_short.py --lengths 100 200 --windows 32,4

Results: a Markdown table on stdout and JSON in ``benchmarks/out/attention_short.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import environment, print_table, write_json  # noqa: E402

from speechattn.nn.attention import DENSE_MAX_FRAMES, _default_block, _short, band_mask, truncated_attention  # noqa: E402

METHODS = ("auto", "banded", "sdpa_mask")


def _sdpa_mask(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, left: int, right: int, lengths: torch.Tensor) -> torch.Tensor:
    time_ = q.shape[2]
    valid = torch.arange(time_)[None, :] < lengths[:, None]
    mask = band_mask(time_, time_, left, right)[None, None] & valid[:, None, None, :]
    mask = mask | torch.eye(time_, dtype=torch.bool)[None, None]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def best_ms(call: Callable[[], None], calls: int, repeats: int) -> float:
    for _ in range(3):
        call()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        best = min(best, (time.perf_counter() - start) / calls)
    return 1000 * best


def measure(method: str, mode: str, time_: int, left: int, right: int, args: argparse.Namespace) -> float:
    gen = torch.Generator().manual_seed(time_)
    shape = (args.batch, args.heads, time_, args.head_dim)
    q, k, v = (torch.randn(shape, generator=gen).to(torch.bfloat16) for _ in range(3))
    lengths = torch.randint(time_ // 2, time_ + 1, (args.batch,), generator=gen)
    lengths[0] = time_
    grad = torch.randn(shape, generator=gen).to(torch.bfloat16)
    if method == "auto":
        def attend(a, b, c):
            return truncated_attention(a, b, c, left, right, lengths)
    elif method == "banded":
        block = _default_block(left, right)
        def attend(a, b, c):
            return truncated_attention(a, b, c, left, right, lengths, block=block)
    else:
        def attend(a, b, c):
            return _sdpa_mask(a, b, c, left, right, lengths)

    if mode == "train":
        leaves = [x.clone().requires_grad_() for x in (q, k, v)]

        def call() -> None:
            attend(*leaves).backward(grad)
    else:
        def call() -> None:
            with torch.inference_mode():
                attend(q, k, v)
    return best_ms(call, args.calls, args.repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 96, 128, 160, 192, 256])
    parser.add_argument("--windows", nargs="+", default=["16,8", "32,4", "32,32"], help="LEFT,RIGHT pairs")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None, help="results file (default benchmarks/out/attention_short.json)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    windows = []
    for item in args.windows:
        try:
            left, right = (int(x) for x in item.split(","))
        except ValueError:
            parser.error(f"--windows: expected LEFT,RIGHT, got {item!r}")
        windows.append((left, right))

    rows = []
    for left, right in windows:
        for time_ in args.lengths:
            row = {"window": f"{left}/{right}", "T": time_, "auto_kernel": "dense" if _short(time_, left, right) else "banded"}
            for mode in ("train", "infer"):
                for method in METHODS:
                    row[f"{mode}_{method}_ms"] = measure(method, mode, time_, left, right, args)
                row[f"{mode}_auto_vs_banded"] = row[f"{mode}_auto_ms"] / row[f"{mode}_banded_ms"]
            rows.append(row)
            print(f"window {left}/{right}, T {time_}: done", file=sys.stderr, flush=True)
    columns = [("window", "window L/R"), ("T", "T"), ("auto_kernel", "auto picks")]
    for mode, label in (("train", "train fwd+bwd"), ("infer", "inference fwd")):
        columns += [(f"{mode}_auto_ms", f"{label}: auto ms"), (f"{mode}_banded_ms", "banded ms"),
                    (f"{mode}_sdpa_mask_ms", "SDPA+mask ms"), (f"{mode}_auto_vs_banded", "auto / banded")]
    print_table(rows, columns)
    out = write_json("attention_short", {"environment": environment(), "args": vars(args),
                                         "dense_max_frames": DENSE_MAX_FRAMES, "rows": rows}, args.json)
    print(f"\nJSON: {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
