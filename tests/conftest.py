"""Shared fixtures: the data root with the real corpora, and small generated audio."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from speechattn.utils.paths import ENV_VAR, data_root

# 2 threads (the CI machine's cores); SPEECHATTN_TEST_THREADS=1 on a machine busy with other jobs,
# where a 2-thread process spends most of its time waiting for its descheduled second thread.
torch.set_num_threads(int(os.environ.get("SPEECHATTN_TEST_THREADS", "2")))


@pytest.fixture(scope="session", autouse=True)
def _private_feature_cache(tmp_path_factory):
    """Point ``$SPEECHATTN_CACHE`` at a temporary folder for the whole session.

    Tests extract features from files they generate under fresh temporary paths, so each run
    would leave new, never reused entries in the user's ``~/.cache/speechattn``.
    """
    mp = pytest.MonkeyPatch()
    mp.setenv("SPEECHATTN_CACHE", str(tmp_path_factory.mktemp("speechattn-cache")))
    yield
    mp.undo()


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty feature cache of the test's own; returns its ``features/`` folder."""
    monkeypatch.setenv("SPEECHATTN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "features"


def _corpus(name: str) -> Path:
    root = data_root()
    path = root / name
    if not path.is_dir():
        pytest.skip(f"corpus {name!r} not found under data root {root} (set {ENV_VAR}=../shared/data)")
    # Absolute: tests write file lists and symlinks into temporary folders, where a relative
    # data root (SPEECHATTN_DATA=../shared/data) would point nowhere.
    return path.absolute()


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


#: Overrides that turn recipes/speaker_fsdd.yaml into a seconds-long run on 120 recordings.
TINY_SPEAKER = [
    "model.encoder.d_model=32", "model.encoder.num_heads=2", "model.encoder.num_layers=1",
    "model.encoder.ffn_dim=64", "model.embed_dim=16", "data.max_train_utterances=120",
    "data.max_dev_utterances=60", "train.batch_size=16", "train.max_epochs=2", "train.eval_every=1",
    "train.max_minutes=null", "train.precision=fp32", "train.warmup_steps=2",
]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, fsdd_dir):
    """(run_dir, summary) of a speaker model trained for two epochs on 120 FSDD recordings."""
    from speechattn.tasks import train_recipe

    run_dir = tmp_path_factory.mktemp("runs") / "fsdd"
    summary = train_recipe(Path(__file__).parent.parent / "recipes" / "speaker_fsdd.yaml", TINY_SPEAKER,
                           run_dir=run_dir, progress=False)
    return run_dir, summary


@pytest.fixture
def restore_cli_logging() -> Iterator[None]:
    """The CLI configures the ``speechattn`` logger; undo it after the test (CLI test modules
    use it for every test: ``pytestmark = pytest.mark.usefixtures("restore_cli_logging")``)."""
    logger = logging.getLogger("speechattn")
    saved = (logger.level, list(logger.handlers), logger.propagate)
    yield
    logger.setLevel(saved[0])
    logger.handlers[:] = saved[1]
    logger.propagate = saved[2]
