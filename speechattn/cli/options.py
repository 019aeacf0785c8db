"""Options shared by the commands: the MODEL argument and ``--device`` (every inference
command), ``--threads`` (every command that runs a model)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

__all__ = ["device_option", "threads_option", "model_argument", "MODEL_HELP"]


def _resolve_device_option(ctx: click.Context, param: click.Parameter, value: str) -> Any:
    """The ``--device`` value as a :class:`torch.device`.

    Raises:
        ValueError: a bad device name, or a CUDA device this machine lacks; the CLI prints it as
            one ``speechattn: error: ...`` line.
    """
    from speechattn.utils.device import resolve_device

    return resolve_device(value)


def device_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--device auto|cpu|cuda|cuda:N`` (default auto), given to the command as a
    :class:`torch.device`; a bad value or a missing GPU is a one-line error."""
    return click.option(
        "--device", default="auto", show_default=True, metavar="DEVICE", callback=_resolve_device_option,
        help="Where to run the model: auto (a CUDA GPU when there is one, else the CPU), cpu, cuda or cuda:N. "
             "It runs in bf16 where the device computes bf16 natively, else in fp32.")(command)


def _set_threads(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is not None:
        import torch

        torch.set_num_threads(value)
    return value


def threads_option(command: Callable[..., Any] | None = None, *, expose_value: bool = False) -> Any:
    """``--threads N``: the CPU threads torch computes with (:func:`torch.set_num_threads`), set as
    soon as the option is parsed; default: torch's (one per core). ``expose_value``: also pass the
    value to the command as ``threads`` (``train`` records it as ``train.threads``)."""
    decorator = click.option(
        "--threads", type=click.IntRange(min=1), default=None, metavar="N", callback=_set_threads,
        expose_value=expose_value,
        help="CPU threads for torch (torch.set_num_threads); default: one per core.")
    return decorator if command is None else decorator(command)


#: What MODEL may be, for help texts.
MODEL_HELP = ("MODEL is a shipped model name (`speechattn models` lists them: vad, speaker, phones), "
              "a model file (`speechattn export`) or a run folder (`speechattn train`).")


def model_argument(command: Callable[..., Any]) -> Callable[..., Any]:
    """The MODEL argument (passed as ``model``, a string): a shipped model name, a model file or a
    run folder; the predictor's loader resolves it, with a one-line error when it is none."""
    return click.argument("model", metavar="MODEL")(command)
