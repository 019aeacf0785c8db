"""Manifests and Kaldi data dirs for the tests of speechattn.data's manifest modules."""

from __future__ import annotations

from pathlib import Path

from speechattn.data.manifest import Manifest, Utterance


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
