"""When does CTC training leave its all-blank plateau? The first steps of ``recipes/asr.yaml``.

CTC training first learns to emit only blanks (training loss ~3.4-3.5 per token here) and
only later starts emitting phones; how long it stays on that plateau varies from run to run,
and a run that leaves it late loses much of a wall-clock budget. This script trains the
recipe's model (or the Conformer of ``asr_baseline.py``) through the trainer's own loop
(``Trainer.fit``: warm-up + cosine schedule of a 5-epoch run, AdamW, the recipe's
``train.precision`` resolved on the device as the trainer does (``auto``: bf16 only where it is
native), clipping)
for ``--steps`` steps, with no wall-clock budget, so that the figures do not depend on the
machine's speed. Every 50 steps it records a **probe loss**: the CTC loss of 6 fixed batches of
16 training utterances (the same for every run; eval mode, no SpecAugment), comparable across
batch orders where the running training loss is not (a shortest-first epoch has easy batches
first). After the last step it scores the whole dev set (greedy PER). A run has left the
plateau at the first probe below ``--exit-loss`` (3.0).

Usage (``--set`` as for ``speechattn train``; one thread per run, so two runs fit on 2 cores)::

    SPEECHATTN_DATA=/path/to/data python benchmarks/ctc_plateau.py --seed 0 --out benchmarks/out/plateau/t_s0.json
    python benchmarks/ctc_plateau.py --seed 0 --set data.sortagrad_epochs=1 --out benchmarks/out/plateau/t_s0_sorta.json
    python benchmarks/ctc_plateau.py --model conformer --seed 3 --out benchmarks/out/plateau/c_s3.json
    python benchmarks/ctc_plateau.py --table benchmarks/out/plateau/*.json     # the table of finished runs
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import environment, print_table  # noqa: E402

PROBE_EVERY = 50
PROBE_BATCHES = 6
PROBE_BATCH_SIZE = 16
PROBE_SEED = 12345


class _Stop(Exception):
    """Raised from the training step after ``--steps`` steps: ends ``Trainer.fit`` early."""


def run(args: argparse.Namespace) -> dict[str, Any]:
    import asr_baseline as ab

    from speechattn.utils.device import autocast, resolve_precision
    from speechattn.recipes import load_task_recipe
    from speechattn.tasks import ctc
    from speechattn.training.trainer import Trainer, seed_everything

    overrides = ["train.batch_size=16", f"train.seed={args.seed}", "train.max_minutes=null",
                 "train.max_epochs=5", "train.eval_every=100", "train.threads=1", *args.set]
    if args.model == "conformer":
        overrides.append("model.encoder.num_heads=4")  # the baseline's 4 heads, as in asr_baseline's pairs
    recipe = load_task_recipe(args.recipe, overrides)
    torch.set_num_threads(1)
    seed_everything(recipe.train.seed)  # initial weights as train_recipe / asr_baseline.py make them
    encoder = ab.conformer_encoder(recipe, 312, 15) if args.model == "conformer" else None
    losses: list[float] = []
    probes: list[tuple[int, float]] = []

    class PlateauTask(ctc.CTCTask):  # type: ignore[misc,valid-type]
        def precision(self) -> Any:
            """The trainer's autocast: the recipe's precision on the task's device (set by the trainer)."""
            return autocast(self.device, resolve_precision(recipe.train.precision, self.device, warn=False))

        def probe_loss(self) -> float:
            training = self.modules.training
            self.modules.eval()
            total = 0.0
            with torch.inference_mode(), self.precision():
                for batch in probe_batches:
                    total += float(self.batch_loss(batch, augment=False))
            self.modules.train(training)
            return total / len(probe_batches)

        def training_step(self, batch: list[int], progress: float) -> Any:
            if len(losses) % PROBE_EVERY == 0:
                probes.append((len(losses), self.probe_loss()))
            if len(losses) >= args.steps:
                raise _Stop
            loss, scalars = super().training_step(batch, progress)
            losses.append(float(loss.detach()))
            return loss, scalars

    started = time.perf_counter()
    task = PlateauTask(recipe, encoder=encoder, progress=False)
    gen = torch.Generator().manual_seed(PROBE_SEED)
    picked = torch.randperm(len(task.train_feats), generator=gen)[: PROBE_BATCHES * PROBE_BATCH_SIZE].tolist()
    probe_batches = [picked[i : i + PROBE_BATCH_SIZE] for i in range(0, len(picked), PROBE_BATCH_SIZE)]
    setup = time.perf_counter() - started
    started = time.perf_counter()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        Trainer(recipe.train, out.with_suffix(".run"), progress_bar=False).fit(task)
    except _Stop:
        pass
    task.modules.eval()
    with torch.inference_mode(), task.precision():
        dev = task.evaluate()
    precision = resolve_precision(recipe.train.precision, task.device, warn=False)
    result = {"model": args.model, "seed": args.seed, "set": args.set, "steps": len(losses),
              "device": str(task.device), "precision": precision,
              "setup_s": setup, "train_s": time.perf_counter() - started, "losses": losses,
              "probes": probes, "dev": dev, "environment": environment()}
    out.write_text(json.dumps(result, indent=1))
    return result


def exit_step(probes: list[list[float]] | list[tuple[int, float]], threshold: float) -> int | None:
    """The first probed step whose probe loss is below ``threshold`` (``None``: never)."""
    return next((int(step) for step, value in probes if step > 0 and value < threshold), None)


def row(result: dict[str, Any], threshold: float) -> dict[str, Any]:
    probes = {int(s): v for s, v in result["probes"]}
    left = exit_step(result["probes"], threshold)
    return {"model": result["model"], "seed": result["seed"], "overrides": " ".join(result["set"]) or "-",
            "left the plateau at step": left if left is not None else f"not by {result['steps']}",
            **{f"probe @{s}": f"{probes[s]:.2f}" if s in probes else "-" for s in (200, 300, 400)},
            "steps": result["steps"], "dev PER at the last step": f"{100 * result['dev']['per']:.1f} %"}


def _print(rows: list[dict[str, Any]]) -> None:
    print_table(rows, [(key, key) for key in rows[0]])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", default=str(Path(__file__).resolve().parent.parent / "recipes" / "asr.yaml"))
    p.add_argument("--model", choices=["truncated", "conformer"], default="truncated")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="recipe override (repeatable)")
    p.add_argument("--out", help="JSON of this run (and OUT.run/ for the trainer's files)")
    p.add_argument("--exit-loss", type=float, default=3.0, help="probe loss that counts as off the plateau")
    p.add_argument("--table", nargs="+", metavar="JSON", help="print the table of these finished runs and exit")
    args = p.parse_args()
    if args.table:
        _print([row(json.loads(Path(f).read_text()), args.exit_loss) for f in args.table])
        return
    if not args.out:
        p.error("--out is required (or --table)")
    _print([row(run(args), args.exit_loss)])


if __name__ == "__main__":
    main()
