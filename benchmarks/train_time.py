"""Wall time of a whole training command on this machine, with the run's dev result and the CPU.

Runs COMMAND (default: the README's main job, ``make train``) as a child process, measures its
wall time and peak RSS, then reads the run's ``metrics.json`` and records them with the CPU model,
its SIMD flags and whether it has native bf16. One JSON per hardware class, e.g.::

    python benchmarks/train_time.py --run-dir runs/speaker --json benchmarks/results/train_speaker_avx2.json \\
        -- make train

The run folder must not exist yet (a fresh run; ``make train`` writes ``runs/speaker``).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import environment, print_table, write_json  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, default=Path("runs/speaker"),
                        help="the run folder COMMAND writes (must not exist yet)")
    parser.add_argument("--json", default=None, help="where to write the JSON (default benchmarks/out/train_time.json)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ... (default: make train)")
    args = parser.parse_args()
    command = [c for c in args.command if c != "--"] or ["make", "train"]
    if args.run_dir.exists():
        parser.error(f"{args.run_dir} exists: move it away so that the command trains a fresh run there")
    start = time.perf_counter()
    rc = subprocess.call(command)
    wall = time.perf_counter() - start
    # ru_maxrss of the children: the trainer is a fresh `python3 -m` process started by make.
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if rc != 0:
        raise SystemExit(f"{' '.join(command)} exited with {rc}")
    metrics = json.loads((args.run_dir / "metrics.json").read_text())
    row = {
        "cpu": environment()["cpu"],
        "native_bf16": environment()["native_bf16"],
        "precision": metrics.get("precision"),
        "steps": metrics["steps"],
        "planned": metrics.get("planned_steps"),
        "wall_min": wall / 60,
        "train_min": metrics["minutes"],
        "s_per_step": 60 * metrics["minutes"] / max(1, metrics["steps"]),
        "eer": metrics["dev"].get("eer"),
        "min_dcf": metrics["dev"].get("min_dcf"),
        "peak_rss_mb": peak_mb,
    }
    print_table([row], [("cpu", "CPU"), ("native_bf16", "native bf16"), ("precision", "precision"),
                        ("steps", "steps"), ("wall_min", "wall min (whole command)"),
                        ("train_min", "training min"), ("s_per_step", "s/step (incl. evals)"),
                        ("eer", "dev EER %"), ("min_dcf", "minDCF"), ("peak_rss_mb", "peak RSS MB")])
    out = write_json("train_time", {"environment": environment(), "command": command, "result": row,
                                    "metrics": metrics}, args.json)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
