"""Mean ± spread over seeds of a same-harness comparison: one JSON from several per-seed runs.

    python benchmarks/seed_summary.py asr benchmarks/out/asr_seed0.json benchmarks/out/asr_seed1.json ... \\
        --json benchmarks/results/asr_seeds.json

Each input is the JSON that ``asr_baseline.py`` (or ``speaker_baseline.py``: kind ``speaker``)
wrote for ONE seed (``--set train.seed=S``): both models trained by the same harness and recipe,
one after the other. The inputs must come from the same commit on a clean tree (their provenance
blocks), differ only in the seed (the recipe overrides are otherwise equal) and have distinct
seeds; else this refuses them. The summary keeps every seed's figures (no best-of) and reports,
per model, the mean, the sample standard deviation and the range of the error rate, and the same
for the per-seed ratio ours / baseline. Error rates are from each run's metrics.json, i.e. the
best dev evaluation of the run (dev is the selection set).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _provenance import check, provenance  # noqa: E402

#: kind -> (our model, the baseline, the metric key in each model's train entry, its name, the
#: factor to percent: asr_baseline stores the error rate as a fraction, speaker_baseline EER in %)
KINDS = {"asr": ("truncated", "conformer", "error_rate", "dev PER %", 100.0),
         "speaker": ("truncated", "ecapa", "eer", "dev EER %", 1.0)}


def seed_of(overrides: list[str]) -> int:
    seeds = [o.split("=", 1)[1] for o in overrides if o.startswith("train.seed=")]
    if not seeds:
        raise SystemExit("a run without --set train.seed=S: give the seed explicitly in every run")
    return int(seeds[-1])


def spread(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n": len(values)}


def summarise(kind: str, paths: list[Path]) -> dict[str, Any]:
    ours, base, key, label, scale = KINDS[kind]
    runs, commits, settings = [], set(), set()
    for path in paths:
        payload = json.loads(path.read_text())
        try:
            block = check(path.name, payload)
        except ValueError as exc:
            raise SystemExit(f"seed_summary.py: {exc}") from None
        commits.add(block["commit"])
        overrides = payload["recipe_overrides"]
        settings.add(json.dumps([o for o in overrides if not o.startswith("train.seed=")]
                                + payload.get("conformer_overrides", payload.get("ecapa_overrides", []))))
        train = payload["train"]
        missing = [m for m in (ours, base) if not isinstance(train.get(m, {}).get(key), (int, float))]
        if missing:
            raise SystemExit(f"seed_summary.py: {path}: no {key} for {', '.join(missing)} (a failed training?)")
        runs.append({"seed": seed_of(overrides), "source": str(path), "commit": block["commit"],
                     ours: scale * train[ours][key], base: scale * train[base][key],
                     "ratio": train[ours][key] / train[base][key],
                     "steps": {m: train[m].get("steps") for m in (ours, base)},
                     "other_cores": block["other_load"]["other_cores"]})
    if len(commits) != 1:
        raise SystemExit(f"seed_summary.py: runs from different commits {sorted(commits)}: rerun them at one")
    if len(settings) != 1:
        raise SystemExit("seed_summary.py: the runs differ in more than the seed (their recipe overrides)")
    seeds = [r["seed"] for r in runs]
    if len(set(seeds)) != len(seeds):
        raise SystemExit(f"seed_summary.py: a seed appears twice: {seeds}")
    runs.sort(key=lambda r: r["seed"])
    return {"kind": kind, "metric": label, "ours": ours, "baseline": base, "commit": commits.pop(),
            "settings": json.loads(settings.pop()), "runs": runs,
            "summary": {ours: spread([r[ours] for r in runs]), base: spread([r[base] for r in runs]),
                        "ratio": spread([r["ratio"] for r in runs])},
            "ours_better_in": sum(r[ours] < r[base] for r in runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=sorted(KINDS))
    parser.add_argument("runs", nargs="+", type=Path, help="one JSON per seed")
    parser.add_argument("--json", type=Path, required=True, help="where to write the summary")
    args = parser.parse_args()
    result = summarise(args.kind, args.runs)
    s = result["summary"]
    ours, base = result["ours"], result["baseline"]
    print(f"| seed | {ours} {result['metric']} | {base} {result['metric']} | ratio |\n|---|---|---|---|")
    for r in result["runs"]:
        print(f"| {r['seed']} | {r[ours]:.2f} | {r[base]:.2f} | {r['ratio']:.3f} |")
    print(f"| mean ± sd (n = {s['ratio']['n']}) | {s[ours]['mean']:.2f} ± {s[ours]['sd']:.2f} | "
          f"{s[base]['mean']:.2f} ± {s[base]['sd']:.2f} | {s['ratio']['mean']:.3f} ± {s['ratio']['sd']:.3f} |")
    from speechattn.utils.files import atomic_write_text

    # This process only summarises: the measurements are the runs', so their commit and the load
    # they ran under go in the block too (results_table.py shows those).
    block = provenance()
    block["runs"] = {"commit": result["commit"], "other_cores": [r["other_cores"] for r in result["runs"]]}
    atomic_write_text(args.json, json.dumps({**result, "provenance": block}, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
