"""Transcribe a 1-hour file with ``speechattn transcribe``: wall time, real-time factor,
whole-process peak RSS, and the error rate against the concatenated references.

The long file: the run's dev utterances (``data.dev`` of ``RUN_DIR/config.yaml``, or ``--dev``)
concatenated in manifest order, cycled, whole utterances only, until ``--hours`` is reached,
written once as 16-bit PCM WAV at the model's rate. Utterances whose transcript the run's
tokenizer cannot encode (a word missing from the lexicon...) or whose audio cannot be read are
left out. The reference is the token sequence of the utterances in that order (``*.ref.json``
next to the WAV, with each utterance's start and end in the file).

The measurement runs the actual command line in a fresh process::

    python -c WRAPPER ... transcribe RUN_DIR FILE --format json -o OUTDIR --no-progress

where WRAPPER runs ``speechattn.cli.main`` in-process (as ``python -m speechattn.cli.main`` does)
and, when it exits, writes the process's peak RSS (``VmHWM`` from /proc/self/status: the whole
process, torch import and model included; not ``ru_maxrss``, which on Linux starts from the
parent's RSS at fork). Wall time is the whole process (start-up, imports, model loading,
streaming the file, decoding, writing), measured by the parent; RTF = wall / audio seconds.
The command sets no thread count: torch uses its default (reported).

Scoring (:class:`speechattn.metrics.errors.ErrorRate`): one edit-distance alignment of the
whole transcript's tokens to the whole concatenated reference; and, as a cross-check, per
utterance: each hypothesis token (it carries times) goes to the utterance whose span in the file
holds its midpoint, errors summed over utterances. PER for phone models; CER (word boundaries
excluded) and WER for character models, as ``speechattn evaluate`` scores.

Usage::

    python benchmarks/transcribe_long.py runs/asr                 # 1 hour
    python benchmarks/transcribe_long.py runs/asr --hours 0.25 --beam 4
    python benchmarks/transcribe_long.py --smoke                  # tiny run, 72 s file: checks the script

Results: a Markdown table on stdout and JSON in ``benchmarks/out/transcribe_long.json``
(``--json`` to change; ``transcribe_long_smoke.json`` with ``--smoke``).
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import OUT_DIR, environment, print_table, run_cli, write_json, write_long_wav  # noqa: E402
from _common import smoke_run as common_smoke_run  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
#: --smoke: a tiny model trained for a few seconds on a tiny subset.
SMOKE_TRAIN = [
    "model.encoder.d_model=32", "model.encoder.num_heads=2", "model.encoder.num_layers=2",
    "model.encoder.ffn_dim=64", "data.max_train_utterances=100", "data.max_dev_utterances=30",
    "data.speed_perturb=[1.0]", "train.max_minutes=0.3", "train.eval_every=1",
]
SMOKE_HOURS = 0.02


# --------------------------------------------------------------------------- the long file

def run_tokenizer(run_dir: Path, recipe: Any, root: Path) -> Any:
    """The run's tokenizer (``model.json``), able to encode the references."""
    from speechattn.tasks.ctc import encoding_tokenizer
    from speechattn.text import tokenizer_from_dict

    tokenizer = tokenizer_from_dict(json.loads((run_dir / "model.json").read_text())["tokenizer"])
    return encoding_tokenizer(tokenizer, recipe.data, root)


def long_file(dev: str, root: Path, tokenizer: Any, rate: int, hours: float, out: Path) -> tuple[Path, dict[str, Any]]:
    """The dev utterances concatenated (cycled, whole utterances) to at least ``hours``, as
    PCM-16 WAV at ``rate``, and its reference (made once per dev set, tokenizer and length)."""
    from speechattn.audio import AudioError, load_audio
    from speechattn.data.splits import resolve_manifest
    from speechattn.text import encode_corpus
    from speechattn.utils.files import atomic_write_text

    manifest = resolve_manifest(dev, root)
    key = hashlib.sha1(json.dumps([str(root), dev, rate, tokenizer.to_dict(), [u.id for u in manifest]],
                                  sort_keys=True).encode()).hexdigest()[:10]
    path = out / f"long_{hours:g}h_{key}.wav"
    ref_path = path.with_suffix(".ref.json")
    if path.exists() and ref_path.exists():
        return path, json.loads(ref_path.read_text())
    texts = {u.id: u.text for u in manifest if u.text}
    encoded = encode_corpus(tokenizer, texts)
    items = [u for u in manifest if u.id in encoded.ids]
    if not items:
        raise ValueError(f"{dev}: no utterance the run's tokenizer can encode")
    utterances: list[dict[str, Any]] = []
    unreadable: set[str] = set()

    def waves() -> Iterator[np.ndarray]:
        """The readable utterances, cycled, each noted in ``utterances`` as it is taken."""
        start = i = 0
        while True:
            if i and i % len(items) == 0 and len(unreadable) == len(items):
                raise ValueError(f"{dev}: no readable audio")
            utt = items[i % len(items)]
            i += 1
            if utt.id in unreadable:
                continue
            try:
                wave = load_audio(utt.path, rate)[0].numpy()
            except AudioError:
                unreadable.add(utt.id)
                continue
            utterances.append({"id": utt.id, "start": start / rate, "end": (start + wave.shape[0]) / rate,
                               "ref": tokenizer.decode(encoded.ids[utt.id])})
            start += wave.shape[0]
            yield wave

    written = write_long_wav(path, rate, int(hours * 3600 * rate), waves(), cut=False)
    reference = {"dev": dev, "root": str(root), "rate": rate, "seconds": written / rate,
                 "distinct_utterances": len(items) - len(unreadable),
                 "left_out": {"not_encodable": len(encoded.skipped), "unreadable": len(unreadable)},
                 "utterances": utterances}
    atomic_write_text(ref_path, json.dumps(reference) + "\n")
    return path, reference


# --------------------------------------------------------------------------- scoring

def _units(text: str, chars: bool) -> list[str]:
    return list(text.replace(" ", "")) if chars else text.split()


def score(record: dict[str, Any], reference: dict[str, Any], tokenizer: Any) -> dict[str, Any]:
    """Error rates of the transcript ``record`` (the CLI's JSON) against the reference.

    ``<metric>``: one edit-distance alignment of the whole hypothesis token sequence to the whole
    concatenated reference. ``<metric>_by_utterance``: each hypothesis token (and word) given to
    the utterance whose span in the file holds its midpoint, errors summed over utterances
    (tokens emitted across a boundary count as errors there).
    """
    from speechattn.metrics.errors import ErrorRate

    utts = reference["utterances"]
    starts = [u["start"] for u in utts]
    chars = bool(tokenizer.predicts_words)
    name = "cer" if chars else "per"

    def units(tokens: list[str]) -> list[str]:
        return [c for t in tokens for c in (t if chars else [t])]

    def bucket(found: list[dict[str, Any]], key: str) -> list[list[str]]:
        out: list[list[str]] = [[] for _ in utts]
        for u in found:
            mid = 0.5 * (float(u["start"]) + float(u["end"]))
            out[min(max(bisect.bisect_right(starts, mid) - 1, 0), len(utts) - 1)].append(u[key])
        return out

    hyp = [t["token"] for t in record.get("tokens", [])]
    ref_units = [x for u in utts for x in _units(u["ref"], chars)]
    start = time.perf_counter()
    whole = ErrorRate().update(ref_units, units(hyp))
    out: dict[str, Any] = {"metric": name, **whole.as_dict(name), "ref_tokens": len(ref_units),
                           "hyp_tokens": len(units(hyp)), "align_s": time.perf_counter() - start}
    by_utt = ErrorRate()
    for u, found in zip(utts, bucket(record.get("tokens", []), "token")):
        by_utt.update(_units(u["ref"], chars), units(found))
    out[f"{name}_by_utterance"] = by_utt.rate
    if chars:
        words = [w["word"] for w in record.get("words", [])]
        out["wer"] = ErrorRate().update([w for u in utts for w in u["ref"].split()], words).rate
        by_utt = ErrorRate()
        for u, found in zip(utts, bucket(record.get("words", []), "word")):
            by_utt.update(u["ref"].split(), found)
        out["wer_by_utterance"] = by_utt.rate
    return out


# --------------------------------------------------------------------------- the command

def run_transcribe(run_dir: Path, wav: Path, out: Path, fmt: str, beam: int | None) -> dict[str, Any]:
    """``speechattn transcribe`` in a fresh process: wall and CPU seconds, peak RSS (VmHWM)."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    args = ["transcribe", str(run_dir), str(wav), "--format", fmt, "-o", str(out / "transcripts"), "--no-progress"]
    if beam is not None:
        args += ["--beam", str(beam)]
    proc = run_cli(args, out / "process.json")
    result = {"wall_s": proc.wall_s, "cpu_s": proc.cpu_s, "in_process_s": proc.stats.get("seconds"),
              "peak_rss_mb": proc.stats.get("peak_rss_mb"), "torch_threads": proc.stats.get("torch_threads"),
              "exit_code": proc.returncode, "command": " ".join(["python -m speechattn.cli.main", *proc.args]),
              "stderr": proc.stderr.strip()[-2000:]}
    if proc.returncode != 0:
        result["error"] = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
    return result


def parse_output(path: Path, fmt: str) -> dict[str, Any]:
    """The CLI's output file as a JSON-like record (``tokens`` / ``words`` with times)."""
    text = path.read_text(encoding="utf-8")
    if fmt == "json":
        return json.loads(text)
    units = []  # ctm: NAME 1 START DURATION TOKEN
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 5:
            units.append({"token": parts[4], "word": parts[4], "start": float(parts[2]),
                          "end": float(parts[2]) + float(parts[3])})
    return {"tokens": units, "words": units, "text": " ".join(u["token"] for u in units)}


# --------------------------------------------------------------------------- driver

def smoke_run(out: Path) -> Path:
    """A tiny CTC model for the smoke check (trained again when the recipe changes)."""
    return common_smoke_run(REPO / "recipes" / "asr.yaml", SMOKE_TRAIN, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", nargs="?", type=Path, help="a trained CTC run (recipes/asr.yaml)")
    parser.add_argument("--hours", type=float, default=None, help=f"length of the file (default 1; {SMOKE_HOURS} "
                                                                  f"with --smoke)")
    parser.add_argument("--format", dest="fmt", choices=["json", "ctm"], default="json",
                        help="the command's output format (both carry token times)")
    parser.add_argument("--beam", type=int, default=None, help="--beam of the command (default: the recipe's)")
    parser.add_argument("--dev", default=None, help="transcribed data to concatenate (default: the run's data.dev)")
    parser.add_argument("--data-root", default=None, help="data root (default: the run's, else $SPEECHATTN_DATA)")
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR / "transcribe_long",
                        help="long file, transcripts, smoke run")
    parser.add_argument("--json", default=None, help="results file (default benchmarks/out/transcribe_long.json)")
    parser.add_argument("--smoke", action="store_true", help=f"tiny run, a {SMOKE_HOURS * 3600:g} s file")
    args = parser.parse_args()
    if args.hours is None:
        args.hours = SMOKE_HOURS if args.smoke else 1.0
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if args.run_dir is None:
        if not args.smoke:
            parser.error("give RUN_DIR (a trained recipes/asr.yaml run) or --smoke")
        args.run_dir = smoke_run(args.out_dir)

    from speechattn.inference import load_run_recipe
    from speechattn.utils.paths import data_root

    recipe = load_run_recipe(args.run_dir)
    if recipe.task != "ctc":
        parser.error(f"{args.run_dir}: a {recipe.task!r} run, not a CTC one")
    root = data_root(args.data_root if args.data_root is not None else recipe.data.root)
    dev = args.dev or recipe.data.dev
    tokenizer = run_tokenizer(args.run_dir, recipe, root)
    rate = int(recipe.features.sample_rate)
    print(f"building the {args.hours:g} h file from {dev} ...", file=sys.stderr, flush=True)
    wav, reference = long_file(dev, root, tokenizer, rate, args.hours, args.out_dir)
    audio_s = reference["seconds"]
    print(f"transcribing {wav} ({audio_s / 3600:.3f} h, {len(reference['utterances'])} utterances) with "
          f"speechattn transcribe ...", file=sys.stderr, flush=True)
    loadavg_before = os.getloadavg()
    proc = run_transcribe(args.run_dir, wav, args.out_dir / "transcribe", args.fmt, args.beam)
    results: dict[str, Any] = {
        "run_dir": str(args.run_dir), "environment": environment(), "file": str(wav), "audio_seconds": audio_s,
        "utterances": len(reference["utterances"]), "distinct_utterances": reference["distinct_utterances"],
        "left_out": reference["left_out"], "format": args.fmt, "beam": args.beam,
        "run_dev_metrics": json.loads((args.run_dir / "model.json").read_text()).get("dev_metrics"),
        "loadavg_before": loadavg_before, "loadavg_after": os.getloadavg(), "process": proc,
        "rtf": proc["wall_s"] / audio_s,
    }
    if "error" in proc:
        print(f"speechattn transcribe failed: {proc['error']}\n{proc['stderr']}", file=sys.stderr)
    else:
        outputs = sorted((args.out_dir / "transcribe" / "transcripts").glob("*"))
        if len(outputs) != 1:
            raise RuntimeError(f"expected one transcript file, found {[str(p) for p in outputs]}")
        record = parse_output(outputs[0], args.fmt)
        results["transcript"] = str(outputs[0])
        results["scores"] = score(record, reference, tokenizer)

    s = results.get("scores", {})
    metric = s.get("metric", "per")
    def percent(key: str) -> Any:
        return f"{100 * s[key]:.2f}" if key in s else proc.get("error", "-")

    row = {"hours": audio_s / 3600, "wall": proc["wall_s"], "rtf": results["rtf"], "rss": proc.get("peak_rss_mb"),
           "cpu": proc["cpu_s"], "threads": proc.get("torch_threads"), "err": percent(metric),
           "err_utt": percent(f"{metric}_by_utterance"),
           "tokens": f"{s.get('hyp_tokens', '-')} / {s.get('ref_tokens', '-')}"}
    columns = [("hours", "audio h"), ("wall", "wall s (whole process)"), ("rtf", "real-time factor"),
               ("rss", "peak RSS MB (VmHWM)"), ("cpu", "CPU s"), ("threads", "torch threads"),
               ("err", f"{metric.upper()} % (whole)"), ("err_utt", f"{metric.upper()} % (by utterance)"),
               ("tokens", "tokens hyp / ref")]
    if "wer" in s:
        row["wer"] = percent("wer")
        columns.append(("wer", "WER % (whole)"))
    print(f"\nspeechattn transcribe {args.run_dir} ({args.fmt}{'' if args.beam is None else f', beam {args.beam}'}) "
          f"on {len(reference['utterances'])} dev utterances concatenated ({dev})\n")
    print_table([row], columns)
    dev_metrics = results["run_dev_metrics"] or {}
    if metric in dev_metrics:
        print(f"\nthe run's own dev {metric.upper()} (utterance by utterance, offline): "
              f"{100 * dev_metrics[metric]:.2f} %")
    out = write_json("transcribe_long" + ("_smoke" if args.smoke else ""), results, args.json)
    print(f"results: {out}")


if __name__ == "__main__":
    main()
