"""Train and export the models shipped inside the package (``make models``).

    python benchmarks/train_models.py                 # all of recipes/models.yaml: vad, speaker, phones
    python benchmarks/train_models.py vad             # one
    python benchmarks/train_models.py --export-only   # re-export finished runs (no training)
    python benchmarks/train_models.py --threads 1     # on a machine shared with other jobs

For each model NAME of ``recipes/models.yaml``:

1. trains its recipe from scratch into ``runs/models/NAME`` (which must not exist), timed:
   ``python benchmarks/results_table.py --time model_NAME -- python benchmarks/train_time.py
   --run-dir runs/models/NAME --json benchmarks/results/model_NAME.json -- python -m
   speechattn.cli.main train RECIPE --run-dir runs/models/NAME [--threads N]``;
2. exports the run as ``speechattn/models/pretrained/NAME.safetensors`` (float16) with
   ``speechattn export``, its card filled from ``recipes/models.yaml``, the run's metrics, the
   commit the training ran at and the command above;
3. writes ``benchmarks/results/models.json``: every shipped model's size, parameters, metrics and
   training time, with the environment.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import environment, write_json  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
PRETRAINED = ROOT / "speechattn" / "models" / "pretrained"


def train_command(name: str, recipe: str, threads: int | None) -> list[str]:
    run_dir = f"runs/models/{name}"
    return [sys.executable, "benchmarks/results_table.py", "--time", f"model_{name}", "--",
            sys.executable, "benchmarks/train_time.py", "--run-dir", run_dir, "--json",
            f"benchmarks/results/model_{name}.json", "--",
            sys.executable, "-m", "speechattn.cli.main", "train", recipe, "--run-dir", run_dir,
            *(["--threads", str(threads)] if threads else [])]


def export(name: str, spec: dict) -> Path:
    timing = json.loads((RESULTS / f"model_{name}.time.json").read_text())
    out = PRETRAINED / f"{name}.safetensors"
    threads = timing["command"].split("--threads ")[1].split()[0] if "--threads " in timing["command"] else None
    extra = f" MODELS_ARGS='--threads {threads}'" if threads else ""
    command = (f"make models MODELS={name}{extra}  (speechattn train {spec['recipe']} --run-dir runs/models/{name}"
               f"{' --threads ' + threads if threads else ''}, then speechattn export)")
    cmd = [sys.executable, "-m", "speechattn.cli.main", "export", f"runs/models/{name}", str(out), "--name", name,
           "--description", spec["description"], "--data", spec["data"], "--licence", spec["licence"],
           "--command", command, "--commit", timing["commit"], "--notes", spec.get("notes", "")]
    subprocess.run(cmd, cwd=ROOT, check=True)
    return out


def summary(names: list[str]) -> dict:
    from speechattn.models.modelfile import read_model_file

    rows = {}
    for name in names:
        path = PRETRAINED / f"{name}.safetensors"
        if not path.exists():
            continue
        model = read_model_file(path)
        timing = json.loads((RESULTS / f"model_{name}.time.json").read_text())
        train = json.loads((RESULTS / f"model_{name}.json").read_text())
        rows[name] = {"task": model.task, "parameters": model.num_parameters(), "bytes": path.stat().st_size,
                      "dtype": model.header.dtype, "dev": model.card.metrics.get("dev"),
                      "test": model.card.metrics.get("test"), "train_commit": timing["commit"],
                      "train_wall_min": round(timing["wall_s"] / 60, 2), "train_other_cores": timing["other_cores"],
                      "train_result": train["result"], "card": model.card.__dict__}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="models to build (default: all of recipes/models.yaml)")
    parser.add_argument("--export-only", action="store_true", help="export finished runs, train nothing")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for training (default: one per core). 1 on a machine shared with other "
                             "jobs: a 2-thread run there spends most of its time waiting for a descheduled thread")
    args = parser.parse_args()
    specs = yaml.safe_load((ROOT / "recipes" / "models.yaml").read_text())
    names = args.names or list(specs)
    unknown = [n for n in names if n not in specs]
    if unknown:
        parser.error(f"unknown models {unknown}; recipes/models.yaml has {list(specs)}")
    for name in names:
        if not args.export_only:
            if (ROOT / "runs" / "models" / name).exists():
                parser.error(f"runs/models/{name} exists: move it away to train {name} from scratch")
            subprocess.run(train_command(name, specs[name]["recipe"], args.threads), cwd=ROOT, check=True)
        print(f"exported {export(name, specs[name])}")
    rows = summary(list(specs))
    out = write_json("models", {"environment": environment(), "models": rows}, str(RESULTS / "models.json"))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
