"""`speechattn cache info|clear`: the feature cache from the command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from click.testing import CliRunner

from speechattn.audio import FeatureExtractor
from speechattn.cli.main import main
from speechattn.data.featcache import cache_entries, extract_features
from speechattn.data.manifest import Manifest, Utterance


def _one_file_manifest(tmp_path: Path) -> Manifest:
    path = tmp_path / "a.wav"
    sf.write(path, (0.1 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32), 16000)
    return Manifest([Utterance("a", path)])


def _entries() -> list[Path]:
    return [entry.path for entry in cache_entries()]


def test_cache_command_line(cache, tmp_path):
    manifest = _one_file_manifest(tmp_path)
    runner = CliRunner()
    empty = runner.invoke(main, ["cache", "info"])
    assert empty.exit_code == 0 and "0 entries" in empty.output and str(cache) in empty.output
    extract_features(manifest, FeatureExtractor(num_mel_bins=40), progress=False)
    size = _entries()[0].stat().st_size
    info = runner.invoke(main, ["cache", "info"])
    assert info.exit_code == 0 and f"1 entry, {size / 1e6:.1f} MB" in info.output
    kept = runner.invoke(main, ["cache", "clear", "--unused-for", "1"])
    assert kept.exit_code == 0 and "deleted 0 files" in kept.output and len(_entries()) == 1
    dry = runner.invoke(main, ["cache", "clear", "--dry-run"])
    assert "would delete 1 file," in dry.output and len(_entries()) == 1
    assert runner.invoke(main, ["cache", "clear"]).exit_code == 0 and _entries() == []
    bad = runner.invoke(main, ["cache", "clear", "--unused-for", "-2"])
    assert bad.exit_code == 2 and "--unused-for" in bad.output
