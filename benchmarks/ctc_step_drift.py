"""Do CTC training steps get slower as a process ages? Step time and RSS over a long bare loop.

Runs the recipe's training batches (epochs ``--start-epoch``, ``--start-epoch + 1``, ...)
through ``task.training_step`` + backward + gradient clipping + AdamW in bf16 autocast, as the
trainer does but with no dev evaluation, checkpoint or logging, for ``--minutes`` minutes, and
reports the mean step time, the time per 1000 padded input frames and the process's RSS for
every block of ``--block`` steps. Blocks hold different batches, so their times differ with
the batches as well as with the process.

To tell the two apart, use ``--probe N``: the first N batches of ``--start-epoch`` are run
(untimed, then timed) before the loop and timed again after it, in the same process: the same
batches, young process against aged process. (Comparing blocks of a later epoch with a fresh
process started at that epoch, ``--start-epoch``, does not compare the same batches unless the
blocks line up with the epoch's start.)

    python benchmarks/ctc_step_drift.py --minutes 8                   # epochs 1, 2, 3 ...
    python benchmarks/ctc_step_drift.py --minutes 2.5 --start-epoch 3 # epoch 3 in a fresh process
    python benchmarks/ctc_step_drift.py --minutes 10 --probe 100      # same 100 batches before / after

Results: a Markdown table on stdout and JSON in ``benchmarks/out/ctc_step_drift[_eN].json``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import environment, print_table, rss_bytes, training_stepper, write_json  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default=str(REPO / "recipes" / "asr.yaml"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="recipe override")
    parser.add_argument("--minutes", type=float, default=8.0, help="length of the loop")
    parser.add_argument("--start-epoch", type=int, default=1, help="first epoch whose batches are used")
    parser.add_argument("--block", type=int, default=200, help="steps per reported block")
    parser.add_argument("--probe", type=int, default=0,
                        help="time the first N batches before and after the loop (0: no probe)")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None, help="results file (default benchmarks/out/ctc_step_drift*.json)")
    args = parser.parse_args()
    if args.minutes <= 0 or args.block < 1 or args.start_epoch < 1 or args.probe < 0:
        parser.error("--minutes must be > 0, --block and --start-epoch >= 1, --probe >= 0")

    from speechattn.data.batching import padded_length
    from speechattn.recipes import load_task_recipe
    from speechattn.tasks.ctc import CTCTask
    from speechattn.training.optim import build_adamw

    torch.set_num_threads(args.threads)
    recipe = load_task_recipe(args.recipe, args.set)
    torch.manual_seed(recipe.train.seed)
    task = CTCTask(recipe, args.data_root, progress=False)
    task.modules.train()
    params = [p for p in task.modules.parameters() if p.requires_grad]
    opt = build_adamw(params, recipe.train.lr * 0.5, recipe.train.weight_decay, recipe.train.betas)  # as the trainer
    step = training_stepper(task, recipe, params, opt)
    per_epoch = task.steps_per_epoch()
    multiple = recipe.data.pad_multiple

    def padded_frames(batch: list[int]) -> int:
        return len(batch) * padded_length(max(task.train_feats[i].shape[0] for i in batch), multiple)

    probe = list(itertools.islice(task.train_batches(args.start_epoch), args.probe))

    def time_probe() -> float:
        begin = time.perf_counter()
        for batch in probe:
            step(batch)
        return 1000 * (time.perf_counter() - begin) / len(probe)

    probe_ms: dict[str, float] = {}
    if probe:
        time_probe()  # every shape seen once
        probe_ms["before"] = time_probe()
        print(f"probe before the loop: {probe_ms['before']:.0f} ms/step", file=sys.stderr, flush=True)

    rows = []
    steps = frames = 0
    start = block_start = time.perf_counter()
    epoch = args.start_epoch
    while time.perf_counter() - start < 60 * args.minutes:
        for batch in task.train_batches(epoch):
            step(batch)
            steps += 1
            frames += padded_frames(batch)
            if steps % args.block == 0:
                now = time.perf_counter()
                rows.append({"steps": steps, "epoch": epoch, "ms_per_step": 1000 * (now - block_start) / args.block,
                             "ms_per_kframe": 1e6 * (now - block_start) / frames, "rss_gb": rss_bytes() / 1e9})
                print(f"epoch {epoch}, {steps} steps: {rows[-1]['ms_per_step']:.0f} ms/step", file=sys.stderr, flush=True)
                block_start, frames = now, 0
            if time.perf_counter() - start >= 60 * args.minutes:
                break
        epoch += 1
    if probe:
        probe_ms["after"] = time_probe()
        probe_ms["rss_gb_after"] = rss_bytes() / 1e9
    columns = [("steps", "steps so far"), ("epoch", "epoch at the block's end"), ("ms_per_step", "ms/step (block)"),
               ("ms_per_kframe", "ms per 1000 padded frames"), ("rss_gb", "RSS GB")]
    print_table(rows, columns)
    if probe:
        print(f"\nthe same {len(probe)} batches: {probe_ms['before']:.1f} ms/step before the loop, "
              f"{probe_ms['after']:.1f} after it ({probe_ms['after'] / probe_ms['before']:.2f}x)")
    name = "ctc_step_drift" if args.start_epoch == 1 else f"ctc_step_drift_e{args.start_epoch}"
    out = write_json(name, {"environment": environment(), "args": vars(args), "steps_per_epoch": per_epoch,
                            "rows": rows, "probe_ms_per_step": probe_ms}, args.json)
    print(f"\nJSON: {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
