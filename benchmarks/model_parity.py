"""What float16 storage of the shipped models costs: dev metrics of each shipped model file
(float16 weights) against a float32 export of the same run, in one run.

    python benchmarks/model_parity.py --json benchmarks/results/model_parity.json
    python benchmarks/model_parity.py vad              # one model

Each model is scored through ``speechattn.evaluation`` (the ``speechattn evaluate`` path) on its
dev set: speaker EER / minDCF on speechocean762 dev (all pairs), VAD frame F1 on the simulated dev
recordings its run was evaluated on (``dev_data`` in its metadata), phones PER on speechocean762
dev. The float32 export comes from ``runs/models/NAME`` (``make models`` writes it), so this
needs the runs as well as the data root.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import environment, write_json  # noqa: E402

PRETRAINED = ROOT / "speechattn" / "models" / "pretrained"
KEYS = {"speaker": ("eer", "min_dcf"), "labeling": ("f1", "precision", "recall"), "frame_labels": ("f1",),
        "ctc": ("per",)}


def evaluate(path: Path, task: str, info: dict) -> dict:
    if task == "speaker":
        from speechattn.evaluation.speaker import evaluate_run

        return evaluate_run(path, "speechocean762/dev")
    if task == "ctc":
        from speechattn.evaluation.ctc import evaluate_run

        return evaluate_run(path, "speechocean762/dev", progress=False)
    from speechattn.evaluation.labeling import evaluate_run

    return evaluate_run(path, info["dev_data"], progress=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="shipped models (default: all)")
    parser.add_argument("--json", default=None, help="output JSON (default benchmarks/out/model_parity.json)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: one per core)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from speechattn.inference import export_model
    from speechattn.models.modelfile import read_model_file
    from speechattn.models.pretrained import shipped_models
    from speechattn.utils.provenance import source_commit

    rows = {}
    for name, shipped in shipped_models().items():
        if args.names and name not in args.names:
            continue
        model = read_model_file(shipped)
        task, info = model.task, model.header.info
        with tempfile.TemporaryDirectory() as tmp:
            f32 = export_model(ROOT / "runs" / "models" / name, Path(tmp) / "f32.safetensors", dtype="float32")
            row = {"task": task, "bytes_float16": shipped.stat().st_size, "bytes_float32": f32.stat().st_size}
            for label, path in (("float32", f32), ("float16", shipped)):
                start = time.perf_counter()
                metrics = evaluate(path, task, info)
                row[label] = {k: metrics[k] for k in KEYS[task] if k in metrics}
                row[f"{label}_seconds"] = round(time.perf_counter() - start, 1)
        row["delta"] = {k: row["float16"][k] - row["float32"][k] for k in row["float32"]}
        rows[name] = row
        print(name, row, flush=True)
    out = write_json("model_parity", {"environment": environment(), "commit": source_commit(), "models": rows},
                     args.json)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
