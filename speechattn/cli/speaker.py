"""Speaker commands: ``embed``, ``verify``, ``identify``.

Inputs are audio files, folders (searched recursively) or list files, of any length: a file
longer than 5 minutes is embedded window by window, read block by block, so memory stays bounded
(:meth:`speechattn.inference.SpeakerRecognizer.embed_file`). A file that cannot be read (or runs
out of memory) is reported on stderr with its reason and the others go on; the exit status is 1
when any failed. Outputs already computed are written, atomically, even when later files fail or
on Ctrl-C.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from speechattn.cli.batch import (
    BatchReport,
    file_error_message,
    is_file_error,
    is_memory_error,
)
from speechattn.cli.inputs import expand_inputs
from speechattn.cli.options import device_option, model_argument, threads_option

__all__ = ["embed", "verify", "identify"]



def _recognizer(model: str, device: Any) -> Any:
    from speechattn.inference import SpeakerRecognizer

    return SpeakerRecognizer.load(model, device=device)


def _embed_paths(model: Any, paths: list[Path], report: BatchReport, progress: bool = True):
    """Yield (path, embedding) for every readable file; failures go to ``report``."""
    from tqdm import tqdm

    for path in tqdm(paths, desc="embedding", disable=None if progress else True, leave=False):
        try:
            emb = model.embed_file(path)
        except Exception as exc:
            if not is_file_error(exc):
                raise
            report.fail(path, exc)
            continue
        report.ok(path)
        yield path, emb


@click.command()
@model_argument
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to FILE.npy (array + FILE.txt listing the files in order) or FILE.json; "
                   "default: one JSON line per file on stdout.")
@device_option
@threads_option
@click.pass_context
def embed(ctx: click.Context, model: str, inputs: tuple[str, ...], output: Path | None, device: Any) -> None:
    """Write speaker embeddings of audio files.

    MODEL is a shipped model name (`speechattn models` lists them), a model file
    (`speechattn export`) or a run folder (`speechattn train`).
    """
    model = _recognizer(model, device)
    report = BatchReport()
    paths, problems = expand_inputs(inputs)
    report.add_problems(problems)
    done: list[tuple[Path, list[float]]] = []
    try:
        for path, emb in _embed_paths(model, paths, report):
            vector = [round(float(v), 6) for v in emb]
            done.append((path, vector))
            if output is None:
                click.echo(json.dumps({"file": str(path), "embedding": vector}))
    finally:  # keep what was computed, even on Ctrl-C or an unexpected error
        if output is not None and done:
            _write_embeddings(output, done)
    click.echo(report.summary(), err=True)
    ctx.exit(report.exit_code)


def _write_embeddings(output: Path, done: list[tuple[Path, list[float]]]) -> None:
    """FILE.npy (+ FILE.txt, the files in order) or FILE.json, each written atomically."""
    import numpy as np

    from speechattn.utils.files import atomic_write, atomic_write_text

    if output.suffix == ".npy":
        array = np.array([v for _, v in done], dtype=np.float32)

        def save(tmp: str) -> None:
            with open(tmp, "wb") as f:  # a file object: np.save(name) would append ".npy" to the name
                np.save(f, array)

        atomic_write(output, save)
        atomic_write_text(output.with_suffix(".txt"), "".join(f"{p}\n" for p, _ in done))
    else:
        atomic_write_text(output, json.dumps({str(p): v for p, v in done}) + "\n")


@click.command()
@model_argument
@click.argument("first", type=click.Path(path_type=Path))
@click.argument("second", type=click.Path(path_type=Path))
@click.option("--threshold", type=float, default=None, help="Decision threshold (default: calibrated on dev).")
@device_option
@threads_option
def verify(model: str, first: Path, second: Path, threshold: float | None, device: Any) -> None:
    """Score whether two recordings share a speaker.

    MODEL is a shipped model name (`speechattn models` lists them), a model file
    (`speechattn export`) or a run folder (`speechattn train`).
    """
    model = _recognizer(model, device)
    a, b = _embed_one(model, first), _embed_one(model, second)
    score = model.score(a, b)
    limit = model.threshold if threshold is None else threshold
    click.echo(json.dumps({"first": str(first), "second": str(second), "score": round(score, 6),
                           "threshold": round(limit, 6), "same_speaker": score >= limit}))


def _embed_one(model: Any, path: Path) -> Any:
    """``model.embed_file(path)``; running out of memory becomes an error naming the file."""
    import errno

    try:
        return model.embed_file(path)
    except Exception as exc:
        if is_memory_error(exc):
            raise OSError(errno.ENOMEM, file_error_message(exc), str(path)) from exc
        raise


def _enrolment(model: Any, enroll: Path, report: BatchReport) -> dict[str, Any]:
    """Speaker -> mean embedding, from ``DIR/<speaker>/*.wav`` or a manifest with speakers."""
    import torch

    groups: dict[str, list[Path]] = {}
    if enroll.is_dir() and not (enroll / "wav.scp").exists():
        for sub in sorted(p for p in enroll.iterdir() if p.is_dir()):
            files, problems = expand_inputs([str(sub)])
            report.add_problems(problems)
            if files:
                groups[sub.name] = files
    else:
        from speechattn.data.manifest_io import load_manifest

        for utt in load_manifest(enroll):
            if utt.speaker is None:
                raise ValueError(f"{enroll}: utterance {utt.id} has no speaker label")
            groups.setdefault(utt.speaker, []).append(Path(utt.path))
    if not groups:
        raise ValueError(f"{enroll}: no enrolment audio (expected one sub-folder of audio per speaker, "
                         "or a Kaldi dir / manifest with speakers)")
    centroids = {}
    for speaker, files in groups.items():
        embs = [e for _, e in _embed_paths(model, files, report, progress=False)]
        if embs:
            centroids[speaker] = torch.nn.functional.normalize(torch.stack(embs), dim=-1).mean(0)
    if not centroids:
        raise ValueError(f"{enroll}: no enrolment file could be read")
    return centroids


@click.command()
@model_argument
@click.argument("inputs", nargs=-1, required=True)
@click.option("--enroll", required=True, type=click.Path(exists=True, path_type=Path),
              help="Folder with one sub-folder of audio per speaker, or a Kaldi dir / manifest with speakers.")
@click.option("--top", default=3, show_default=True, help="Candidates listed per file.")
@device_option
@threads_option
@click.pass_context
def identify(ctx: click.Context, model: str, inputs: tuple[str, ...], enroll: Path, top: int, device: Any) -> None:
    """Name the enrolled speaker of each recording.

    MODEL is a shipped model name (`speechattn models` lists them), a model file
    (`speechattn export`) or a run folder (`speechattn train`).
    """
    import torch

    model = _recognizer(model, device)
    enrol_report = BatchReport()
    centroids = _enrolment(model, enroll, enrol_report)
    report = BatchReport()
    names = list(centroids)
    matrix = torch.stack([centroids[n] for n in names])
    paths, problems = expand_inputs(inputs)
    report.add_problems(problems)
    for path, emb in _embed_paths(model, paths, report):
        scores = torch.nn.functional.cosine_similarity(matrix, emb[None], dim=-1)
        best = scores.argsort(descending=True)[: max(1, top)].tolist()
        click.echo(json.dumps({
            "file": str(path), "speaker": names[best[0]], "score": round(float(scores[best[0]]), 6),
            "candidates": [{"speaker": names[i], "score": round(float(scores[i]), 6)} for i in best],
        }))
    click.echo(f"{report.summary()}; enrolled {len(names)} speakers from {enrol_report.num_ok} files"
               f"{f' ({enrol_report.num_failed} failed)' if enrol_report.num_failed else ''}", err=True)
    ctx.exit(max(report.exit_code, enrol_report.exit_code))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(embed())
