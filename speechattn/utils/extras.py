"""Optional dependencies: what a plain ``pip install speechattn`` leaves out, and the one-line
error when a feature needs it.

A base install brings what inference needs (``label``, ``transcribe``, ``embed``, ``verify``,
``identify``, ``evaluate``). The extras add the rest:

- ``speechattn[train]``: ``tensorboard`` (training curves), ``webdataset`` (feature shards:
  ``speechattn data shard``, ``data.train_shards``) and ``matplotlib`` (plots: ``label --plot``,
  ``evaluate --det``, a speaker run's ``det.png``);
- ``speechattn[dev]``: everything, and the test tools.

Their modules are imported inside the functions that use them, through :func:`require`, never at
module level, so the inference path never loads them.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingExtraError", "missing_message", "require"]


class MissingExtraError(ImportError):
    """An optional dependency is not installed. The message is one line naming the feature that
    needs it and the extra that installs it; the command line prints it as an expected error."""


def missing_message(feature: str, package: str, extra: str = "train") -> str:
    """``FEATURE needs PACKAGE: pip install 'speechattn[EXTRA]'``."""
    return f"{feature} needs {package}: pip install 'speechattn[{extra}]'"


def require(module: str, feature: str, extra: str = "train", package: str | None = None) -> ModuleType:
    """Import ``module``, or raise :class:`MissingExtraError` (one line) when it is not installed.

    Args:
        module: the module to import (e.g. ``"matplotlib"``, ``"torch.utils.tensorboard"``).
        feature: what needs it, as the user wrote it (``"--plot"``, ``"data.train_shards"``).
        extra: the extra that installs it.
        package: the distribution to name (default: the top-level name of ``module``).
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(missing_message(feature, package or module.partition(".")[0], extra)) from exc
