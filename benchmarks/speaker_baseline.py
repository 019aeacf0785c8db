"""Speaker baseline: speechattn's truncated-attention embedder vs ECAPA-TDNN, same harness.

Each model is trained by ``SpeakerTask`` + ``Trainer`` from the SAME recipe (data, features,
per-crop mean normalisation, noise + SpecAugment, AAM-softmax, batch size, optimizer, schedule,
precision, seed and wall-clock budget ``train.max_minutes``); the only difference is the
embedder passed to ``SpeakerTask`` (``None``: the recipe's own ``SpeakerEmbedder``; ``ecapa``:
SpeechBrain's ECAPA-TDNN, see ``benchmarks/ecapa.py``). Each training runs in a fresh process,
one after the other. Then one more process measures embedding-extraction speed of all models,
interleaved call by call so that any drift in machine load hits them equally: median time to
embed one 3 s and one 30 s utterance (log-mel features precomputed, batch 1,
``torch.inference_mode``, ``--threads`` threads), in fp32 and, when the recipe trains in bf16
(its dev evaluation then runs under bf16 autocast too), also under bf16 autocast.

Needs SpeechBrain for the ECAPA model (not a speechattn dependency)::

    pip install --no-deps "speechbrain==1.1.2" "hyperpyyaml==1.2.3" "ruamel.yaml>=0.17.28,<0.19"

Usage (timings are only meaningful on an otherwise idle machine; the speed step measures and
reports the CPU load of other processes)::

    SPEECHATTN_DATA=/path/to/data python benchmarks/speaker_baseline.py          # 15 min per model
    python benchmarks/speaker_baseline.py --data-root ../shared/data --minutes 30 --models ecapa
    python benchmarks/speaker_baseline.py --set train.batch_size=32 --set model.encoder.num_layers=6
    python benchmarks/speaker_baseline.py --smoke     # ~0.3 min per model on a tiny subset (checks the script)

Each training writes its run directory (log.csv, metrics.json, model.safetensors, det.png and
``train.log`` with the epoch lines) under ``--out-dir/<model>``; results go to
``--out-dir/speaker_baseline.json`` unless ``--json`` says otherwise.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import OtherLoad, count_params, environment, logged_worker, other_cpu_load  # noqa: E402
from _common import print_table, run_worker, worker_options, write_json  # noqa: E402

MODELS = ("truncated", "ecapa")
REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "benchmarks" / "out" / "speaker_baseline"
#: --smoke: a tiny, evenly spread subset (every train and dev speaker keeps utterances) and a
#: short budget; applied before --set, so --set can still change them.
SMOKE_OVERRIDES = ["data.max_train_utterances=320", "data.max_dev_utterances=189", "train.eval_every=1"]
SMOKE_MINUTES = 0.3


# --------------------------------------------------------------------------- helpers

def overrides_for(args: argparse.Namespace, model: str | None = None) -> list[str]:
    """Recipe overrides: smoke subset, then --set (every model), then --ecapa-set (ECAPA only:
    e.g. the optimizer settings customary for it), then the budget and threads given by
    --minutes / --threads (explicit options win). Data, features, loss, augmentation and the
    budget stay identical."""
    own = list(args.ecapa_set) if model == "ecapa" else []
    return [*(SMOKE_OVERRIDES if args.smoke else []), *args.set, *own,
            f"train.max_minutes={args.minutes}", f"train.threads={args.threads}"]


def load(args: argparse.Namespace, model: str | None = None):  # -> SpeakerRecipe
    from speechattn.recipes.schema import load_recipe
    from speechattn.recipes.speaker import SpeakerRecipe

    return load_recipe(SpeakerRecipe, args.recipe, overrides_for(args, model))


def build_model(name: str, recipe: Any, feature_dim: int) -> torch.nn.Module | None:
    """The embedder for ``name``; ``None`` for "truncated" inside SpeakerTask (it builds its own)."""
    torch.manual_seed(recipe.train.seed)
    if name == "ecapa":
        from ecapa import EcapaEmbedder

        return EcapaEmbedder(input_dim=feature_dim)
    from speechattn.recipes.builders import build_embedder

    return build_embedder(recipe.model, feature_dim)


# --------------------------------------------------------------------------- workers

def train_worker(model: str, args: argparse.Namespace) -> dict[str, Any]:
    """Train one model in this (fresh) process; stdout/stderr go to ``run_dir/train.log``."""
    from speechattn.tasks.speaker import SpeakerTask
    from speechattn.training.trainer import Trainer

    recipe = load(args, model)
    run_dir = Path(args.out_dir) / model
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    torch.manual_seed(recipe.train.seed)
    embedder = None if model == "truncated" else build_model(model, recipe, recipe.features.feature_dim)
    task = SpeakerTask(recipe, data_root=args.data_root, embedder=embedder, progress=False)
    setup_s = time.perf_counter() - start
    embed_params = count_params(task.embedder)
    head_params = count_params(task.head)
    print(f"{model}: embedder {embed_params:,} parameters, head {head_params:,}; "
          f"{len(task.train_set.feats)} train / {len(task.dev_set.feats)} dev utterances, "
          f"{len(task.speakers)} train speakers; setup {setup_s:.1f} s", flush=True)
    summary = Trainer(recipe.train, run_dir, progress_bar=False).fit(task)
    dev = summary.get("dev", {})
    return {
        "model": model,
        "params": embed_params,
        "head_params": head_params,
        "eer": dev.get("eer"),
        "min_dcf": dev.get("min_dcf"),
        "accuracy": dev.get("accuracy"),
        "best_epoch": summary.get("best_epoch"),
        "epochs": summary.get("epochs"),
        "steps": summary.get("steps"),
        "minutes": summary.get("minutes"),
        "stopped": summary.get("stopped"),
        "setup_s": setup_s,
        "train_utterances": len(task.train_set.feats),
        "dev_utterances": len(task.dev_set.feats),
        "train_speakers": len(task.speakers),
        "run_dir": str(run_dir),
        "summary": summary,
    }


def run_train_worker(model: str, args: argparse.Namespace) -> None:
    """Entry of ``--worker train MODEL``: everything the training prints goes to its log file;
    the one JSON line for the parent goes to the real stdout (a one-line error to stderr)."""
    run_dir = Path(args.out_dir) / model
    run_dir.mkdir(parents=True, exist_ok=True)
    logged_worker(run_dir / "train.log", lambda: train_worker(model, args))


def measure_speed(models: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Median ms per embedding of one 3 s / 30 s utterance, all models in this process,
    interleaved call by call (rotating the order), fp32 and (if the recipe's) bf16 autocast."""
    from speechattn.audio import FeatureExtractor
    from speechattn.models.speaker import normalize_features

    torch.set_num_threads(args.threads)
    recipe = load(args)
    extractor = FeatureExtractor(recipe.features).eval()
    feature_dim = recipe.features.feature_dim
    nets = {}
    params = {}
    for name in models:
        net = build_model(name, recipe, feature_dim)
        assert net is not None
        weights = Path(args.out_dir) / name / "model.safetensors"
        loaded = False
        if weights.exists():  # the trained weights, when present (speed does not depend on them)
            from speechattn.models.files import load_weights

            try:
                net.load_state_dict(load_weights(weights))
                loaded = True
            except (RuntimeError, KeyError, OSError) as exc:
                print(f"{weights}: not loaded ({exc}); timing random weights", file=sys.stderr)
        nets[name] = net.eval()
        params[name] = {"params": count_params(net), "trained_weights": loaded}

    precisions = ["bf16", "fp32"] if recipe.train.precision == "bf16" else ["fp32"]
    gen = torch.Generator().manual_seed(0)
    inputs = {}
    for seconds in (3, 30):
        wave = 0.1 * torch.randn(1, int(seconds * recipe.features.sample_rate), generator=gen)
        with torch.inference_mode():
            feats, frames = extractor(wave)
            inputs[seconds] = (normalize_features(feats, frames, recipe.normalize).clone(), frames.clone())

    load_before = other_cpu_load()
    loadavg_before = os.getloadavg()
    results: dict[str, Any] = {name: {} for name in models}
    repeats = {3: args.repeats_short, 30: args.repeats_long}
    for precision in precisions:
        for seconds in (3, 30):
            x, lengths = inputs[seconds]
            times: dict[str, list[float]] = {name: [] for name in models}
            autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
            meter = OtherLoad()
            with torch.inference_mode(), autocast:
                for name in models:  # warm-up (first-call allocations, oneDNN kernel selection)
                    for _ in range(args.warmup):
                        nets[name](x, lengths)
                for r in range(repeats[seconds]):
                    for k in range(len(models)):
                        name = models[(r + k) % len(models)]
                        start = time.perf_counter()
                        nets[name](x, lengths)
                        times[name].append(time.perf_counter() - start)
            other = meter.cores()
            for name in models:
                ms = [1000.0 * t for t in times[name]]
                results[name][f"{precision}_{seconds}s"] = {
                    "median_ms": statistics.median(ms), "min_ms": min(ms), "max_ms": max(ms),
                    "repeats": len(ms), "frames": int(x.shape[1]), "other_cpu_load": other,
                }
    return {
        "precisions": precisions,
        "models": {name: {**params[name], **results[name]} for name in models},
        "threads": args.threads,
        "other_cpu_load_before": load_before,
        "other_cpu_load_after": other_cpu_load(),
        "loadavg_before": loadavg_before,
        "loadavg_after": os.getloadavg(),
    }


# --------------------------------------------------------------------------- driver

def table_rows(train: dict[str, dict], speed: dict[str, Any], models: list[str]) -> list[dict[str, Any]]:
    rows = []
    recipe_precision = speed.get("precisions", ["fp32"])[0] if "error" not in speed else None
    for name in models:
        t = train.get(name, {})
        s = speed.get("models", {}).get(name, {})
        ref = speed.get("models", {}).get("ecapa", {})
        for precision in speed.get("precisions", [None]):
            row: dict[str, Any] = {
                "model": name,
                "precision": "-" if precision is None else precision + (" (recipe)" if precision == recipe_precision
                                                                         and len(speed["precisions"]) > 1 else ""),
                "params": f"{(t.get('params') or s.get('params') or 0) / 1e6:.2f} M",
                "eer": t.get("eer", t.get("error", "-")),
                "min_dcf": t.get("min_dcf", "-"),
                "epochs": t.get("epochs", "-"),
                "minutes": t.get("minutes", "-"),
            }
            for seconds in (3, 30):
                key = f"{precision}_{seconds}s"
                ms = s.get(key, {}).get("median_ms")
                ref_ms = ref.get(key, {}).get("median_ms")
                row[f"ms{seconds}"] = "-" if ms is None else ms
                row[f"x{seconds}"] = "-" if ms is None or ref_ms is None else f"{ref_ms / ms:.2f}x"
            rows.append(row)
    return rows


COLUMNS = [
    ("model", "model"), ("precision", "inference"), ("params", "params"), ("eer", "dev EER %"),
    ("min_dcf", "minDCF"), ("epochs", "epochs"), ("minutes", "minutes"), ("ms3", "embed ms 3 s"),
    ("ms30", "embed ms 30 s"), ("x3", "speed vs ECAPA 3 s"), ("x30", "speed vs ECAPA 30 s"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=None,
                        help=f"wall-clock training budget per model (train.max_minutes; default 15, "
                             f"{SMOKE_MINUTES} with --smoke)")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--recipe", default=str(REPO / "recipes" / "speaker.yaml"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="recipe override for every model (repeatable), e.g. --set train.batch_size=32")
    parser.add_argument("--ecapa-set", action="append", default=[], metavar="KEY=VALUE",
                        help="override for ECAPA only, e.g. its customary optimizer: --ecapa-set train.lr=0.001")
    parser.add_argument("--data-root", default=None,
                        help="data root (default: the recipe's data.root, else $SPEECHATTN_DATA, else data/)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for training and timing")
    parser.add_argument("--out-dir", default=None, help=f"run directories (default {DEFAULT_OUT.relative_to(REPO)}, "
                                                        f"or ..._smoke with --smoke)")
    parser.add_argument("--json", default=None, help="results file (default OUT_DIR/speaker_baseline.json)")
    parser.add_argument("--smoke", action="store_true",
                        help=f"quick end-to-end check: {SMOKE_MINUTES} min per model on a tiny subset "
                             f"({' '.join(SMOKE_OVERRIDES)}), 20 / 5 timing repeats")
    parser.add_argument("--skip-train", action="store_true",
                        help="only measure speed (uses trained weights in OUT_DIR if present, and their metrics.json)")
    parser.add_argument("--repeats-short", type=int, default=None,
                        help="timed calls for 3 s (default 50; 20 with --smoke)")
    parser.add_argument("--repeats-long", type=int, default=None,
                        help="timed calls for 30 s (default 10; 5 with --smoke)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls per model before timing")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.minutes is None:
        args.minutes = SMOKE_MINUTES if args.smoke else 15.0
    if args.out_dir is None:
        args.out_dir = str(DEFAULT_OUT.with_name(DEFAULT_OUT.name + "_smoke") if args.smoke else DEFAULT_OUT)
    if args.repeats_short is None:
        args.repeats_short = 20 if args.smoke else 50
    if args.repeats_long is None:
        args.repeats_long = 5 if args.smoke else 10
    models = [m for m in MODELS if m in args.models]  # fixed order, no duplicates

    if args.worker:
        if args.worker[0] == "train":
            run_train_worker(args.worker[1], args)
        else:
            print(json.dumps(measure_speed(args.worker[1:], args)))
        return

    if "ecapa" in models and importlib.util.find_spec("speechbrain") is None:
        from ecapa import INSTALL_HINT

        parser.exit(2, f"the ecapa model needs SpeechBrain; install it with:\n    {INSTALL_HINT}\n")
    from speechattn.recipes.schema import ConfigError

    try:
        recipe = load(args)  # fails fast on a bad recipe or override
    except ConfigError as exc:
        parser.exit(2, f"{exc}\n")
    common = worker_options(args, ["recipe", "threads", "out_dir", "minutes", "warmup", "repeats_short",
                                   "repeats_long", "set", "ecapa_set", "data_root", "smoke"])

    train: dict[str, dict] = {}
    for name in models:
        run_dir = Path(args.out_dir) / name
        if args.skip_train:
            metrics = run_dir / "metrics.json"
            if metrics.exists():
                summary = json.loads(metrics.read_text())
                dev = summary.get("dev", {})
                train[name] = {"model": name, "eer": dev.get("eer"), "min_dcf": dev.get("min_dcf"),
                               "epochs": summary.get("epochs"), "minutes": summary.get("minutes"),
                               "summary": summary, "from": str(metrics)}
            continue
        print(f"training {name} for {args.minutes:g} min (+ setup and final evaluation); "
              f"log: {run_dir / 'train.log'}", file=sys.stderr, flush=True)
        # generous limit: budget, plus feature extraction on a cold cache and the evaluations
        limit = 60.0 * (2 * args.minutes + 30)
        res = run_worker(__file__, ["train", name], common, timeout=limit)
        res.setdefault("model", name)
        train[name] = res
        shown = {k: res.get(k) for k in ("eer", "min_dcf", "epochs", "minutes", "stopped", "error") if k in res}
        print(f"  {name}: {shown}", file=sys.stderr, flush=True)

    print("measuring embedding speed ...", file=sys.stderr, flush=True)
    speed = run_worker(__file__, ["speed", *models], common, timeout=3600)
    if "error" in speed:
        print(f"  speed: {speed['error']}", file=sys.stderr)

    budget = f"{args.minutes:g} min" + (" (smoke: tiny subset)" if args.smoke else "")
    print(f"\nspeaker baseline: {args.recipe}, training budget {budget} per model, {args.threads} threads, "
          f"precision {recipe.train.precision}, batch {recipe.train.batch_size}, seed {recipe.train.seed}\n")
    print_table(table_rows(train, speed, models), COLUMNS)
    if "error" not in speed:
        print("\nembed: median ms per utterance, batch 1, precomputed features; "
              "speed vs ECAPA = ECAPA time / model time (> 1: faster).")
        during = [v.get("other_cpu_load") for m in speed["models"].values() for v in m.values() if isinstance(v, dict)]
        during = [v for v in during if v is not None]
        loads = [v for v in (speed["other_cpu_load_before"], speed["other_cpu_load_after"], *during) if v is not None]
        if loads:
            print(f"CPU load of other processes: {speed['other_cpu_load_before']:.2f} cores just before timing, "
                  f"at most {max(during, default=0.0):.2f} during, {speed['other_cpu_load_after']:.2f} after.")
        if loads and max(loads) > 0.25:
            print("WARNING: other processes were busy while timing; the speed numbers are not reliable.")
    payload = {
        "environment": environment(),
        "args": {**vars(args), "models": models},
        "recipe_overrides": overrides_for(args),
        "ecapa_overrides": list(args.ecapa_set),
        "precision": recipe.train.precision,
        "train": train,
        "speed": speed,
    }
    path = write_json("speaker_baseline", payload, args.json or str(Path(args.out_dir) / "speaker_baseline.json"))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
