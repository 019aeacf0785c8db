"""Tests for speechattn.data.manifest: Utterance, Manifest, readers and writers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from speechattn.data.manifest import (
    Manifest,
    ManifestError,
    Utterance,
    load_manifest,
    read_csv_manifest,
    read_json_manifest,
    read_jsonl_manifest,
    read_kaldi_dir,
    write_csv_manifest,
    write_jsonl_manifest,
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def make_kaldi_dir(root: Path, **overrides: str) -> Path:
    """``root/corpus/train`` with wav paths relative to ``root/corpus``."""
    d = root / "corpus" / "train"
    files = {
        "wav.scp": "u1 audio/s1/u1.wav\nu2\taudio/s1/u2.wav\n\nu3 /abs/elsewhere/u3.wav\n",
        "utt2spk": "u1 s1\nu2 s1\nu3 s2\n",
        "text": "u1 HELLO WORLD\nu2 \nu3 ONE TWO\n",
        "spk2gender": "s1 f\ns2 m\n",
        "spk2age": "s1 25\ns2 7\n",
    }
    files.update(overrides)
    for name, text in files.items():
        if text is not None:
            write(d / name, text)
    return d


def sample_manifest(base: Path) -> Manifest:
    return Manifest(
        [
            Utterance("a1", base / "a1.wav", speaker="alice", text="HI", duration=1.5, extra={"gender": "f"}),
            Utterance("b1", base / "b1.wav", speaker="bob", text="YES", duration=0.5),
            Utterance("a2", base / "sub" / "a2.wav", speaker="alice", duration=3.0, extra={"age": 30, "tags": ["x"]}),
            Utterance("n1", base / "n1.wav"),
        ]
    )


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


# --------------------------------------------------------------------------- CSV

def test_read_csv_manifest(tmp_path: Path) -> None:
    f = write(
        tmp_path / "lists" / "m.csv",
        "id,path,speaker,text,duration,gender\n"
        "a,wavs/a.wav,s1,HELLO,1.25,f\n"
        "\n"
        'b,/abs/b.wav,,"ONE, TWO",,\n',
    )
    m = read_csv_manifest(f)
    assert m.ids == ["a", "b"]
    assert m["a"].path == (tmp_path / "lists" / "wavs" / "a.wav").absolute()
    assert m["a"].duration == 1.25 and m["a"].extra == {"gender": "f"}
    assert m["b"].path == Path("/abs/b.wav")
    assert m["b"].speaker is None and m["b"].duration is None and m["b"].text == "ONE, TWO"
    assert m["b"].extra == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id,speaker\na,s\n", r"m.csv:1: missing column 'path'"),
        ("", r"m.csv:1: empty file"),
        ("id,path,duration\na,a.wav,1\nb,b.wav,slow\n", r"m.csv:3: duration must be a number, got 'slow'"),
        ("id,path\na,a.wav\nb,b.wav,extra\n", r"m.csv:3: 3 fields, header has 2"),
        ("id,path,speaker\na,a.wav,s\nb,b.wav\n", r"m.csv:3: 2 fields, header has 3"),
        ("id,path\na,a.wav\n,b.wav\n", r"m.csv:3: missing 'id'"),
        ("id,path\na,a.wav\nb,\n", r"m.csv:3: missing 'path'"),
        ("id,path\na,a.wav\nb,b.wav\na,c.wav\n", r"m.csv:4: duplicate id 'a' \(first on line 2\)"),
    ],
)
def test_read_csv_errors(tmp_path: Path, text: str, message: str) -> None:
    f = write(tmp_path / "m.csv", text)
    with pytest.raises(ManifestError, match=message):
        read_csv_manifest(f)


def test_csv_round_trip(tmp_path: Path) -> None:
    m = sample_manifest(tmp_path / "out")
    f = write_csv_manifest(m, tmp_path / "out" / "m.csv")
    header = f.read_text().splitlines()[0]
    assert header == "id,path,speaker,text,duration,age,gender,tags"
    assert "sub/a2.wav" in f.read_text()  # relative below the manifest's folder
    back = read_csv_manifest(f)
    assert back == m
    assert back["a2"].extra == {"age": "30", "tags": '["x"]'}  # CSV extras read back as strings


# --------------------------------------------------------------------------- JSON lines / JSON

def test_jsonl_round_trip(tmp_path: Path) -> None:
    m = sample_manifest(tmp_path / "data")
    m = m + Manifest([Utterance("far", Path("/abs/far.wav"), text="")])
    f = write_jsonl_manifest(m, tmp_path / "data" / "m.jsonl")
    first = json.loads(f.read_text().splitlines()[0])
    assert first == {"id": "a1", "path": "a1.wav", "speaker": "alice", "text": "HI", "duration": 1.5, "gender": "f"}
    back = read_jsonl_manifest(f)
    assert back == m
    assert [u.extra for u in back] == [u.extra for u in m]
    assert back["far"].path == Path("/abs/far.wav") and back["far"].text == ""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"id": "a", "path": "a.wav"}\n{"id": "b", "path": \n', r"m.jsonl:2: invalid JSON"),
        ('{"id": "a", "path": "a.wav"}\n\n[1, 2]\n', r"m.jsonl:3: expected a JSON object, got list"),
        ('{"id": "a"}\n', r"m.jsonl:1: missing 'path'"),
        ('{"id": 3, "path": "a.wav"}\n', r"m.jsonl:1: 'id' must be a string, got 3"),
        ('{"id": "a", "path": "a.wav", "speaker": 7}\n', r"m.jsonl:1: 'speaker' must be a string, got 7"),
        ('{"id": "a", "path": "a.wav", "duration": "x"}\n', r"m.jsonl:1: duration must be a number, got 'x'"),
        ('{"id": "a", "path": "a.wav", "duration": true}\n', r"m.jsonl:1: duration must be a number, got True"),
        ('{"id": "a", "path": "a.wav"}\n{"id": "a", "path": "b.wav"}\n', r"m.jsonl:2: duplicate id 'a' \(first on line 1\)"),
    ],
)
def test_read_jsonl_errors(tmp_path: Path, text: str, message: str) -> None:
    f = write(tmp_path / "m.jsonl", text)
    with pytest.raises(ManifestError, match=message):
        read_jsonl_manifest(f)


def test_read_json_list_and_mapping(tmp_path: Path) -> None:
    f = write(tmp_path / "l.json", json.dumps([{"id": "a", "path": "a.wav", "lang": "en"}]))
    m = read_json_manifest(f)
    assert m["a"].path == (tmp_path / "a.wav").absolute() and m["a"].extra == {"lang": "en"}
    g = write(tmp_path / "d.json", json.dumps({"a": {"path": "a.wav", "speaker": "s"}}))
    assert read_json_manifest(g)["a"].speaker == "s"
    h = write(tmp_path / "bad.json", json.dumps([{"id": "a", "path": "a.wav"}, 3]))
    with pytest.raises(ManifestError, match=r"bad.json: item 1: expected a JSON object, got int"):
        read_json_manifest(h)
    j = write(tmp_path / "lines.json", '{"id": "a", "path": "a.wav"}\n{"id": "b", "path": "b.wav"}\n')
    assert read_json_manifest(j).ids == ["a", "b"]  # JSON lines in a .json file


def test_load_manifest_dispatch(tmp_path: Path) -> None:
    d = make_kaldi_dir(tmp_path)
    assert load_manifest(d).ids == ["u1", "u2", "u3"]
    m = sample_manifest(tmp_path)
    assert load_manifest(write_csv_manifest(m, tmp_path / "m.csv")) == m
    assert load_manifest(write_jsonl_manifest(m, tmp_path / "m.jsonl")) == m
    write(tmp_path / "m.json", json.dumps([{"id": "a", "path": "a.wav"}]))
    assert load_manifest(tmp_path / "m.json").ids == ["a"]
    with pytest.raises(ManifestError, match=r"unknown manifest format '.txt'"):
        load_manifest(write(tmp_path / "m.txt", ""))
    with pytest.raises(ManifestError, match="a directory without wav.scp"):
        load_manifest(tmp_path)
    with pytest.raises(ManifestError, match="no such file or directory"):
        load_manifest(tmp_path / "nope.csv")


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
