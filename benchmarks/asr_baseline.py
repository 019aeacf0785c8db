"""CTC baseline: speechattn's truncated encoder vs torchaudio's Conformer, same harness.

Both models are trained by ``speechattn.tasks.train_recipe`` (what ``speechattn train`` runs:
``CTCTask`` + ``Trainer``) from the SAME recipe (data, phone targets, speed perturbation, log-mel
features, global CMVN, SpecAugment, length-bucketed batches, CTC loss, the Dropout + Linear head,
optimizer, schedule, precision, seed, wall-clock budget ``train.max_minutes`` and dev evaluation);
the only difference is the encoder passed to ``CTCTask`` (``encoder=None``: the recipe's own
``TruncatedEncoder``; ``conformer``: :class:`ConformerCTCEncoder`, below). So the "truncated"
figures are exactly those of ``speechattn train recipes/asr.yaml`` (with the same overrides),
including its whole-process wall time (features, training and the final evaluation).

:class:`ConformerCTCEncoder` = the SAME convolutional subsampling as ours
(``speechattn.nn.subsampling.Subsampling``, the recipe's factor and channels, projecting to
d_model) -> dropout -> ``torchaudio.models.Conformer`` (the recipe's d_model, num_heads,
num_layers and dropout; key-padding mask from the lengths) -> LayerNorm (ours ends with one).
What differs: the Conformer sees the whole utterance (full attention, no positional encoding:
its depthwise convolutions carry position; they also read the padding of shorter utterances in
a batch, as in torchaudio), where ours attends to a truncated window (rotary positions) and can
stream; the Conformer block has two half-step feed-forward modules and ends with a LayerNorm,
ours (with the recipe's ``conv_kernel``) is attention -> convolution module -> one feed-forward.
Its depthwise kernel is the recipe's ``conv_kernel`` (15 if the recipe has none), and its
``ffn_dim`` is chosen so that its encoder has about as many parameters as ours (two feed-forward
modules per block, so its ffn_dim comes out about half of ours); ``--conformer-ffn`` /
``--conformer-kernel`` override.

Each training runs in a fresh process, one after the other (the first one may extract and cache
the features; ``--cold-cache`` makes it do so from scratch, as on a first run). Then one more
process loads both best checkpoints and times the offline decoding of the whole dev set
(features precomputed and batched as in evaluation by ``decode.batch_frames``; forward +
log_softmax + greedy, under the recipe's precision autocast and ``torch.inference_mode``), the
models interleaved repeat by repeat (``--repeats``, median), and checks that its greedy PER equals
the one the training reported. ``--beam 4`` adds one prefix-beam-search decode of dev per model.

Usage (timings are only meaningful on an otherwise idle machine)::

    SPEECHATTN_DATA=/path/to/data python benchmarks/asr_baseline.py     # the recipe's budget per model
    python benchmarks/asr_baseline.py --minutes 30 --beam 4 --cold-cache
    python benchmarks/asr_baseline.py --set model.encoder.num_layers=8 --conformer-set train.lr=0.001
    python benchmarks/asr_baseline.py --smoke     # 0.3 min per model on a tiny subset (checks the script)

Each training writes its run directory (config.yaml, log.csv, metrics.json, model.safetensors,
model.json, ``train.log``; the Conformer's also ``conformer.json``) under ``--out-dir/<model>``;
the truncated one is a normal run (``speechattn transcribe`` / ``evaluate`` work on it). Results:
a Markdown table on stdout and a JSON file: ``--out-dir/asr_baseline.json`` when both models
are trained, ``--out-dir/asr_baseline_<model>.json`` when ``--models`` names one (so a pair run
as two calls, one per model, keeps both files). Then ``--skip-train`` (both models, the same
``--out-dir``) gives the table and the ratio of the two runs and times their decoding side by
side (s/step and process minutes come from those per-model JSON files when they match the run
directories' metrics.json). In the JSON, ``metric`` says which error rate (``per`` or ``cer``)
the ``error_rate`` fields and ``error_rate_ratio`` hold.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import OtherLoad, count_params, environment, logged_worker, other_cpu_load  # noqa: E402
from _common import print_table, run_worker, worker_options, write_json  # noqa: E402
from speechattn.nn.masks import frame_mask  # noqa: E402

MODELS = ("truncated", "conformer")
REPO = Path(__file__).resolve().parent.parent
DEFAULT_RECIPE = REPO / "recipes" / "asr.yaml"
DEFAULT_OUT = REPO / "benchmarks" / "out" / "asr_baseline"
#: --smoke: a tiny, evenly spread subset, one speed, an evaluation every epoch; applied before
#: --set, so --set can still change them.
SMOKE_OVERRIDES = ["data.max_train_utterances=200", "data.max_dev_utterances=60", "data.speed_perturb=[1.0]",
                   "train.eval_every=1"]
SMOKE_MINUTES = 0.3
DEFAULT_KERNEL = 15
#: Marks a run directory as written by this script (only such directories are replaced).
LOG_NAME = "train.log"


# --------------------------------------------------------------------------- the baseline encoder

class ConformerCTCEncoder(nn.Module):
    """speechattn's conv subsampling -> dropout -> torchaudio Conformer -> LayerNorm.

    ``(features (B, T, F), lengths (B,)) -> (output (B, T', d_model) zero at padded frames,
    output_lengths (B,))``, with ``input_dim``, ``output_dim`` and ``output_lengths`` as
    :class:`speechattn.models.ctc.CTCModel` needs.
    """

    def __init__(self, input_dim: int, d_model: int, num_heads: int, num_layers: int, ffn_dim: int,
                 kernel_size: int = DEFAULT_KERNEL, dropout: float = 0.1, subsampling: int = 4,
                 subsampling_channels: int = 64, residual_init_scale: float = 1.0) -> None:
        super().__init__()
        from torchaudio.models import Conformer

        from speechattn.nn.subsampling import Subsampling

        self.config = {"input_dim": input_dim, "d_model": d_model, "num_heads": num_heads, "num_layers": num_layers,
                       "ffn_dim": ffn_dim, "kernel_size": kernel_size, "dropout": dropout,
                       "subsampling": subsampling, "subsampling_channels": subsampling_channels}
        self.input_dim = input_dim
        self.d_model = d_model
        self.subsampling = Subsampling(input_dim, d_model, subsampling, subsampling_channels)
        self.input_dropout = nn.Dropout(dropout)
        self.conformer = Conformer(input_dim=d_model, num_heads=num_heads, ffn_dim=ffn_dim, num_layers=num_layers,
                                   depthwise_conv_kernel_size=kernel_size, dropout=dropout)
        self.norm = nn.LayerNorm(d_model)
        if residual_init_scale != 1.0:
            # As our encoder's residual_init_scale: the last Linear / pointwise Conv1d of every
            # residual branch (both feed-forwards, the attention, the convolution module).
            with torch.no_grad():
                for layer in self.conformer.conformer_layers:
                    for weight in (layer.ffn1.sequential[4].weight, layer.ffn2.sequential[4].weight,
                                   layer.self_attn.out_proj.weight, layer.conv_module.sequential[-2].weight):
                        weight.mul_(residual_init_scale)

    @property
    def output_dim(self) -> int:
        return self.d_model

    def output_lengths(self, lengths: Tensor) -> Tensor:
        return self.subsampling.output_lengths(lengths)

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if lengths is None:
            lengths = torch.full((features.shape[0],), features.shape[1], dtype=torch.long, device=features.device)
        x, out_lengths = self.subsampling(features, lengths)
        assert out_lengths is not None
        x = self.input_dropout(x)
        longest = int(out_lengths.max()) if out_lengths.numel() else 0
        if longest == 0:
            return x, out_lengths
        # torchaudio's key-padding mask is (B, max(lengths)): run on exactly that many frames.
        # Rows with no frame get one (all-masked attention gives NaN); they are zeroed below.
        y, _ = self.conformer(x[:, :longest], out_lengths.clamp(min=1))
        y = self.norm(y)
        valid = frame_mask(out_lengths, longest, y.device)
        y = y * valid[..., None].to(y.dtype)
        if longest < x.shape[1]:
            y = nn.functional.pad(y, (0, 0, 0, x.shape[1] - longest))
        return y, out_lengths


def conformer_encoder(recipe: Any, ffn_dim: int, kernel_size: int, init_scale: float = 1.0) -> ConformerCTCEncoder:
    enc = recipe.model.encoder
    return ConformerCTCEncoder(
        input_dim=recipe.features.feature_dim, d_model=enc.d_model, num_heads=enc.num_heads,
        num_layers=enc.num_layers, ffn_dim=ffn_dim, kernel_size=kernel_size, dropout=enc.dropout,
        subsampling=enc.subsampling, subsampling_channels=enc.subsampling_channels, residual_init_scale=init_scale)


def truncated_encoder(recipe: Any) -> nn.Module:
    """The recipe's encoder, built exactly as the task builds it."""
    from speechattn.recipes.builders import build_ctc_model

    return build_ctc_model(recipe, 2).encoder


def conformer_config(recipe: Any, ffn_dim: int | None, kernel_size: int | None) -> dict[str, Any]:
    """The Conformer's ffn_dim (given, or the multiple of 8 whose encoder parameter count is
    closest to ours: the count is linear in ffn_dim) and kernel size, with both counts."""
    kernel_size = kernel_size or recipe.model.encoder.conv_kernel or DEFAULT_KERNEL
    ours = count_params(truncated_encoder(recipe))
    chosen = "given"
    if ffn_dim is None:
        p8 = count_params(conformer_encoder(recipe, 8, kernel_size))
        p16 = count_params(conformer_encoder(recipe, 16, kernel_size))
        per_unit = (p16 - p8) / 8
        ffn_dim = max(8, 8 * round((8 + (ours - p8) / per_unit) / 8))
        chosen = "matched"
    theirs = count_params(conformer_encoder(recipe, ffn_dim, kernel_size))
    return {"ffn_dim": ffn_dim, "kernel_size": kernel_size, "chosen": chosen, "conformer_params": theirs,
            "truncated_params": ours, "param_ratio": theirs / ours}


# --------------------------------------------------------------------------- recipe

def overrides_for(args: argparse.Namespace, model: str | None = None) -> list[str]:
    """Recipe overrides: smoke subset, then --set (every model), then --conformer-set (Conformer
    only), then the budget (--minutes, when given) and --threads."""
    own = list(args.conformer_set) if model == "conformer" else []
    budget = [] if args.minutes is None else [f"train.max_minutes={args.minutes}"]
    return [*(SMOKE_OVERRIDES if args.smoke else []), *args.set, *own, *budget, f"train.threads={args.threads}"]


def load(args: argparse.Namespace, model: str | None = None) -> Any:  # -> CTCRecipe
    from speechattn.recipes import load_task_recipe

    recipe = load_task_recipe(args.recipe, overrides_for(args, model))
    if recipe.task != "ctc":
        raise SystemExit(f"{args.recipe}: a {recipe.task!r} recipe, not a ctc one")
    return recipe


def _cache_files() -> set[str]:
    from speechattn.data.featcache import cache_entries

    return {entry.path.name for entry in cache_entries()}


# --------------------------------------------------------------------------- training worker

def train_worker(model: str, args: argparse.Namespace, started: float) -> dict[str, Any]:
    """Train one model in this (fresh) process through ``train_recipe``, as ``speechattn train``.

    The encoder is put in by replacing ``speechattn.tasks.ctc.CTCTask`` during the call with a
    subclass that passes it (and only times setup and dev evaluations); for "truncated" it passes
    ``encoder=None``, i.e. the recipe's model, exactly as the command line does.
    """
    import speechattn.tasks.ctc as ctc
    from speechattn.tasks import train_recipe

    run_dir = Path(args.out_dir) / model
    recipe = load(args, model)
    conf = conformer_config(recipe, args.conformer_ffn, args.conformer_kernel) if model == "conformer" else None
    if conf is not None:
        conf["init_scale"] = args.conformer_init_scale
        (run_dir / "conformer.json").write_text(json.dumps(conf, indent=2) + "\n")
    created: list[Any] = []

    class BenchCTCTask(ctc.CTCTask):  # type: ignore[misc,valid-type]
        def __init__(self, recipe: Any, data_root: Any = None, encoder: nn.Module | None = None,
                     progress: bool | None = None) -> None:
            start = time.perf_counter()
            if conf is not None:
                assert encoder is None  # train_recipe has just seeded the RNG with train.seed
                encoder = conformer_encoder(recipe, conf["ffn_dim"], conf["kernel_size"], args.conformer_init_scale)
            super().__init__(recipe, data_root=data_root, encoder=encoder, progress=progress)
            self.bench_setup_s = time.perf_counter() - start
            self.bench_eval_s = 0.0
            self.bench_evals = 0
            created.append(self)
            print(f"{model}: encoder {count_params(self.model.encoder):,} parameters, model "
                  f"{count_params(self.model):,}; {len(self.train_feats)} train / {len(self.dev_feats)} dev "
                  f"utterances; setup {self.bench_setup_s:.1f} s", flush=True)

        def evaluate(self) -> dict[str, float]:
            start = time.perf_counter()
            try:
                return super().evaluate()
            finally:
                self.bench_eval_s += time.perf_counter() - start
                self.bench_evals += 1

    cache_before = _cache_files()
    original = ctc.CTCTask
    ctc.CTCTask = BenchCTCTask  # type: ignore[misc]
    try:
        summary = train_recipe(args.recipe, overrides_for(args, model), run_dir=run_dir, data_root=args.data_root,
                               progress=False)
    finally:
        ctc.CTCTask = original  # type: ignore[misc]
    if not created:
        raise RuntimeError("train_recipe did not build its task as speechattn.tasks.ctc.CTCTask; "
                           "the encoder could not be put in (update this benchmark)")
    task = created[0]
    new_cache = len(_cache_files() - cache_before)
    steps = summary.get("steps") or 0
    train_s = 60.0 * (summary.get("minutes") or 0.0)
    return {
        "model": model,
        "params": count_params(task.model.encoder),
        "model_params": count_params(task.model),
        **summary_fields(summary),
        "steps": steps,
        "stopped": summary.get("stopped"),
        "setup_s": task.bench_setup_s,
        "eval_s": task.bench_eval_s,
        "evals": task.bench_evals,
        "s_per_step": (train_s - task.bench_eval_s) / steps if steps else None,
        "worker_s": time.perf_counter() - started,
        "feature_cache_new_files": new_cache,
        "train_utterances": len(task.train_feats),
        "dev_utterances": len(task.dev_feats),
        "vocab": len(task.tokenizer),
        "conformer": conf,
        "run_dir": str(run_dir),
    }


def summary_fields(summary: dict[str, Any]) -> dict[str, Any]:
    """What a run's metrics.json (``train_recipe``'s summary) gives a results row: the metric
    (per or cer), its dev value as ``error_rate``, the dev scores, epochs, steps, minutes."""
    dev = summary.get("dev", {})
    return {"metric": summary.get("metric"), "error_rate": dev.get(summary.get("metric", "per")), "dev": dev,
            "best_epoch": summary.get("best_epoch"), "epochs": summary.get("epochs"),
            "steps": summary.get("steps"), "minutes": summary.get("minutes"), "summary": summary}


def run_train_worker(model: str, args: argparse.Namespace, started: float) -> None:
    """Entry of ``--worker train MODEL``: everything the training prints goes to
    ``RUN_DIR/train.log``; the one JSON line for the parent goes to the real stdout."""
    run_dir = Path(args.out_dir) / model
    if run_dir.exists():
        if (run_dir / LOG_NAME).exists() or not any(run_dir.iterdir()):
            shutil.rmtree(run_dir)  # an earlier run of this benchmark: start afresh
        else:
            sys.exit(f"{run_dir} exists and was not written by this benchmark; choose another --out-dir")
    run_dir.mkdir(parents=True)
    logged_worker(run_dir / LOG_NAME, lambda: train_worker(model, args, started))


# --------------------------------------------------------------------------- decoding speed

def load_trained(run_dir: Path) -> tuple[Any, nn.Module, Any]:
    """(recipe, CTCModel in eval mode, tokenizer) of a run written by the training worker,
    rebuilt the way it was trained (the Conformer from its conformer.json)."""
    from speechattn.inference import load_run
    from speechattn.recipes.builders import build_ctc_model
    from speechattn.text import tokenizer_from_dict

    recipe, weights, info = load_run(run_dir, "ctc", "CTC model")
    tokenizer = tokenizer_from_dict(info["tokenizer"])
    encoder = None
    conf_path = run_dir / "conformer.json"
    if conf_path.exists():
        conf = json.loads(conf_path.read_text())
        encoder = conformer_encoder(recipe, conf["ffn_dim"], conf["kernel_size"])
    model = build_ctc_model(recipe, len(tokenizer), encoder)
    model.load_state_dict(weights)
    return recipe, model.eval(), tokenizer


def dev_set(recipe: Any, tokenizer: Any) -> tuple[list[Tensor], list[list[int]]]:
    """The dev features and targets exactly as ``CTCTask`` builds them (same subset, same
    tokenization, same cached features)."""
    from speechattn.audio import FeatureExtractor
    from speechattn.data.featcache import extract_features
    from speechattn.data.splits import resolve_manifest
    from speechattn.utils.paths import data_root
    from speechattn.tasks.ctc import _subset, encoding_tokenizer, manifest_texts
    from speechattn.text import encode_corpus

    cfg = recipe.data
    root = data_root(cfg.root)
    manifest = _subset(resolve_manifest(cfg.dev, root), cfg.max_dev_utterances)
    encoded = encode_corpus(encoding_tokenizer(tokenizer, recipe.data, root), manifest_texts(manifest, "dev"))
    manifest = manifest.filter(lambda u: u.id in encoded.ids)
    fs = extract_features(manifest, FeatureExtractor(recipe.features), desc="dev features", progress=False)
    return fs.feats, [encoded.ids[u.id] for u in fs.manifest]


def measure_speed(models: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Whole-dev offline decoding time of every model (interleaved, median), plus PER checks."""

    from speechattn.data.batching import length_batches
    from speechattn.decoding.ctc import decode_log_probs
    from speechattn.metrics.errors import score_transcripts

    torch.set_num_threads(args.threads)
    nets: dict[str, nn.Module] = {}
    recipes: dict[str, Any] = {}
    tokenizer = None
    for name in models:
        recipes[name], nets[name], tok = load_trained(Path(args.out_dir) / name)
        if tokenizer is None:
            tokenizer = tok
        elif tok.to_dict() != tokenizer.to_dict():
            raise ValueError(f"{name}: another tokenizer than {models[0]}'s")
    first = recipes[models[0]]
    for name in models[1:]:
        if recipes[name].data != first.data or recipes[name].features != first.features:
            print(f"warning: {name}'s data/features config differs from {models[0]}'s; "
                  f"decoding {models[0]}'s dev set", file=sys.stderr)
    feats, targets = dev_set(first, tokenizer)
    fc = first.features
    audio_s = sum(((f.shape[0] - 1) * fc.frame_shift_ms + fc.frame_length_ms) / 1000.0 for f in feats)
    batches = {name: list(length_batches(feats, recipes[name].decode.batch_frames)) for name in models}

    def decode(name: str, beam: int = 1, subset: list[int] | None = None) -> list[Any]:
        net, recipe = nets[name], recipes[name]
        out: list[Any] = [None] * len(feats)
        chosen = batches[name] if subset is None else [batches[name][i] for i in subset]
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16,
                                                    enabled=recipe.train.precision == "bf16"):
            for idx, x, lengths in chosen:
                logits, out_lengths = net(x, lengths)
                for j, hyp in zip(idx, decode_log_probs(logits.float().log_softmax(-1), out_lengths, beam)):
                    out[j] = hyp
        return out

    for name in models:  # warm-up: first-call allocations and oneDNN kernel choice, shortest and longest
        n = len(batches[name])
        decode(name, subset=sorted({0, n // 2, n - 1}))
    load_before = other_cpu_load()
    times: dict[str, list[float]] = {name: [] for name in models}
    hyps: dict[str, list[Any]] = {}
    meter = OtherLoad()
    for r in range(args.repeats):
        for k in range(len(models)):
            name = models[(r + k) % len(models)]
            start = time.perf_counter()
            hyps[name] = decode(name)
            times[name].append(time.perf_counter() - start)
            print(f"  {name}: {times[name][-1]:.2f} s", file=sys.stderr, flush=True)
    other = meter.cores()
    results: dict[str, Any] = {}
    for name in models:
        scores = score_transcripts(tokenizer, targets, [h.tokens for h in hyps[name]])
        seconds = statistics.median(times[name])
        results[name] = {"params": count_params(nets[name].encoder), "seconds": seconds, "all_seconds": times[name],
                         "rtf": seconds / audio_s, "greedy": scores, "batches": len(batches[name]),
                         "precision": recipes[name].train.precision}
    if args.beam:
        for name in models:
            start = time.perf_counter()
            beam_hyps = decode(name, beam=args.beam)
            results[name]["beam"] = {**score_transcripts(tokenizer, targets, [h.tokens for h in beam_hyps]),
                                     "beam": args.beam, "seconds": time.perf_counter() - start}
    return {"models": results, "dev_utterances": len(feats), "audio_seconds": audio_s, "repeats": args.repeats,
            "threads": args.threads, "metric": "cer" if tokenizer.kind == "chars" else "per",
            "other_cpu_load_before": load_before, "other_cpu_load_during": other,
            "other_cpu_load_after": other_cpu_load()}


# --------------------------------------------------------------------------- driver

def _or_dash(value: Any) -> Any:
    return "-" if value is None else value


def _percent(value: Any) -> Any:
    """An error rate (a fraction) as a percentage; other values (an error message) unchanged."""
    return "-" if value is None else f"{100 * value:.2f}" if isinstance(value, (int, float)) else value


def table_rows(train: dict[str, dict], speed: dict[str, Any], models: list[str]) -> list[dict[str, Any]]:
    rows = []
    sm = speed.get("models", {})
    metric = speed.get("metric", "per")
    ref_s = sm.get("conformer", {}).get("seconds")
    for name in models:
        t, s = train.get(name, {}), sm.get(name, {})
        params = t.get("params") or s.get("params")
        rows.append({
            "model": name + (f" (ffn {t['conformer']['ffn_dim']}, kernel {t['conformer']['kernel_size']})"
                             if t.get("conformer") else ""),
            "params": "-" if not params else f"{params / 1e6:.2f} M",
            "error_rate": _percent(t.get("error_rate", t.get("error"))),
            "per_check": _percent(s.get("greedy", {}).get(metric)),
            "beam": _percent(s.get("beam", {}).get(metric)),
            "wer": _percent(t.get("dev", {}).get("wer")),
            "wer_beam": _percent(s.get("beam", {}).get("wer")),
            "epochs": f"{t.get('best_epoch', '-')} / {t.get('epochs', '-')}",
            "steps": t.get("steps", "-"),
            "minutes": _or_dash(t.get("minutes")),
            "s_step": _or_dash(t.get("s_per_step")),
            "wall": "-" if t.get("wall_s") is None else t["wall_s"] / 60,
            "decode": _or_dash(s.get("seconds")),
            "rtf": _or_dash(s.get("rtf")),
            "vs": "-" if not s.get("seconds") or not ref_s else f"{ref_s / s['seconds']:.2f}x",
        })
    return rows


def default_json(out_dir: str | Path, models: list[str]) -> Path:
    """``OUT_DIR/asr_baseline.json`` for both models, ``OUT_DIR/asr_baseline_<model>.json`` for one."""
    name = "asr_baseline" if len(models) != 1 else f"asr_baseline_{models[0]}"
    return Path(out_dir) / f"{name}.json"


def main() -> None:
    started = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default=str(DEFAULT_RECIPE))
    parser.add_argument("--minutes", type=float, default=None,
                        help=f"training budget per model (train.max_minutes; default: the recipe's, "
                             f"{SMOKE_MINUTES} with --smoke)")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="recipe override for every model (repeatable)")
    parser.add_argument("--conformer-set", action="append", default=[], metavar="KEY=VALUE",
                        help="recipe override for the Conformer only, e.g. --conformer-set train.lr=0.001")
    parser.add_argument("--conformer-ffn", type=int, default=None,
                        help="the Conformer's ffn_dim (default: matched to our encoder's parameter count)")
    parser.add_argument("--conformer-kernel", type=int, default=None,
                        help=f"the Conformer's depthwise kernel size (default: the recipe's conv_kernel, "
                             f"else {DEFAULT_KERNEL})")
    parser.add_argument("--conformer-init-scale", type=float, default=1.0,
                        help="factor on the initial weights of the last Linear / pointwise Conv1d of the "
                             "Conformer's residual branches, as our model.encoder.residual_init_scale "
                             "(default 1.0: torchaudio's initialisation)")
    parser.add_argument("--data-root", default=None,
                        help="data root (default: the recipe's data.root, else $SPEECHATTN_DATA, else data/)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for training and decoding")
    parser.add_argument("--out-dir", default=None, help=f"run directories and results (default "
                                                        f"{DEFAULT_OUT.relative_to(REPO)}, or ..._smoke)")
    parser.add_argument("--json", default=None, help="results file (default OUT_DIR/asr_baseline.json, or "
                                                     "OUT_DIR/asr_baseline_MODEL.json for one model)")
    parser.add_argument("--beam", type=int, default=None, help="also decode dev by prefix beam search (e.g. 4)")
    parser.add_argument("--repeats", type=int, default=3, help="timed whole-dev decodes per model (median)")
    parser.add_argument("--cold-cache", action="store_true",
                        help="extract features from scratch (SPEECHATTN_CACHE=OUT_DIR/feature_cache, emptied "
                             "first): the first model's wall time is then that of a first run")
    parser.add_argument("--smoke", action="store_true",
                        help=f"quick end-to-end check: {SMOKE_MINUTES} min per model on a tiny subset "
                             f"({' '.join(SMOKE_OVERRIDES)})")
    parser.add_argument("--skip-train", action="store_true",
                        help="only decode (uses the runs in OUT_DIR, their metrics.json and, when they match, "
                             "the asr_baseline_<model>.json of the runs that trained them)")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not 0.0 < args.conformer_init_scale < float("inf"):
        parser.error(f"--conformer-init-scale must be a positive number, got {args.conformer_init_scale}")
    if args.minutes is None and args.smoke:
        args.minutes = SMOKE_MINUTES
    if args.out_dir is None:
        args.out_dir = str(DEFAULT_OUT.with_name(DEFAULT_OUT.name + "_smoke") if args.smoke else DEFAULT_OUT)
    models = [m for m in MODELS if m in args.models]  # fixed order, no duplicates

    if args.worker:
        if args.worker[0] == "train":
            run_train_worker(args.worker[1], args, started)
        else:
            print(json.dumps(measure_speed(args.worker[1:], args)))
        return

    from speechattn.recipes.schema import ConfigError

    try:
        recipe = load(args)  # fails fast on a bad recipe or override
        conf = conformer_config(load(args, "conformer"), args.conformer_ffn, args.conformer_kernel)
    except (ConfigError, ValueError) as exc:
        parser.exit(2, f"{exc}\n")
    print(f"encoder parameters: truncated {conf['truncated_params']:,}, conformer {conf['conformer_params']:,} "
          f"(ffn_dim {conf['ffn_dim']} {conf['chosen']}, kernel {conf['kernel_size']}; "
          f"ratio {conf['param_ratio']:.3f})", file=sys.stderr, flush=True)
    Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    if args.cold_cache and not args.skip_train:
        cache = Path(args.out_dir) / "feature_cache"
        shutil.rmtree(cache, ignore_errors=True)
        os.environ["SPEECHATTN_CACHE"] = str(cache)  # inherited by the workers
    common = worker_options(args, ["recipe", "threads", "out_dir", "repeats", "minutes", "conformer_ffn",
                                   "conformer_kernel", "conformer_init_scale", "beam", "set", "conformer_set",
                                   "data_root", "smoke"])

    budget_min = recipe.train.max_minutes
    train: dict[str, dict] = {}
    for name in models:
        run_dir = Path(args.out_dir) / name
        if args.skip_train:
            metrics, record = run_dir / "metrics.json", default_json(args.out_dir, [name])
            if metrics.exists():
                fields = summary_fields(json.loads(metrics.read_text()))
                entry = json.loads(record.read_text()).get("train", {}).get(name) if record.exists() else None
                if isinstance(entry, dict) and (entry.get("steps"), entry.get("error_rate")) == (
                        fields["steps"], fields["error_rate"]):
                    # the `--models NAME` run that wrote this run directory: s/step and process time too
                    train[name] = {**entry, "from": str(record)}
                    continue
                train[name] = {"model": name, **fields, "from": str(metrics)}
                if (run_dir / "conformer.json").exists():
                    train[name]["conformer"] = json.loads((run_dir / "conformer.json").read_text())
            continue
        print(f"training {name} for {budget_min if budget_min is not None else 'unlimited'} min (+ setup and final "
              f"evaluation); log: {run_dir / LOG_NAME}", file=sys.stderr, flush=True)
        limit = 60.0 * (2 * (budget_min or 60) + 30)  # budget + features on a cold cache + evaluations
        start = time.perf_counter()
        res = run_worker(__file__, ["train", name], common, timeout=limit)
        res.setdefault("model", name)
        res["wall_s"] = time.perf_counter() - start  # the whole process, python start-up included
        train[name] = res
        shown = {k: res.get(k) for k in ("error_rate", "epochs", "steps", "minutes", "setup_s", "wall_s", "error")
                 if k in res}
        print(f"  {name}: {shown}", file=sys.stderr, flush=True)

    trained = [m for m in models if (Path(args.out_dir) / m / "model.safetensors").exists()]
    speed: dict[str, Any] = {"error": "no trained model"}
    if trained:
        print(f"timing whole-dev decoding of {', '.join(trained)} ...", file=sys.stderr, flush=True)
        speed = run_worker(__file__, ["speed", *trained], common, timeout=3600)
    if "error" in speed:
        print(f"  decoding: {speed['error']}", file=sys.stderr)

    # per or cer: from the decoding run, else from the trainings (their metrics.json)
    metric = speed.get("metric") or next((t["metric"] for t in train.values() if t.get("metric")), "per")
    tag = metric.upper()
    print(f"\nCTC baseline: {args.recipe} {' '.join(overrides_for(args))}\n"
          f"budget {budget_min} min per model{' (smoke: tiny subset)' if args.smoke else ''}, {args.threads} threads, "
          f"precision {recipe.train.precision}, batch {recipe.train.batch_size}, seed {recipe.train.seed}\n")
    beam_header = f"dev {tag} % beam {args.beam}" if args.beam else "beam"
    trained_decode = "greedy" if recipe.decode.beam <= 1 else f"beam {recipe.decode.beam}"
    columns = [("model", "model"), ("params", "encoder params"),
               ("error_rate", f"dev {tag} % ({trained_decode}, best)"),
               ("per_check", f"dev {tag} % re-decoded (greedy)"), ("beam", beam_header), ("epochs", "best / epochs"),
               ("steps", "steps"), ("minutes", "train min"), ("s_step", "s/step"), ("wall", "process min"),
               ("decode", "decode dev s"), ("rtf", "RTF"), ("vs", "speed vs Conformer")]
    if metric == "cer":  # character tokens spell words: word error rates too
        at = [c[0] for c in columns].index("epochs")
        columns[at:at] = [("wer", f"dev WER % ({trained_decode}, best)"), ("wer_beam", f"dev WER % beam {args.beam}")]
    if not args.beam:
        columns = [c for c in columns if c[0] not in ("beam", "wer_beam")]
    print_table(table_rows(train, speed, models), columns)
    ours, theirs = train.get("truncated", {}).get("error_rate"), train.get("conformer", {}).get("error_rate")
    ratio = ours / theirs if isinstance(ours, (int, float)) and isinstance(theirs, (int, float)) and theirs else None
    print(f"\n{tag} ratio truncated / conformer: {'-' if ratio is None else f'{ratio:.3f}'}")
    print(f"encoder parameters: truncated {conf['truncated_params']:,}, conformer {conf['conformer_params']:,} "
          f"(ffn_dim {conf['ffn_dim']}, kernel {conf['kernel_size']}, ratio {conf['param_ratio']:.3f})")
    if "error" not in speed:
        print(f"decode: {speed['dev_utterances']} dev utterances, {speed['audio_seconds'] / 60:.1f} min of audio; "
              f"median of {speed['repeats']} whole-dev decodes (precomputed features, forward + log_softmax + "
              f"greedy, {recipe.train.precision}); RTF = decode seconds / audio seconds; "
              f"speed vs Conformer > 1: faster.")
        loads = [v for v in (speed.get("other_cpu_load_before"), speed.get("other_cpu_load_during"),
                             speed.get("other_cpu_load_after")) if v is not None]
        if loads and max(loads) > 0.25:
            print(f"WARNING: other processes kept up to {max(loads):.2f} cores busy while timing; "
                  f"the speed numbers are not reliable.")
    t = train.get("truncated", {})
    if t.get("wall_s") is not None:
        same = not args.set and args.minutes is None and not args.smoke
        print(f"truncated = `speechattn train {args.recipe}`{'' if same else ' with the overrides above'}: "
              f"{t['wall_s'] / 60:.1f} min for the whole process (setup {t.get('setup_s', 0) / 60:.1f} min with "
              f"{t.get('feature_cache_new_files', '?')} new feature-cache files, training + dev evaluations "
              f"{t.get('minutes') or 0:.1f} min)")
    payload = {
        "environment": environment(),
        "args": {**vars(args), "models": models},
        "recipe_overrides": overrides_for(args),
        "conformer_overrides": list(args.conformer_set),
        "conformer": conf,
        "precision": recipe.train.precision,
        "metric": metric,
        "error_rate_ratio": ratio,
        "train": train,
        "speed": speed,
    }
    path = write_json("asr_baseline", payload, args.json or str(default_json(args.out_dir, models)))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
