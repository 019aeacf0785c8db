"""Frame-labeling command: ``label``.

Inputs are audio files, folders (searched recursively) or list files, of any length: each file
is streamed block by block through the features and the streaming encoder, so memory stays
bounded. A file that cannot be read is reported on stderr with its reason and the others go on;
the exit status is 1 when any failed. Output files are written atomically (never half-written).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

import click

from speechattn.cli.batch import run_per_file
from speechattn.cli.options import device_option, model_argument, threads_option
from speechattn.utils.extras import require

__all__ = ["label", "FORMATS"]

#: Output formats and their file suffixes.
FORMATS = {"rttm": ".rttm", "json": ".json", "tsv": ".tsv", "textgrid": ".TextGrid"}


def _json_record(path: Path, result: Any) -> dict[str, Any]:
    return {
        "file": str(path),
        "duration": round(result.duration, 3),
        "classes": result.classes,
        "segments": [{"start": round(s.start, 3), "end": round(s.end, 3), "label": s.label} for s in result.segments],
    }


def _write(fmt: str, name: str, path: Path, result: Any, out: TextIO | Path, header: bool) -> None:
    """Write one file's labels in ``fmt`` to a stream (stdout) or a file path (atomically)."""
    import io

    from speechattn.data.labels import rttm_file_id, write_rttm, write_textgrid
    from speechattn.utils.files import atomic_write, atomic_write_text

    if fmt == "textgrid":
        assert isinstance(out, Path)
        tiers = {c: [s for s in result.segments if s.label == c] for c in result.classes}
        atomic_write(out, lambda tmp: write_textgrid(tmp, tiers, result.duration))
        return
    if fmt == "rttm":
        buffer = io.StringIO()
        write_rttm(rttm_file_id(name), result.segments, buffer)  # "meeting 2024" -> "meeting_2024"
        text = buffer.getvalue()
    elif fmt == "json":
        text = json.dumps(_json_record(path, result)) + "\n"
    else:
        prefix = "" if isinstance(out, Path) else f"{path}\t"
        head = ("" if isinstance(out, Path) else "file\t") + "start\tend\tlabel\n"
        text = (head if header else "") + "".join(
            f"{prefix}{s.start:.3f}\t{s.end:.3f}\t{s.label}\n" for s in result.segments)
    if isinstance(out, Path):
        atomic_write_text(out, text)
    else:
        out.write(text)


@click.command()
@model_argument
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write one file per input into DIR (NAME.rttm/.json/.tsv/.TextGrid, NAME.png); "
                   "default: print to stdout. NAME is the file name without its suffix; the RTTM file id is "
                   "NAME with each blank or other whitespace as _ ('meeting 2024.wav': meeting_2024; an "
                   "empty NAME: unnamed), JSON and TSV give the path as it is.")
@click.option("--format", "fmt", type=click.Choice(sorted(FORMATS)), default="rttm", show_default=True,
              help="Output format (textgrid needs -o).")
@click.option("--plot", is_flag=True, help="Also write NAME.png: waveform, posteriors and labels (needs -o, and matplotlib: "
                   "pip install 'speechattn[train]').")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
@device_option
@threads_option
@click.pass_context
def label(ctx: click.Context, model: str, inputs: tuple[str, ...], out_dir: Path | None, fmt: str, plot: bool,
          progress: bool | None, device: Any) -> None:
    """Label the frames of audio files.

    MODEL is a shipped model name (`speechattn models` lists them), a model file
    (`speechattn export`) or a run folder (`speechattn train`).
    """
    from speechattn.inference import Labeler, plot_labels

    if out_dir is None and (fmt == "textgrid" or plot):
        raise click.UsageError(f"{'--plot' if plot else '--format textgrid'} writes files: give -o DIR")
    if plot:
        require("matplotlib", "--plot")  # before any work: one line naming the extra
    labeler = Labeler.load(model, device=device)

    def emit(name: str, path: Path, result: Any, first: bool) -> None:
        if out_dir is None:
            stdout = click.get_text_stream("stdout")
            _write(fmt, name, path, result, stdout, header=first)
            stdout.flush()
        else:
            _write(fmt, name, path, result, out_dir / f"{name}{FORMATS[fmt]}", header=True)
            if plot:
                plot_labels(out_dir / f"{name}.png", result, title=str(path))

    run_per_file(ctx, inputs, out_dir, progress,
                 lambda path, on_block: labeler.label_file(path, envelope_points=4000 if plot else 0,
                                                           on_block=on_block), emit)
