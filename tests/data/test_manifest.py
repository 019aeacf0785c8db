"""Tests for speechattn.data.manifest: Utterance and Manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from speechattn.data.manifest import Manifest, ManifestError, Utterance
from tests.data.manifest_support import sample_manifest

# --------------------------------------------------------------------------- Utterance / Manifest

def test_utterance_hashable_and_extra_ignored_in_equality(tmp_path: Path) -> None:
    a = Utterance("x", tmp_path / "x.wav", speaker="s", extra={"gender": "f"})
    b = Utterance("x", tmp_path / "x.wav", speaker="s", extra={"gender": "m"})
    assert a == b and hash(a) == hash(b)
    assert len({a, b}) == 1
    assert Utterance("x", str(tmp_path / "x.wav")).path == tmp_path / "x.wav"  # str coerced to Path
    with pytest.raises(ValueError):
        Utterance("", tmp_path)


def test_manifest_sequence_protocol(tmp_path: Path) -> None:
    m = sample_manifest(tmp_path)
    assert len(m) == 4
    assert [u.id for u in m] == ["a1", "b1", "a2", "n1"] == m.ids
    assert m[0].id == "a1" and m[-1].id == "n1"
    assert m["b1"].speaker == "bob"
    assert isinstance(m[1:3], Manifest) and m[1:3].ids == ["b1", "a2"]
    assert "a2" in m and m[2] in m and "zz" not in m
    assert m.get("zz") is None
    with pytest.raises(KeyError, match="no utterance with id 'zz'"):
        m["zz"]
    assert m == Manifest(list(m)) and m != m[:2]
    assert (m[:2] + m[2:]) == m
    assert "4 utterances, 2 speakers" in repr(m)


def test_manifest_duplicate_ids_rejected(tmp_path: Path) -> None:
    u = Utterance("x", tmp_path / "x.wav")
    with pytest.raises(ManifestError, match="duplicate utterance id 'x'"):
        Manifest([u, u])


def test_speakers_by_speaker_filter_subset(tmp_path: Path) -> None:
    m = sample_manifest(tmp_path)
    assert m.speakers() == ["alice", "bob"]
    groups = m.by_speaker()
    assert list(groups) == ["alice", "bob"]
    assert groups["alice"].ids == ["a1", "a2"]
    assert m.filter(speakers=["bob"]).ids == ["b1"]
    assert m.filter(min_duration=1.0).ids == ["a1", "a2"]  # unknown duration fails bounds
    assert m.filter(max_duration=1.5).ids == ["a1", "b1"]
    assert m.filter(lambda u: u.text is not None, speakers=["alice"]).ids == ["a1"]
    assert m.subset(["a2", "b1"]).ids == ["a2", "b1"]  # order given
    with pytest.raises(KeyError, match="2 ids not in the manifest: 'q', 'r'"):
        m.subset(["a1", "q", "r"])
    assert m.total_duration is None
    assert m[:3].total_duration == pytest.approx(5.0)


def test_check_files_and_with_durations(tmp_path: Path) -> None:
    soundfile.write(str(tmp_path / "a.wav"), np.zeros(8000, dtype="float32"), 16000)
    m = Manifest([Utterance("a", tmp_path / "a.wav"), Utterance("b", tmp_path / "missing.wav")])
    assert m.check_files() == [tmp_path / "missing.wav"]
    assert m[:1].with_durations()[0].duration == pytest.approx(0.5)
    with pytest.raises(ManifestError, match="missing.wav: cannot read audio header for 'b'"):
        m.with_durations()
