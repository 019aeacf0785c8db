"""The ``speechattn`` command line.

    speechattn [-v] [--version] COMMAND ...

    speechattn data list [--root DIR]
    speechattn data prepare NAME [--root DIR] [--from PATH] [--copy] [--force] [--checksum ALGO:HEX | --no-verify]
    speechattn data shard DATA_REF OUT --recipe RECIPE [--shard-size N] [--root DIR]
    speechattn train RECIPE [--set KEY=VALUE ...] [--run-dir DIR] [--resume] [--data-root DIR] [--threads N]

Heavy modules (torch, the task code) are imported inside the commands, so ``speechattn
--help`` stays fast. The tasks' commands (``embed``, ``verify``, ``identify``, ``label``,
``transcribe``: registered with each task in :mod:`speechattn.recipes.registry`) and
``evaluate`` are in :data:`TASK_COMMANDS`: a command there is imported only when it is run or
its own ``--help`` is shown.

Errors: expected failures (bad recipes, manifests, audio, missing files, corpus preparation
and download errors, running out of memory) print one line ``speechattn: error: ...`` and exit
with status 2; add ``-v`` for the traceback. Ctrl-C exits with status 130. Anything else is a bug and shows its
traceback.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
import traceback
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import click

from speechattn.cli.batch import file_error_message, is_memory_error
from speechattn.cli.options import threads_option
from speechattn.utils.extras import MissingExtraError

__all__ = ["EXIT_ERROR", "EXIT_INTERRUPTED", "TASK_COMMANDS", "main"]

PROG = "speechattn"
#: Exit status of an expected error (same as click's usage errors).
EXIT_ERROR = 2
#: Exit status after Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED = 130

log = logging.getLogger("speechattn.cli")

# ----------------------------------------------------------------------------- task commands
#
# Commands that live in task modules, imported only when used: each task registers its verbs
# once, in the task registry (speechattn/recipes/registry.py), with the one-line help shown by
# `speechattn --help`; `evaluate` serves every task.


class _TaskCommands(MutableMapping[str, tuple[str, str]]):
    """name -> ("module:attribute" of a click.Command, one-line help): the commands of every
    registered task (:func:`speechattn.recipes.registry.task_commands`, read on each use, so a task
    registered later has its commands too), plus the ones set here (``evaluate``, or a test's)."""

    def __init__(self, own: dict[str, tuple[str, str]]) -> None:
        self._own = dict(own)

    def _all(self) -> dict[str, tuple[str, str]]:
        from speechattn.recipes.registry import task_commands

        return {**task_commands(), **self._own}

    def __getitem__(self, name: str) -> tuple[str, str]:
        return self._all()[name]

    def __setitem__(self, name: str, value: tuple[str, str]) -> None:
        self._own[name] = value

    def __delitem__(self, name: str) -> None:
        if name not in self._own:
            raise KeyError(f"{name!r} is a command of a registered task: unregister the task instead")
        del self._own[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __repr__(self) -> str:
        return f"TASK_COMMANDS({self._all()!r})"


TASK_COMMANDS: MutableMapping[str, tuple[str, str]] = _TaskCommands({
    # --- every task (speechattn/cli/evaluate.py): ---
    "evaluate": ("speechattn.cli.evaluate:evaluate", "Evaluate a trained run on a data dir."),
})


# ----------------------------------------------------------------------------- errors

def _expected_errors() -> tuple[type[BaseException], ...]:
    """Exception types shown as one line with exit status 2.

    ``ValueError`` covers ConfigError, ManifestError and AudioError; ``OSError`` covers
    FileNotFoundError and permission / disk errors; MissingExtraError is an optional dependency
    that is not installed (``--plot needs matplotlib: pip install 'speechattn[train]'``). PrepareError (corpus preparation and its
    download and checksum errors) is a RuntimeError and is listed by name; the data package is
    imported only if a command already loaded it.
    """
    kinds: list[type[BaseException]] = [ValueError, OSError, MemoryError, MissingExtraError]
    corpora = sys.modules.get("speechattn.data.corpora")
    if corpora is not None:
        kinds.append(corpora.PrepareError)
    return tuple(kinds)


def is_expected_error(exc: BaseException) -> bool:
    """One of :func:`_expected_errors`, or a failed allocation (torch reports those as
    RuntimeErrors: see :func:`speechattn.cli.batch.is_memory_error`)."""
    return isinstance(exc, _expected_errors()) or is_memory_error(exc)


def error_message(exc: BaseException) -> str:
    """One line describing an expected error (without the ``speechattn: error:`` prefix).

    OSErrors raised by the system (``[Errno 2] No such file or directory: 'x'``) read as
    ``x: No such file or directory``; failed allocations as ``out of memory (tried to allocate
    2.8 GB)``; other errors give their message.
    """
    return file_error_message(exc)


def _verbose(ctx: click.Context) -> int:
    root = ctx.find_root()
    return int((root.obj or {}).get("verbose", 0)) if isinstance(root.obj, dict) else 0


class _Group(click.Group):
    """A group with speechattn's error handling and lazily imported task commands."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo(f"\n{PROG}: interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except Exception as exc:
            if not is_expected_error(exc):
                raise
            if _verbose(ctx):
                click.echo("".join(traceback.format_exception(exc)).rstrip(), err=True)
            click.echo(f"{PROG}: error: {error_message(exc)}", err=True)
            ctx.exit(EXIT_ERROR)

    # Lazy task commands (only on the top-level group).
    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(super().list_commands(ctx))
        if ctx.parent is None:
            names |= set(TASK_COMMANDS)
        return sorted(names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None or ctx.parent is not None or cmd_name not in TASK_COMMANDS:
            return command
        target = TASK_COMMANDS[cmd_name][0]
        module_name, _, attr = target.partition(":")
        try:
            command = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise click.ClickException(f"command {cmd_name!r} is not available ({target}: {exc})") from exc
        if not isinstance(command, click.Command):
            raise click.ClickException(f"command {cmd_name!r}: {target} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Like click's, but task commands are described from :data:`TASK_COMMANDS` (no import)."""
        rows = []
        for name in self.list_commands(ctx):
            command = self.commands.get(name)
            if command is not None:
                if command.hidden:
                    continue
                rows.append((name, command.get_short_help_str(formatter.width - 6 - len(name))))
            elif ctx.parent is None and name in TASK_COMMANDS:
                rows.append((name, TASK_COMMANDS[name][1]))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class _ClickLogHandler(logging.Handler):
    """Writes log records with click.echo(err=True), so they follow the current stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(self.format(record), err=True)
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


def _setup_logging(verbose: int) -> None:
    """INFO from speechattn by default, DEBUG with -v; other libraries stay at WARNING."""
    logger = logging.getLogger("speechattn")
    for handler in list(logger.handlers):
        if isinstance(handler, _ClickLogHandler):
            logger.removeHandler(handler)
    handler = _ClickLogHandler()
    if verbose:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    else:
        handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    if not logging.getLogger().handlers:
        # Keep other libraries quiet unless asked, and avoid printing our records twice.
        logger.propagate = False


# ----------------------------------------------------------------------------- main group

@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="speechattn", prog_name=PROG, message="%(prog)s %(version)s")
@click.option("-v", "--verbose", count=True, help="Debug logging, and tracebacks on errors.")
@click.pass_context
def main(ctx: click.Context, verbose: int) -> None:
    """speechattn: speech models on a truncated self-attention encoder.

    Train with a recipe (`speechattn train recipes/speaker.yaml`); fetch or import the corpora
    with `speechattn data prepare`. Corpora are looked up under the data root: --root /
    --data-root, else $SPEECHATTN_DATA, else ./data.
    """
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose
    _setup_logging(verbose)


# ----------------------------------------------------------------------------- data

@main.group(cls=_Group)
def data() -> None:
    """List, download or import the corpora; write feature shards."""


_root_option = click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    default=None,
    help="Data root (default: $SPEECHATTN_DATA, else ./data).",
)


@data.command("list")
@_root_option
def data_list(root: Path | None) -> None:
    """Show each corpus and whether it is ready under the data root."""
    from speechattn.data.prepare import format_corpus_list, list_corpora
    from speechattn.utils.paths import data_root

    click.echo(f"data root: {data_root(root)}")
    click.echo(format_corpus_list(list_corpora(root)))


@data.command("prepare")
@click.argument("name")
@_root_option
@click.option(
    "--from",
    "source",
    type=click.Path(path_type=Path),
    metavar="PATH",
    default=None,
    help="Use a local copy instead of downloading: a prepared folder (imported by symlinks), "
    "an extracted original release, or the original archive.",
)
@click.option("--copy", is_flag=True, help="With --from a prepared folder: copy the files instead of linking them.")
@click.option("--force", is_flag=True, help="Prepare again, replacing what is there (the source is never modified).")
@click.option("--checksum", metavar="ALGO:HEX", default=None,
              help="Expected checksum of the archive (sha256:HEX or md5:HEX, from a source you trust); "
              "needed to download a corpus whose checksum is not pinned (speechocean762, fsdd).")
@click.option("--no-verify", is_flag=True,
              help="Accept the archive without checking it (its sha256 and md5 are logged, to pin).")
def data_prepare(name: str, root: Path | None, source: Path | None, copy: bool, force: bool,
                 checksum: str | None, no_verify: bool) -> None:
    """Download (or import with --from) corpus NAME into the data root.

    NAME is one of the corpora shown by `speechattn data list` (speechocean762, fsdd, noise).
    Without --from the public original is downloaded (resumable), checked against its
    published checksum, unpacked and converted. A corpus without a pinned checksum needs
    --checksum or --no-verify. Preparing a corpus that is already there does nothing.
    """
    from speechattn.data.corpora import get_corpus
    from speechattn.data.prepare import corpus_status, prepare_corpus
    from speechattn.utils.paths import data_root

    if copy and source is None:
        raise click.UsageError("--copy needs --from PATH (downloads are always unpacked)")
    corpus = get_corpus(name)  # unknown names fail here, with a suggestion
    base = data_root(root)
    if checksum is not None and no_verify:
        raise click.UsageError("--checksum and --no-verify contradict each other")
    verifiable = no_verify or checksum is not None or corpus.checksum is not None  # else refused at once
    if source is None and verifiable and (force or corpus_status(name, base).status not in ("prepared", "present")):
        size = f", {corpus.download_size}" if corpus.download_size else ""
        log.info("downloading %s from %s%s into %s", corpus.name, corpus.url, size, base)
    target = prepare_corpus(name, root=base, source=source, copy=copy, force=force, verify=not no_verify,
                            checksum=checksum, progress=sys.stderr.isatty())
    status = corpus_status(name, base)
    how = f" ({status.method})" if status.method else ""
    click.echo(f"{status.name}: {status.status}{how} in {target}")


@data.command("shard")
@click.argument("data_ref", metavar="DATA_REF")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--recipe", "recipe_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              metavar="RECIPE", help="Recipe whose features and data.speed_perturb the shards get.")
@click.option("--shard-size", type=click.IntRange(min=1), default=1000, show_default=True, metavar="N",
              help="Samples per shard.")
@_root_option
def data_shard(data_ref: str, out: Path, recipe_path: Path, shard_size: int, root: Path | None) -> None:
    """Write the features of DATA_REF into webdataset shards in folder OUT.

    DATA_REF is any data reference a recipe takes (a Kaldi dir, CSV or JSONL under the data
    root, or CORPUS:SPLIT). Each utterance and each speed-perturbed copy (the recipe's
    data.speed_perturb; speaker SPK-spF) becomes one sample; OUT/index.json is written last.
    Train on the shards with --set data.train_shards=OUT (see README, Data).
    """
    from speechattn.data.shard_writer import write_shards
    from speechattn.data.shards import summarize
    from speechattn.data.splits import resolve_manifest
    from speechattn.recipes import load_task_recipe
    from speechattn.utils.paths import data_root

    recipe = load_task_recipe(recipe_path)
    features = getattr(recipe, "features", None)
    if features is None:
        raise click.UsageError(f"{recipe_path}: the recipe has no features block")
    speeds = list(getattr(getattr(recipe, "data", None), "speed_perturb", None) or [1.0])
    manifest = resolve_manifest(data_ref, data_root(root))
    index = write_shards(manifest, out, features, speeds, shard_size=shard_size, source=data_ref,
                         seed=int(getattr(getattr(recipe, "train", None), "seed", 0)), progress=sys.stderr.isatty())
    click.echo(summarize(index))


# ----------------------------------------------------------------------------- cache

@main.group(cls=_Group)
def cache() -> None:
    """Show or free the feature cache ($SPEECHATTN_CACHE, else ~/.cache/speechattn)."""


def _size(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def _day(t: float) -> str:
    import time

    return time.strftime("%Y-%m-%d", time.localtime(t))


@cache.command("info")
def cache_info() -> None:
    """How many cached feature sets there are, their size and age."""
    from speechattn.data.featcache import cache_entries, features_dir

    entries = cache_entries()
    click.echo(f"feature cache: {features_dir()}")
    if not entries:
        click.echo("0 entries")
        return
    total = sum(e.size for e in entries)
    count = f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}"
    click.echo(f"{count}, {_size(total)}; last used between {_day(entries[0].last_used)} "
               f"and {_day(entries[-1].last_used)}")


@cache.command("clear")
@click.option("--unused-for", "unused_days", type=click.FloatRange(min=0), metavar="DAYS", default=None,
              help="Only delete entries not written or read for DAYS days (default: all).")
@click.option("--dry-run", is_flag=True, help="Only show what would be deleted.")
def cache_clear(unused_days: float | None, dry_run: bool) -> None:
    """Delete cached features; they are extracted again when next needed."""
    from speechattn.data.featcache import clear_cache, features_dir

    gone = clear_cache(unused_days, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    files = f"{len(gone)} file{'' if len(gone) == 1 else 's'}"
    click.echo(f"{verb} {files}, {_size(sum(e.size for e in gone))} from {features_dir()}")


# ----------------------------------------------------------------------------- train

@main.command()
@click.argument("recipe", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a recipe value, e.g. --set train.epochs=2 (repeatable; values are YAML).",
)
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    default=None,
    help="Where checkpoints, logs and results go (default: chosen by the recipe).",
)
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in the run folder.")
@click.option("--data-root", metavar="DIR", default=None, help="Data root (default: the recipe's, else $SPEECHATTN_DATA, else ./data).")
@click.option("--device", metavar="DEVICE", default=None,
              help="auto, cpu, cuda or cuda:N (default: the recipe's train.device, itself 'auto').")
@threads_option(expose_value=True)
def train(recipe: Path, overrides: tuple[str, ...], run_dir: Path | None, resume: bool, data_root: str | None,
          device: str | None, threads: int | None) -> None:
    """Train a model from a recipe file.

    RECIPE is a YAML recipe (e.g. recipes/speaker.yaml). When training ends, its summary
    (run folder, metrics) is printed on stdout as JSON.

    For several processes (CPU or GPU, one machine or many), start it with torchrun:
    torchrun --nproc_per_node N -m speechattn.cli.main train RECIPE.

    --threads N overrides the recipe's train.threads (torch's CPU threads, per process).
    """
    from speechattn import tasks

    if threads is not None:
        overrides = (*overrides, f"train.threads={threads}")

    train_recipe = getattr(tasks, "train_recipe", None)
    if train_recipe is None:
        raise click.ClickException("training is not available yet (speechattn.tasks.train_recipe is missing)")
    summary = train_recipe(recipe, overrides=list(overrides), run_dir=run_dir, resume=resume, data_root=data_root,
                           device=device)
    from speechattn.utils import distributed

    if distributed.is_main():
        click.echo(json.dumps(summary, indent=2, default=str))
    distributed.shutdown()


# ----------------------------------------------------------------------------- models

from speechattn.cli.models import export as _export  # noqa: E402  (click only at import)
from speechattn.cli.models import models as _models  # noqa: E402

main.add_command(_models)
main.add_command(_export)


if __name__ == "__main__":  # pragma: no cover - `python3 -m speechattn.cli.main` (used by the Makefile)
    # Run the module under its import name, so that task modules importing it share its state.
    from speechattn.cli.main import main as _main

    _main(prog_name=PROG)
