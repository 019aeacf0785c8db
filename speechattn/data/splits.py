"""Resolve a recipe's data reference into a :class:`~speechattn.data.manifest.Manifest`.

A reference is either

- a path (absolute, or relative to the data root) to a Kaldi-style data directory, a CSV or a
  JSONL manifest, or
- ``CORPUS:SPLIT`` for splits defined on a corpus folder under the data root:
  ``fsdd:train`` / ``fsdd:test`` (the dataset's official split: recordings with index 0-4
  are the test set, 5-49 the training set) and ``fsdd:all``.
"""

from __future__ import annotations

from pathlib import Path

from speechattn.data.corpora import fsdd_manifest
from speechattn.data.manifest import Manifest, ManifestError
from speechattn.data.manifest_io import load_manifest

__all__ = ["resolve_manifest", "fsdd_split"]


def fsdd_split(root: Path, split: str) -> Manifest:
    """Free Spoken Digit Dataset split: ``train`` (index >= 5), ``test`` (index < 5) or ``all``."""
    if split not in ("train", "test", "all"):
        raise ManifestError(f"fsdd: unknown split {split!r} (use train, test or all)")
    manifest = fsdd_manifest(root / "fsdd")
    if split == "all":
        return manifest
    return manifest.filter(lambda u: (u.extra["index"] < 5) == (split == "test"))


_CORPUS_SPLITS = {"fsdd": fsdd_split}


def resolve_manifest(reference: str, root: str | Path) -> Manifest:
    """Manifest for ``reference`` (see the module docstring) under data root ``root``."""
    root = Path(root)
    corpus, sep, split = reference.partition(":")
    if sep and corpus in _CORPUS_SPLITS and not Path(reference).exists():
        return _CORPUS_SPLITS[corpus](root, split)
    path = Path(reference).expanduser()
    if not path.is_absolute():
        path = root / path
    if not path.exists():
        raise ManifestError(f"{path}: data not found (data root is {root}; set SPEECHATTN_DATA or data.root)")
    return load_manifest(path)
