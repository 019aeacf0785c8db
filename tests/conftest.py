"""Shared fixtures: the data root with the real corpora, and small generated audio."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from speechattn.paths import ENV_VAR, data_root

torch.set_num_threads(2)


def _corpus(name: str) -> Path:
    root = data_root()
    path = root / name
    if not path.is_dir():
        pytest.skip(f"corpus {name!r} not found under data root {root} (set {ENV_VAR}=../shared/data)")
    return path


@pytest.fixture(scope="session")
def speechocean_dir() -> Path:
    """``<data root>/speechocean762`` (Kaldi-style ``train/`` and ``dev/``), or skip."""
    return _corpus("speechocean762")


@pytest.fixture(scope="session")
def fsdd_dir() -> Path:
    """``<data root>/fsdd`` (``recordings/DIGIT_SPEAKER_INDEX.wav``), or skip."""
    return _corpus("fsdd")


@pytest.fixture(scope="session")
def noise_dir() -> Path:
    """``<data root>/noise`` (FLAC background noise), or skip."""
    return _corpus("noise")
