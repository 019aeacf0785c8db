"""Tests for speechattn.data.kaldi: reading Kaldi-style data directories."""

from __future__ import annotations

from pathlib import Path

import pytest

from speechattn.data.kaldi import read_kaldi_dir
from speechattn.data.manifest import ManifestError
from speechattn.data.manifest_io import load_manifest
from tests.data.manifest_support import make_kaldi_dir, write

# --------------------------------------------------------------------------- Kaldi

def test_read_kaldi_dir(tmp_path: Path) -> None:
    d = make_kaldi_dir(tmp_path)
    m = read_kaldi_dir(d)
    assert m.ids == ["u1", "u2", "u3"]
    corpus = (tmp_path / "corpus").absolute()
    assert m["u1"].path == corpus / "audio/s1/u1.wav"  # relative to the dir's parent
    assert m["u3"].path == Path("/abs/elsewhere/u3.wav")  # absolute kept
    assert m["u1"].text == "HELLO WORLD"
    assert m["u2"].text == ""  # empty transcript is allowed
    assert m["u3"].speaker == "s2"
    assert m["u1"].extra == {"gender": "f", "age": 25}
    assert m["u3"].extra == {"gender": "m", "age": 7}
    assert m.speakers() == ["s1", "s2"]
    other = read_kaldi_dir(d, audio_root=tmp_path / "elsewhere")
    assert other["u1"].path == tmp_path / "elsewhere" / "audio/s1/u1.wav"


def test_read_kaldi_dir_optional_files(tmp_path: Path) -> None:
    d = make_kaldi_dir(tmp_path, text=None, spk2gender=None, spk2age=None, utt2dur="u1 1.5\nu2 2\nu3 0.25\n")
    m = read_kaldi_dir(d)
    assert m["u1"].text is None and m["u1"].extra == {}
    assert [u.duration for u in m] == [1.5, 2.0, 0.25]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"wav.scp": "u1 a.wav\nu2 sox b.wav -t wav - |\nu3 c.wav\n"}, r"wav.scp:2: piped commands are not supported"),
        ({"wav.scp": "u1 a.wav\nu2 a b.wav\nu3 c.wav\n"}, r"wav.scp:2: expected a single audio path for 'u2'"),
        ({"wav.scp": "u1 a.wav\nu2 b.wav\nu3\n"}, r"wav.scp:3: expected '<key> <value>', got 'u3'"),
        ({"wav.scp": "u1 a.wav\nu2 b.wav\nu1 c.wav\n"}, r"wav.scp:3: duplicate key 'u1' \(first on line 1\)"),
        ({"wav.scp": "u1 a.wav\nu2 feats.ark:1234\nu3 c.wav\n"}, r"wav.scp:2: ark offsets are not supported"),
        ({"utt2spk": "u1 s1\nu3 s2\n"}, r"utt2spk: no speaker for utterance 'u2' \(wav.scp line 2\)"),
        ({"utt2spk": "u1 s1\nu2 s1\nu3 s2\nu9 s2\n"}, r"utt2spk:4: utterance 'u9' is not in wav.scp"),
        ({"utt2spk": "u1 s1\nu2 s1 extra\nu3 s2\n"}, r"utt2spk:2: expected '<utterance> <speaker>'"),
        ({"text": "u1 A\nu3 B\n"}, r"text: no transcript for utterance 'u2' \(wav.scp line 2\)"),
        ({"spk2age": "s1 25\ns2\n"}, r"spk2age:2: expected '<key> <value>', got 's2'"),
        ({"utt2dur": "u1 1\nu2 fast\nu3 1\n"}, r"utt2dur:2: duration must be a number, got 'fast'"),
        ({"utt2dur": "u1 1\nu2 -1\nu3 1\n"}, r"utt2dur:2: duration must be a finite number >= 0"),
    ],
)
def test_read_kaldi_dir_errors(tmp_path: Path, overrides: dict[str, str], message: str) -> None:
    d = make_kaldi_dir(tmp_path, **overrides)
    with pytest.raises(ManifestError, match=message) as info:
        read_kaldi_dir(d)
    assert str(d) in str(info.value)  # names the file


def test_read_kaldi_dir_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="not a directory"):
        read_kaldi_dir(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match=r"not a Kaldi data directory \(no wav.scp\)"):
        read_kaldi_dir(tmp_path / "empty")
    d = make_kaldi_dir(tmp_path, utt2spk=None)
    with pytest.raises(ManifestError, match="missing utt2spk"):
        read_kaldi_dir(d)
    write(d / "utt2spk", "u1 s1\nu2 s1\nu3 s2\n")
    write(d / "segments", "seg1 u1 0.0 1.0\n")
    with pytest.raises(ManifestError, match="segment files are not supported"):
        read_kaldi_dir(d)


# --------------------------------------------------------------------------- real data

@pytest.mark.corpus
def test_real_speechocean_train(speechocean_dir: Path) -> None:
    m = read_kaldi_dir(speechocean_dir / "train")
    assert len(m) == 2500
    assert len(m.speakers()) == 125
    assert m.check_files() == []
    u = m["000010011"]
    assert u.speaker == "0001" and u.text == "WE CALL IT BEAR"
    assert u.path == speechocean_dir.absolute() / "audio/SPEAKER0001/000010011.ogg"
    assert u.extra == {"gender": "m", "age": 6}
    assert all(len(g) == 20 for g in m.by_speaker().values())


@pytest.mark.corpus
def test_real_speechocean_dev_is_disjoint(speechocean_dir: Path) -> None:
    dev = load_manifest(speechocean_dir / "dev")
    assert len(dev) == 1260 and len(dev.speakers()) == 63
    train = read_kaldi_dir(speechocean_dir / "train")
    assert not set(dev.speakers()) & set(train.speakers())
