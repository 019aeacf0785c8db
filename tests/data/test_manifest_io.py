"""Tests for speechattn.data.manifest_io: CSV and JSON(-lines) readers and writers, load_manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from speechattn.data.manifest import Manifest, ManifestError, Utterance
from speechattn.data.manifest_io import (
    load_manifest,
    read_csv_manifest,
    read_json_manifest,
    read_jsonl_manifest,
    write_csv_manifest,
    write_jsonl_manifest,
)
from tests.data.manifest_support import make_kaldi_dir, sample_manifest, write

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
