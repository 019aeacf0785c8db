"""Training-step time of the CTC recipe with and without rounding batch lengths up.

``data.pad_multiple`` pads every training batch of whole utterances to a multiple of that many
frames. This script measures what it does to a training step, for our encoder and for the
Conformer baseline of ``asr_baseline.py``: each (model, pad_multiple) pair runs in a fresh
process (per-shape caches are process-wide), builds ``CTCTask`` from the recipe (speed-perturbed
training set, as ``speechattn train`` does), and runs the SAME real training batches (the task's
own epochs 1, 2, ... in order) through ``task.training_step`` + backward + gradient clipping +
AdamW, in bf16 autocast as the trainer does. The first ``--warmup`` steps are not timed.

Reported per pair: ms/step over the timed steps (and per block of ``--block`` steps, to see a
trend), mean padded input frames per batch, distinct padded batch lengths, the process's peak
RSS. The speed-up is measured against ``pad_multiple=1`` (no rounding) of the same model in the
same run.

Usage::

    python benchmarks/ctc_batch_shapes.py                          # 1 vs 32, both models, 300 steps
    python benchmarks/ctc_batch_shapes.py --multiples 1 8 32 64 --models truncated
    python benchmarks/ctc_batch_shapes.py --smoke                  # tiny subset: checks the script

Results: a Markdown table on stdout and JSON in ``benchmarks/out/ctc_batch_shapes.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import environment, peak_rss_bytes, print_table, run_isolated, training_stepper, write_json  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MODELS = ("truncated", "conformer")
SMOKE_OVERRIDES = ["data.max_train_utterances=200", "data.max_dev_utterances=20", "data.speed_perturb=[1.0]",
                   "train.batch_size=8"]


def measure(model: str, multiple: int, args: argparse.Namespace) -> dict[str, Any]:
    """One (model, pad_multiple) pair, in this (worker) process."""
    from speechattn.data.batching import padded_length
    from speechattn.recipes import load_task_recipe
    from speechattn.tasks.ctc import CTCTask
    from speechattn.training.optim import build_adamw

    torch.set_num_threads(args.threads)
    overrides = [*(SMOKE_OVERRIDES if args.smoke else []), *args.set, f"data.pad_multiple={multiple}"]
    recipe = load_task_recipe(args.recipe, overrides)
    encoder = None
    if model == "conformer":
        from asr_baseline import conformer_config, conformer_encoder

        conf = conformer_config(recipe, args.conformer_ffn, None)
        encoder = conformer_encoder(recipe, conf["ffn_dim"], conf["kernel_size"])
    torch.manual_seed(recipe.train.seed)
    task = CTCTask(recipe, args.data_root, encoder=encoder, progress=False)
    task.modules.train()
    params = [p for p in task.modules.parameters() if p.requires_grad]
    opt = build_adamw(params, recipe.train.lr * 0.1, recipe.train.weight_decay, recipe.train.betas)  # as the trainer
    total = args.warmup + args.steps
    batches: list[list[int]] = []
    epoch = 1
    while len(batches) < total:
        batches += list(task.train_batches(epoch))
        epoch += 1
    batches = batches[:total]
    step = training_stepper(task, recipe, params, opt)

    for batch in batches[: args.warmup]:
        step(batch)
    times = []
    for batch in batches[args.warmup :]:
        start = time.perf_counter()
        step(batch)
        times.append(time.perf_counter() - start)
    padded = [padded_length(max(task.train_feats[i].shape[0] for i in b), multiple) for b in batches]
    blocks = [1000 * statistics.mean(times[i : i + args.block]) for i in range(0, len(times), args.block)]
    return {"model": model, "pad_multiple": multiple, "steps": len(times), "ms_per_step": 1000 * statistics.mean(times),
            "block_ms": blocks, "mean_padded_frames": statistics.mean(padded), "distinct_lengths": len(set(padded)),
            "peak_rss_gb": peak_rss_bytes() / 1e9}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default=str(REPO / "recipes" / "asr.yaml"))
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--multiples", nargs="+", type=int, default=[1, 32], help="pad_multiple values (1: none)")
    parser.add_argument("--steps", type=int, default=300, help="timed steps per pair")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps first")
    parser.add_argument("--block", type=int, default=50, help="steps per block of the per-block times")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="recipe override")
    parser.add_argument("--conformer-ffn", type=int, default=312, help="the Conformer's ffn_dim")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="tiny subset, few steps: checks the script")
    parser.add_argument("--json", default=None, help="results file (default benchmarks/out/ctc_batch_shapes.json)")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if any(m < 1 for m in args.multiples):
        parser.error("--multiples must be >= 1")
    if args.smoke:
        args.steps, args.warmup, args.block = min(args.steps, 6), min(args.warmup, 2), 3
    if args.worker:
        print(json.dumps(measure(args.worker[0], int(args.worker[1]), args)))
        return

    passthrough = sys.argv[1:]
    rows = []
    for model in [m for m in MODELS if m in args.models]:
        base = None
        for multiple in args.multiples:
            print(f"{model}, pad_multiple {multiple} ...", file=sys.stderr, flush=True)
            res = run_isolated([__file__, *passthrough, "--worker", model, str(multiple)])
            if "error" in res:
                print(f"  failed: {res['error']}", file=sys.stderr)
                rows.append({"model": model, "pad_multiple": multiple, "error": res["error"]})
                continue
            if multiple == 1:
                base = res["ms_per_step"]
            res["speedup"] = None if base is None else base / res["ms_per_step"]
            res["blocks"] = " / ".join(f"{b:.0f}" for b in res["block_ms"])
            rows.append(res)
    columns = [("model", "model"), ("pad_multiple", "pad_multiple"), ("ms_per_step", "ms/step"),
               ("speedup", "speed-up vs 1"), ("blocks", f"ms/step per {args.block} steps"),
               ("mean_padded_frames", "mean padded frames"), ("distinct_lengths", "distinct lengths"),
               ("peak_rss_gb", "peak RSS GB")]
    print_table([{k: ("-" if v is None else v) for k, v in r.items()} for r in rows], columns)
    name = "ctc_batch_shapes_smoke" if args.smoke else "ctc_batch_shapes"
    out = write_json(name, {"environment": environment(), "args": vars(args), "rows": rows}, args.json)
    print(f"\nJSON: {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
