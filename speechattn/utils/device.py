"""Where and in what precision to run: device choice and hardware-aware bf16.

``precision: auto`` (every recipe's default) uses bf16 autocast only where the hardware runs bf16
natively: a CUDA device that supports it, or a CPU whose instruction set has bf16 arithmetic
(AVX512-BF16 or AMX). Elsewhere bf16 is emulated and runs many times slower than fp32 (about 70x
for training on an AVX2-only CPU), so ``auto`` resolves to fp32 there. Inference follows the
same rule on the machine it runs on, whatever precision the model was trained in.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from typing import ContextManager, Literal

import torch

__all__ = [
    "PRECISIONS",
    "Precision",
    "autocast",
    "cpu_has_native_bf16",
    "resolve_device",
    "resolve_precision",
]

log = logging.getLogger(__name__)

Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")


def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bf16 natively (AVX512-BF16 or AMX), as oneDNN sees it."""
    cpu = getattr(torch, "cpu", None)
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        check = getattr(cpu, probe, None)
        if check is not None:
            try:
                if check():
                    return True
            except RuntimeError:  # pragma: no cover - a build without the probe's backend
                continue
    return False


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto`` (or None): the first CUDA device when there is one, else the CPU.

    Raises:
        ValueError: an unknown device string, or a CUDA device this machine does not have.
    """
    if isinstance(device, torch.device):
        return device
    if device is None or device == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {device!r} ({err})") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r}: no CUDA device is available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return dev


def _native_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return cpu_has_native_bf16()


def resolve_precision(precision: str, device: torch.device, *, warn: bool = True) -> Literal["fp32", "bf16"]:
    """The precision to run in on ``device``: ``auto`` becomes bf16 where it is native, else fp32.

    An explicit ``bf16`` is kept, with a warning when the device has no native bf16 (it runs,
    but slowly); ``fp32`` is always kept.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return "fp32"
    native = _native_bf16(device)
    if precision == "auto":
        return "bf16" if native else "fp32"
    if not native and warn:
        what = "this CPU has no AVX512-BF16 or AMX" if device.type == "cpu" else f"{device} has no bf16 support"
        warnings.warn(
            f"precision bf16 on {device}: {what}, so bf16 is emulated and much slower than fp32 "
            "(use precision: auto or fp32)",
            RuntimeWarning,
            stacklevel=2,
        )
    return "bf16"


def autocast(device: torch.device, precision: str) -> ContextManager[object]:
    """bf16 autocast on ``device`` when ``precision`` is ``bf16`` (already resolved), else nothing."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
