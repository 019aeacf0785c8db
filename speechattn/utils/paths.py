"""Where speechattn finds its data.

The data root holds one folder per corpus (``speechocean762/``, ``fsdd/``, ``noise/``).
It is resolved, first match wins, from:

1. an explicit argument (a recipe's ``data.root`` or a CLI option),
2. the environment variable ``SPEECHATTN_DATA``,
3. ``data/`` in the current working directory (where ``speechattn data`` puts corpora).
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "SPEECHATTN_DATA"
DEFAULT_DATA_DIR = Path("data")


def data_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Return the data root (it may not exist yet)."""
    if explicit is not None and str(explicit) != "":
        return Path(explicit).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return DEFAULT_DATA_DIR
