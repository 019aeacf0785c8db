"""Model commands: ``models`` (what ships with the package) and ``export`` (a run as one file).

    speechattn models [--json]
    speechattn export RUN OUT.safetensors [--name NAME] [--fp32] [--data TEXT] [--licence TEXT] ...

Every command that runs a model takes MODEL: a shipped model name (``vad``, ``speaker``,
``phones``), a model file written by ``export``, or a run folder written by ``train``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

__all__ = ["models", "export", "metric_summary"]

#: Metrics shown by ``speechattn models``: key -> (label, format, scale).
_SHOWN = {
    "eer": ("EER", "{:.2f} %", 1.0),
    "min_dcf": ("minDCF", "{:.3f}", 1.0),
    "f1": ("F1", "{:.3f}", 1.0),
    "precision": ("precision", "{:.3f}", 1.0),
    "recall": ("recall", "{:.3f}", 1.0),
    "per": ("PER", "{:.1f} %", 100.0),  # error rates are stored as fractions
    "cer": ("CER", "{:.1f} %", 100.0),
    "wer": ("WER", "{:.1f} %", 100.0),
}


def metric_summary(metrics: dict[str, Any] | None) -> str:
    """A short line of the headline metrics of a card's ``metrics["dev"]`` or ``["test"]``."""
    if not metrics:
        return "-"
    parts = []
    for key, (label, fmt, scale) in _SHOWN.items():
        value = metrics.get(key)
        if isinstance(value, (int, float)):
            parts.append(f"{label} {fmt.format(value * scale)}")
    return ", ".join(parts) or "-"


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


def _record(name: str, path: Path) -> dict[str, Any]:
    from speechattn.models.modelfile import read_model_file

    model = read_model_file(path)
    header, card = model.header, model.header.card
    return {
        "name": name, "task": header.task, "parameters": model.num_parameters(), "bytes": path.stat().st_size,
        "dtype": header.dtype, "description": card.description, "data": card.data, "licence": card.licence,
        "dev": card.metrics.get("dev"), "test": card.metrics.get("test"), "command": card.command,
        "commit": card.commit, "training": card.training, "notes": card.notes, "path": str(path),
    }


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON record per model instead of the table.")
def models(as_json: bool) -> None:
    """List the models shipped with the package."""
    from speechattn.models.pretrained import shipped_models

    records = [_record(name, path) for name, path in shipped_models().items()]
    if as_json:
        for r in records:
            click.echo(json.dumps(r))
        return
    if not records:
        click.echo("no models are shipped with this installation (train one: speechattn train RECIPE)")
        return
    for r in records:
        click.echo(f"{r['name']}  [{r['task']}] {r['description']}")
        click.echo(f"    size        {r['parameters'] / 1e6:.2f} M parameters, {_size(r['bytes'])} ({r['dtype']})")
        click.echo(f"    trained on  {r['data'] or '-'}")
        click.echo(f"    licence     {r['licence'] or '-'}")
        click.echo(f"    dev         {metric_summary(r['dev'])}")
        no_test = "- (no test split was available: dev is also the selection set)"
        test = metric_summary(r["test"]) if r["test"] else no_test
        click.echo(f"    test        {test}")
        click.echo(f"    trained by  {r['command'] or '-'}" + (f"  (commit {r['commit']})" if r["commit"] else ""))
        if r["notes"]:
            click.echo(f"    notes       {r['notes']}")
    click.echo("Use one by name: speechattn label vad FILE | verify speaker A B | transcribe phones FILE")


@click.command()
@click.argument("model")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--name", default=None, help="The model's name in its card (default: the run folder's name).")
@click.option("--description", default=None, help="One line on what the model does.")
@click.option("--data", "data_text", default=None, help="The training data (default: the recipe's references).")
@click.option("--licence", default=None, help="The training data's licence.")
@click.option("--command", "command_text", default=None, help="The command that trained it.")
@click.option("--commit", default=None, help="The commit of the code that trained it.")
@click.option("--notes", default=None, help="Anything else a user should know.")
@click.option("--fp32", is_flag=True, help="Store the weights as float32 (default float16: half the size).")
def export(model: str, out: Path, name: str | None, description: str | None, data_text: str | None,
           licence: str | None, command_text: str | None, commit: str | None, notes: str | None, fp32: bool) -> None:
    """Write a trained model as one self-contained file."""
    if out.suffix != ".safetensors":
        raise click.UsageError(f"{out}: the model file must end in .safetensors")
    from speechattn.inference.export import export_model

    card = {"name": name, "description": description, "data": data_text, "licence": licence,
            "command": command_text, "commit": commit, "notes": notes}
    path = export_model(model, out, dtype="float32" if fp32 else "float16", card=card)
    click.echo(f"wrote {path} ({_size(path.stat().st_size)})")
