"""The models shipped inside the package, by name (``vad``, ``speaker``, ``phones``...).

Each is one model file (:mod:`speechattn.models.modelfile`) in ``speechattn/models/pretrained/``,
installed with the wheel as package data; ``make models`` retrains and rewrites them (see
RESULTS.md for each one's command, metrics and training data licence). A name is the file's stem.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["PRETRAINED_DIR", "shipped_models", "shipped_model_path"]

#: Where the shipped model files live.
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"


def shipped_models() -> dict[str, Path]:
    """name -> path of every model file shipped with the package, sorted by name."""
    if not PRETRAINED_DIR.is_dir():
        return {}
    return {p.stem: p for p in sorted(PRETRAINED_DIR.glob("*.safetensors"))}


def shipped_model_path(name: str) -> Path | None:
    """The file of the shipped model ``name``, or None if there is no such model."""
    return shipped_models().get(name)
