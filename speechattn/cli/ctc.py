"""Transcription command: ``transcribe``.

Inputs are audio files, folders (searched recursively) or list files, of any length: each file
is streamed block by block through the features and the streaming encoder, so memory stays
bounded (the per-frame token log-probs are kept: ~15 MB per hour). A file that cannot be read
is reported on stderr with its reason and the others go on; the exit status is 1 when any
failed. Results already written stay written; each output file is written atomically.

Formats: ``text`` (``FILE<TAB>text`` lines on stdout, or NAME.txt), ``json`` (one record per
file: text, score, tokens and, for character models, words, each with start/end seconds) and
``ctm`` (NIST CTM: ``NAME 1 START DURATION TOKEN`` per word for character models, per phone
otherwise).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from speechattn.cli.batch import run_per_file
from speechattn.cli.options import device_option, model_argument, threads_option

__all__ = ["transcribe", "FORMATS", "format_transcript"]

#: Output formats and their file suffixes.
FORMATS = {"text": ".txt", "json": ".json", "ctm": ".ctm"}


def format_transcript(fmt: str, name: str, path: Path, result: Any, to_file: bool) -> str:
    """One file's transcript in ``fmt`` (``to_file``: for NAME.txt rather than stdout lines)."""
    if fmt == "text":
        return f"{result.text}\n" if to_file else f"{path}\t{result.text}\n"
    if fmt == "json":
        record = {
            "file": str(path),
            "duration": round(result.duration, 3),
            "text": result.text,
            "score": round(result.score, 4),
            "tokens": [{"token": t.token, "start": t.start, "end": t.end} for t in result.tokens],
        }
        if result.words:
            record["words"] = [{"word": w.token, "start": w.start, "end": w.end} for w in result.words]
        return json.dumps(record) + "\n"
    units = result.words or result.tokens
    return "".join(f"{name} 1 {u.start:.3f} {max(0.0, u.end - u.start):.3f} {u.token}\n" for u in units)


@click.command()
@model_argument
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write one file per input into DIR (NAME.txt/.json/.ctm); default: print to stdout.")
@click.option("--format", "fmt", type=click.Choice(sorted(FORMATS)), default="text", show_default=True,
              help="Output format; json and ctm carry token times.")
@click.option("--beam", type=click.IntRange(min=1), default=None,
              help="Prefix beam search with this beam (1: greedy); default: the recipe's decode.beam.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
@device_option
@threads_option
@click.pass_context
def transcribe(ctx: click.Context, model: str, inputs: tuple[str, ...], out_dir: Path | None, fmt: str,
               beam: int | None, progress: bool | None, device: Any) -> None:
    """Transcribe audio files.

    MODEL is a shipped model name (`speechattn models` lists them), a model file
    (`speechattn export`) or a run folder (`speechattn train`).
    """
    from speechattn.inference import Transcriber
    from speechattn.utils.files import atomic_write_text

    model = Transcriber.load(model, beam=beam, device=device)
    stdout = click.get_text_stream("stdout")

    def emit(name: str, path: Path, result: Any, first: bool) -> None:
        if out_dir is None:
            stdout.write(format_transcript(fmt, name, path, result, to_file=False))
            stdout.flush()
        else:
            atomic_write_text(out_dir / f"{name}{FORMATS[fmt]}", format_transcript(fmt, name, path, result, to_file=True))

    run_per_file(ctx, inputs, out_dir, progress,
                 lambda path, on_block: model.transcribe_file(path, on_block=on_block), emit)
