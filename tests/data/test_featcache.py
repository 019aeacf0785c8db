"""The on-disk feature cache: hits, invalidation, corrupt entries and unreadable files."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import speechattn.data.featcache as featcache
from speechattn.audio import FeatureExtractor
from speechattn.data.featcache import cache_dir, extract_features, perturbed_features
from speechattn.data.manifest import Manifest, Utterance

RATE = 16000


def _write(path: Path, seconds: float, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    sf.write(path, (0.1 * rng.standard_normal(int(seconds * RATE))).astype(np.float32), RATE, subtype="FLOAT")
    return path


@pytest.fixture
def manifest(tmp_path) -> Manifest:
    return Manifest([Utterance(f"u{i}", _write(tmp_path / f"u{i}.wav", 0.3 + 0.1 * i, i)) for i in range(3)])


def _entries(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.safetensors")) if cache.is_dir() else []


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SPEECHATTN_CACHE", str(tmp_path / "elsewhere"))
    assert cache_dir() == tmp_path / "elsewhere"


def test_the_test_session_never_writes_into_the_users_cache():
    assert not cache_dir().is_relative_to(Path.home() / ".cache")


def test_second_extraction_is_served_from_the_cache(cache, manifest, monkeypatch):
    extractor = FeatureExtractor(num_mel_bins=40)
    first = extract_features(manifest, extractor, progress=False)
    assert len(_entries(cache)) == 1
    assert [f.shape[0] for f in first.feats] == [28, 38, 48]  # 25 ms windows every 10 ms

    def no_decoding(*args, **kwargs):
        raise AssertionError("audio decoded although the features are cached")

    monkeypatch.setattr(featcache, "load_audio", no_decoding)
    second = extract_features(manifest, extractor, progress=False)
    assert [u.id for u in second.manifest] == ["u0", "u1", "u2"]
    assert all(torch.equal(a, b) for a, b in zip(first.feats, second.feats))


def test_a_corpus_reached_through_a_symlink_shares_the_entry(cache, manifest, tmp_path, monkeypatch):
    extractor = FeatureExtractor(num_mel_bins=40)
    first = extract_features(manifest, extractor, progress=False)
    link = tmp_path / "link"
    link.symlink_to(tmp_path, target_is_directory=True)
    via_link = Manifest([Utterance(u.id, link / u.path.name) for u in manifest])
    monkeypatch.chdir(tmp_path)
    relative = Manifest([Utterance(u.id, Path(u.path.name)) for u in manifest])

    def no_decoding(*args, **kwargs):
        raise AssertionError("audio decoded although the same files' features are cached")

    monkeypatch.setattr(featcache, "load_audio", no_decoding)
    for other in (via_link, relative):
        again = extract_features(other, extractor, progress=False)
        assert all(torch.equal(a, b) for a, b in zip(first.feats, again.feats))
    assert len(_entries(cache)) == 1


def test_a_rewritten_file_is_never_served_stale(cache, manifest):
    extractor = FeatureExtractor(num_mel_bins=40)
    before = extract_features(manifest, extractor, progress=False)
    path = manifest[1].path
    _write(path, 0.5, seed=99)  # new content, new size
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    after = extract_features(manifest, extractor, progress=False)
    assert len(_entries(cache)) == 2
    assert after.feats[1].shape[0] == 48 != before.feats[1].shape[0]
    assert torch.equal(after.feats[0], before.feats[0])


def test_settings_and_speed_get_their_own_entries(cache, manifest):
    fbank = extract_features(manifest, FeatureExtractor(num_mel_bins=40), progress=False)
    mfcc = extract_features(manifest, FeatureExtractor(kind="mfcc", num_mel_bins=40), progress=False)
    assert fbank.feats[0].shape[1] == 40 and mfcc.feats[0].shape[1] == 13
    fast = extract_features(manifest, FeatureExtractor(num_mel_bins=40), progress=False, speed=1.25)
    assert fast.feats[2].shape[0] < fbank.feats[2].shape[0]
    assert len(_entries(cache)) == 3


@pytest.mark.parametrize(("module", "attr"), [("speechattn", "__version__"), ("torchaudio", "__version__"),
                                              ("torch", "__version__"), ("soundfile", "__libsndfile_version__")])
def test_an_upgrade_gets_new_entries(cache, manifest, monkeypatch, module, attr):
    """A new speechattn, torch, torchaudio or libsndfile may compute other features: never served stale."""
    import importlib

    extractor = FeatureExtractor(num_mel_bins=40)
    key = featcache._key(manifest, extractor, 1.0)
    assert featcache._key(manifest, extractor, 1.0) == key  # stable
    extract_features(manifest, extractor, progress=False)
    monkeypatch.setattr(importlib.import_module(module), attr, "999.0.0-upgraded")
    assert featcache._key(manifest, extractor, 1.0) != key
    extract_features(manifest, extractor, progress=False)
    assert len(_entries(cache)) == 2  # extracted again, under the new key
    monkeypatch.undo()
    assert featcache._key(manifest, extractor, 1.0) == key


def test_a_frontend_edit_gets_new_entries(cache, manifest, monkeypatch):
    extractor = FeatureExtractor(num_mel_bins=40)
    key = featcache._key(manifest, extractor, 1.0)
    versions = featcache.frontend_versions()
    assert set(versions) == {"speechattn", "torch", "torchaudio", "libsndfile", "frontend_source"}
    monkeypatch.setattr(featcache, "_frontend_source_digest", lambda: "edited")
    assert featcache._key(manifest, extractor, 1.0) != key


def test_a_corrupt_entry_is_rebuilt(cache, manifest, caplog):
    extractor = FeatureExtractor(num_mel_bins=40)
    good = extract_features(manifest, extractor, progress=False)
    (entry,) = _entries(cache)
    entry.write_bytes(b"not a safetensors file")
    with caplog.at_level("WARNING"):
        again = extract_features(manifest, extractor, progress=False)
    assert "ignoring unreadable feature cache" in caplog.text and entry.name in caplog.text
    assert all(torch.equal(a, b) for a, b in zip(good.feats, again.feats))
    assert extract_features(manifest, extractor, progress=False).feats[0].shape == good.feats[0].shape


def test_unreadable_files_are_skipped_and_stay_skipped_on_a_cache_hit(cache, manifest, tmp_path, caplog):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....WAVEfmt garbage")
    tiny = _write(tmp_path / "tiny.wav", 0.005, seed=7)  # shorter than one 25 ms frame
    mixed = Manifest([*manifest, Utterance("broken", broken), Utterance("missing", tmp_path / "nope.wav"),
                      Utterance("tiny", tiny)])
    extractor = FeatureExtractor(num_mel_bins=40)
    with caplog.at_level("WARNING"):
        first = extract_features(mixed, extractor, progress=False)
    assert [u.id for u in first.manifest] == ["u0", "u1", "u2"]
    assert set(first.failures) == {"broken", "missing", "tiny"}
    assert "broken.wav" in first.failures["broken"] and "shorter than one frame" in first.failures["tiny"]
    assert "skipped missing" in caplog.text
    second = extract_features(mixed, extractor, progress=False)
    assert [u.id for u in second.manifest] == ["u0", "u1", "u2"] and second.failures == first.failures
    assert len(second.feats) == 3


def test_no_cache_writes_nothing_and_bad_speed_is_refused(cache, manifest):
    extract_features(manifest, FeatureExtractor(num_mel_bins=40), use_cache=False, progress=False)
    assert _entries(cache) == []
    with pytest.raises(ValueError, match="speed must be > 0"):
        extract_features(manifest, FeatureExtractor(num_mel_bins=40), speed=0.0)


def test_perturbed_copies_are_new_speakers(cache, tmp_path):
    manifest = Manifest([Utterance("a", _write(tmp_path / "a.wav", 0.5, 1), speaker="spk1")])
    both = perturbed_features(manifest, FeatureExtractor(num_mel_bins=40), [1.0, 0.8], progress=False)
    assert [u.id for u in both.manifest] == ["a", "a-sp0.8"]
    assert [u.speaker for u in both.manifest] == ["spk1", "spk1-sp0.8"]
    assert both.manifest[1].extra["speed"] == 0.8
    assert both.feats[1].shape[0] > both.feats[0].shape[0]  # slowed down: longer


def _age(path: Path, days: float) -> None:
    t = path.stat().st_mtime - days * 86400
    os.utime(path, (t, t))


def test_a_cache_hit_counts_as_use(cache, manifest):
    extractor = FeatureExtractor(num_mel_bins=40)
    extract_features(manifest, extractor, progress=False)
    (entry,) = _entries(cache)
    _age(entry, 10)
    extract_features(manifest, extractor, progress=False)
    (listed,) = featcache.cache_entries()
    assert listed.path == entry and time.time() - listed.last_used < 60


def test_clear_cache_by_last_use_and_leftovers(cache, manifest):
    old = extract_features(manifest[:1], FeatureExtractor(num_mel_bins=40), progress=False)
    extract_features(manifest, FeatureExtractor(num_mel_bins=40), progress=False)
    first, second = sorted(_entries(cache), key=lambda p: p.stat().st_size)
    _age(first, 30)
    stale_tmp = cache / f".{second.name}.abc.tmp"
    fresh_tmp = cache / f".{second.name}.def.tmp"
    stale_tmp.write_bytes(b"x" * 10)
    fresh_tmp.write_bytes(b"y")
    _age(stale_tmp, 1)
    assert [e.path for e in featcache.cache_entries()] == [first, second]  # least recently used first
    preview = featcache.clear_cache(7, dry_run=True)
    assert {e.path for e in preview} == {first, stale_tmp} and first.exists() and stale_tmp.exists()
    featcache.clear_cache(7)
    assert _entries(cache) == [second] and not stale_tmp.exists() and fresh_tmp.exists()
    assert old.feats  # what was loaded stays usable
    featcache.clear_cache()
    assert _entries(cache) == []
    with pytest.raises(ValueError, match="unused_days"):
        featcache.clear_cache(-1)

