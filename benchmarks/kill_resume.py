"""kill -9 a real training run at several points, resume it, and compare bit for bit.

    python benchmarks/kill_resume.py [--kills 5] [--epochs 5] [--seed 0] [--keep DIR] [--set KEY=VALUE ...]

Trains a tiny version of ``recipes/speaker_fsdd.yaml`` (a small encoder on 480 FSDD recordings,
30 steps an epoch, fp32, one thread, a checkpoint after every epoch) with ``speechattn train`` once without
interruption. Then, ``--kills`` times, it starts the same training in a new run folder, SIGKILLs
the process at a different point (after the log row of epoch K appears, plus a fraction of an
epoch, so mid-epoch, after the last checkpoint; the step it was killed at is estimated from
the epoch time of the uninterrupted run), resumes it with ``speechattn train --resume``
and compares with the uninterrupted run:

- the final weights and optimizer state (``checkpoints/last.pt``), byte for byte;
- the best model (``model.safetensors``: weights and metadata), byte for byte;
- ``log.csv`` (every column but the wall-clock ``minutes``): no row lost or doubled.

The features are cached in a fresh, private cache: the uninterrupted run extracts them, the
others read them back, so the cache is part of what is compared. Prints a table (kill point,
step it resumed from, identical?) and writes ``benchmarks/results/kill_resume.json``.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import environment, print_table, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "speaker_fsdd.yaml"
RESULTS = Path(__file__).resolve().parent / "results" / "kill_resume.json"

#: recipes/speaker_fsdd.yaml made tiny, single-threaded, fp32 and checkpointed every epoch.
TINY = [
    "model.encoder.d_model=32", "model.encoder.num_heads=2", "model.encoder.num_layers=1",
    "model.encoder.ffn_dim=64", "model.embed_dim=16", "data.max_train_utterances=480",
    "data.max_dev_utterances=60", "train.batch_size=16", "train.eval_every=1", "train.max_minutes=null",
    "train.precision=fp32", "train.device=cpu", "train.threads=1", "train.warmup_steps=4", "train.seed=0",
]


def _command(run_dir: Path, overrides: list[str], resume: bool) -> list[str]:
    cmd = [sys.executable, "-m", "speechattn.cli.main", "train", str(RECIPE), "--run-dir", str(run_dir)]
    for override in overrides:
        cmd += ["--set", override]
    return cmd + (["--resume"] if resume else [])


def _train(run_dir: Path, overrides: list[str], env: dict[str, str], resume: bool = False) -> float:
    """Run a training to its end; seconds taken."""
    start = time.perf_counter()
    with open(run_dir.parent / f"{run_dir.name}{'.resume' if resume else ''}.log", "w") as log:
        proc = subprocess.run(_command(run_dir, overrides, resume), stdout=log, stderr=subprocess.STDOUT, env=env,
                              cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"training in {run_dir} failed (exit {proc.returncode}); see {log.name}")
    return time.perf_counter() - start


def _rows(run_dir: Path) -> list[dict[str, str]]:
    path = run_dir / "log.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _train_and_kill(run_dir: Path, overrides: list[str], env: dict[str, str], after_rows: int,
                    delay: float, timeout: float = 900.0) -> dict[str, Any]:
    """Start a training, SIGKILL it ``delay`` seconds after log.csv has ``after_rows`` rows."""
    with open(run_dir.parent / f"{run_dir.name}.log", "w") as log:
        proc = subprocess.Popen(_command(run_dir, overrides, False), stdout=log, stderr=subprocess.STDOUT, env=env,
                                cwd=ROOT)
        start = time.perf_counter()
        while len(_rows(run_dir)) < after_rows:
            if proc.poll() is not None:
                raise SystemExit(f"training in {run_dir} ended (exit {proc.returncode}) before its kill point")
            if time.perf_counter() - start > timeout:
                proc.kill()
                raise SystemExit(f"training in {run_dir} did not reach {after_rows} log rows in {timeout:.0f} s")
            time.sleep(0.02)
        time.sleep(delay)
        finished = proc.poll() is not None
        if not finished:
            os.kill(proc.pid, signal.SIGKILL)  # like `kill -9`: no handler, no cleanup
        proc.wait()
    return {"killed": not finished, "returncode": proc.returncode, "seconds": time.perf_counter() - start,
            "rows_at_kill": len(_rows(run_dir))}


def _tensors_equal(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Names of the entries that differ (tensors compared byte for byte, recursively)."""
    differ = []
    for key in sorted(set(a) | set(b), key=str):
        name = f"{prefix}{key}"
        if key not in a or key not in b:
            differ.append(name)
        elif isinstance(a[key], dict) and isinstance(b[key], dict):
            differ += _tensors_equal(a[key], b[key], name + ".")
        elif isinstance(a[key], torch.Tensor) and isinstance(b[key], torch.Tensor):
            x, y = a[key].contiguous(), b[key].contiguous()
            if x.dtype != y.dtype or x.shape != y.shape or \
                    x.view(-1).view(torch.uint8).numpy().tobytes() != y.view(-1).view(torch.uint8).numpy().tobytes():
                differ.append(name)
        elif a[key] != b[key]:
            differ.append(name)
    return differ


def _max_abs_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    diffs = [float((a[k].double() - b[k].double()).abs().max()) for k in a if k in b and a[k].shape == b[k].shape
             and a[k].numel()]
    return max(diffs, default=0.0)


def compare(full: Path, other: Path) -> dict[str, Any]:
    """How ``other``'s results differ from ``full``'s (empty lists: bit-identical)."""
    from safetensors import safe_open

    from speechattn.training.checkpoint import load_state

    a, b = load_state(full / "checkpoints" / "last.pt"), load_state(other / "checkpoints" / "last.pt")
    weights = _tensors_equal(a["modules"], b["modules"])
    optimizer = _tensors_equal(a["optimizer"], b["optimizer"])
    best_a, best_b = (full / "model.safetensors").read_bytes(), (other / "model.safetensors").read_bytes()
    with safe_open(str(full / "model.safetensors"), "pt") as fa, safe_open(str(other / "model.safetensors"), "pt") as fb:
        best_meta_equal = fa.metadata() == fb.metadata()

    def strip(rows: list[dict[str, str]]) -> list[dict[str, str]]:
        return [{k: v for k, v in r.items() if k != "minutes"} for r in rows]

    return {
        "weights_differ": weights,
        "optimizer_differ": optimizer,
        "max_abs_weight_diff": _max_abs_diff(a["modules"], b["modules"]),
        "best_model_identical": best_a == best_b,
        "best_metadata_identical": best_meta_equal,
        "log_identical": strip(_rows(full)) == strip(_rows(other)),
        "steps": (a["trainer"]["step"], b["trainer"]["step"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=5, help="interrupted runs (default 5)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of the tiny run (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill points (default 0)")
    parser.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                        help="extra recipe override, after the tiny ones (e.g. --set train.threads=2)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the run folders here (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS.relative_to(ROOT)})")
    args = parser.parse_args()
    if args.epochs < 3:
        parser.error("--epochs must be >= 3 (kills happen after the first checkpoint, before the end)")

    overrides = [*TINY, f"train.max_epochs={args.epochs}", *args.extra]
    work = Path(tempfile.mkdtemp(prefix="kill_resume-")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SPEECHATTN_CACHE": str(work / "cache"), "PYTHONHASHSEED": "0"}
    env.setdefault("SPEECHATTN_DATA", str(ROOT.parent / "shared" / "data"))

    print(f"uninterrupted run in {work / 'full'} ...", file=sys.stderr, flush=True)
    full_seconds = _train(work / "full", overrides, env)
    full_rows = _rows(work / "full")
    minutes = [float(r["minutes"]) for r in full_rows]
    epoch_seconds = 60.0 * (minutes[-1] - minutes[0]) / max(1, len(minutes) - 1)
    steps_per_epoch = int(full_rows[0]["step"])

    # Kill points: after the log row of epochs spread over 1..epochs-1, then a random fraction
    # of an epoch (mid-epoch), different for every run.
    rng = random.Random(args.seed)
    rows_after = [1 + (i * (args.epochs - 1)) // args.kills for i in range(args.kills)]
    fractions = [(i + rng.random()) / args.kills for i in range(args.kills)]
    rng.shuffle(fractions)
    results = []
    for i, (after, fraction) in enumerate(zip(rows_after, fractions)):
        run_dir = work / f"kill{i + 1}"
        delay = fraction * epoch_seconds
        approx_step = min(int(full_rows[-1]["step"]), int(round((after + fraction) * steps_per_epoch)))
        point = f"epoch {after} logged + {fraction:.2f} epoch ({delay:.1f} s, ~step {approx_step})"
        print(f"run {i + 1}: kill at {point} ...", file=sys.stderr, flush=True)
        kill = _train_and_kill(run_dir, overrides, env, after, delay)
        from speechattn.training.checkpoint import load_state

        saved = load_state(run_dir / "checkpoints" / "last.pt")["trainer"]
        resume_seconds = _train(run_dir, overrides, env, resume=True)
        diff = compare(work / "full", run_dir)
        identical = not diff["weights_differ"] and not diff["optimizer_differ"] and diff["best_model_identical"] \
            and diff["best_metadata_identical"] and diff["log_identical"]
        results.append({
            "run": i + 1,
            "kill_point": point,
            "kill_after_rows": after,
            "kill_delay_seconds": delay,
            "approx_kill_step": approx_step,
            "killed": kill["killed"],
            "kill_returncode": kill["returncode"],
            "rows_at_kill": kill["rows_at_kill"],
            "resumed_from_epoch": int(saved["epoch"]),
            "resumed_from_step": int(saved["step"]),
            "resume_seconds": resume_seconds,
            "identical": identical,
            **diff,
        })
        row = results[-1]
        print(f"  resumed from step {row['resumed_from_step']}: {'identical' if identical else 'DIFFERENT'}",
              file=sys.stderr, flush=True)

    table = [{"run": r["run"], "kill_point": r["kill_point"] + ("" if r["killed"] else " (ended first)"),
              "resumed": f"step {r['resumed_from_step']} (epoch {r['resumed_from_epoch']})",
              "identical": "yes" if r["identical"] else f"no (max |dw| {r['max_abs_weight_diff']:.3g})"}
             for r in results]
    print_table(table, [("run", "run"), ("kill_point", "SIGKILL at"), ("resumed", "resumed from"),
                        ("identical", "bit-identical to the uninterrupted run")])
    payload = {
        "benchmark": "kill_resume",
        "recipe": str(RECIPE.relative_to(ROOT)),
        "overrides": overrides,
        "epochs": args.epochs,
        "steps_per_epoch": steps_per_epoch,
        "total_steps": int(full_rows[-1]["step"]),
        "uninterrupted_seconds": full_seconds,
        "epoch_seconds": epoch_seconds,
        "compared": "checkpoints/last.pt weights and optimizer state (bytes), model.safetensors (bytes), "
                    "log.csv (all columns but minutes)",
        "all_identical": all(r["identical"] for r in results),
        "runs": results,
        "environment": environment(),
        "work_dir": str(work),
    }
    write_json("kill_resume", payload, args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    if not payload["all_identical"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
