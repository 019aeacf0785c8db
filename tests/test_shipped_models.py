"""The models shipped inside the package: present, loadable by name, and right on real audio;
and a wheel built from this tree works from a clean folder with no data root, run or network."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechattn.models.modelfile import read_header
from speechattn.models.pretrained import shipped_models

ROOT = Path(__file__).resolve().parent.parent
NAMES = {"vad": "labeling", "speaker": "speaker", "phones": "ctc"}


def test_the_three_models_ship_with_cards():
    shipped = shipped_models()
    assert sorted(shipped) == sorted(NAMES)
    total = sum(p.stat().st_size for p in shipped.values())
    assert total < 30e6, f"shipped models take {total / 1e6:.1f} MB"
    for name, path in shipped.items():
        header = read_header(path)
        assert header.task in (NAMES[name], "frame_labels")
        card = header.card
        assert card.name == name and card.licence and card.data and card.commit and card.command
        assert card.metrics["dev"], name


def _speech(speechocean_dir: Path, index: int = 0) -> Path:
    rel = (speechocean_dir / "dev" / "wav.scp").read_text().splitlines()[index].split()[1]
    return speechocean_dir / rel


def test_vad_finds_real_speech_and_not_silence(speechocean_dir):
    import speechattn

    vad = speechattn.load("vad", device="cpu")
    wave, rate = sf.read(_speech(speechocean_dir), dtype="float32")
    pad = np.zeros(3 * rate, dtype=np.float32)
    result = vad.label_waveform(__import__("torch").from_numpy(np.concatenate([pad, wave, pad])), rate)
    speech = sum(s.end - s.start for s in result.segments)
    assert result.segments, "no speech found in a read sentence"
    assert 3.0 - 0.5 <= result.segments[0].start and result.segments[-1].end <= 3.0 + len(wave) / rate + 0.5
    assert speech > 0.5 * len(wave) / rate


def test_speaker_scores_same_speaker_above_other_speakers(fsdd_dir):
    import speechattn

    model = speechattn.load("speaker", device="cpu")
    rec = fsdd_dir / "recordings"
    speakers = ["jackson", "nicolas", "theo", "yweweler", "george", "lucas"]
    emb = {(s, i): model.embed_file(rec / f"{i}_{s}_{i}.wav") for s in speakers for i in (1, 2, 3)}
    same = [model.score(emb[(s, 1)], emb[(s, j)]) for s in speakers for j in (2, 3)]
    other = [model.score(emb[(s, 1)], emb[(t, 2)]) for s in speakers for t in speakers if t != s]
    # digits at 8 kHz are out of domain; still, a model that learned nothing ranks at chance
    assert np.mean(same) > np.mean(other) + 0.1


def test_phones_transcribes_real_speech_far_better_than_chance(speechocean_dir):
    import speechattn
    from speechattn.metrics.errors import edit_ops
    from speechattn.text.lexicon import Lexicon

    model = speechattn.load("phones", device="cpu")
    lexicon = Lexicon.read(speechocean_dir / "lexicon.txt", strip_stress=True)
    texts = dict(line.split(maxsplit=1) for line in (speechocean_dir / "dev" / "text").read_text().splitlines())
    wavs = [line.split() for line in (speechocean_dir / "dev" / "wav.scp").read_text().splitlines()[:20]]
    errors = length = 0
    for utt, rel in wavs:
        ref = [p for w in texts[utt].split() for p in lexicon.pronunciation(w)]
        hyp = model.transcribe_file(speechocean_dir / rel).text.split()
        errors += sum(edit_ops(ref, hyp))
        length += len(ref)
    # an empty output scores 100 %; the shipped model's dev PER is near 40 %
    assert errors / length < 0.6


@pytest.mark.skipif(not shipped_models(), reason="no shipped models in this tree")
def test_a_wheel_works_from_a_clean_folder_with_no_data_root(tmp_path):
    """pip wheel . -> pip install --target: label vad, verify speaker, transcribe phones on
    generated audio, with SPEECHATTN_DATA unset, from a folder with no runs, importing the
    installed copy (not this tree)."""
    dist, site, work = tmp_path / "dist", tmp_path / "site", tmp_path / "work"
    work.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist),
                    str(ROOT)], check=True, capture_output=True)
    wheel = next(dist.glob("speechattn-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    rate = 16000
    t = np.arange(2 * rate) / rate
    tone = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2).astype(np.float32)
    for name, wave in (("a.wav", tone), ("b.wav", np.roll(tone, 1000))):
        sf.write(work / name, wave, rate)
    env = {k: v for k, v in os.environ.items() if k not in ("SPEECHATTN_DATA", "PYTHONPATH")}
    env["PYTHONPATH"] = str(site)
    where = subprocess.run([sys.executable, "-c", "import speechattn; print(speechattn.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(str(site)), where

    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "speechattn.cli.main", *args], cwd=work, env=env,
                              capture_output=True, text=True)
        assert done.returncode == 0, (args, done.stderr)
        return done.stdout

    assert "speaker" in cli("models")
    label = json.loads(cli("label", "vad", "a.wav", "--format", "json"))
    assert label["file"] == "a.wav" and label["classes"] == ["speech"]
    verdict = json.loads(cli("verify", "speaker", "a.wav", "b.wav"))
    assert -1.0 <= verdict["score"] <= 1.0 and "same_speaker" in verdict
    assert cli("transcribe", "phones", "a.wav").startswith("a.wav\t")
    # the shipped VAD from Python, as a base install would: no training or plotting library loaded
    code = ("import sys, speechattn\n"
            "r = speechattn.load('vad').label_file('a.wav')\n"
            "print(sorted(m for m in ('tensorboard', 'matplotlib', 'webdataset') if m in sys.modules))\n"
            "print(sorted({m.split('.')[1] for m in sys.modules if m.startswith(('speechattn.training', "
            "'speechattn.tasks'))}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True, check=True)
    assert done.stdout.split("\n")[:2] == ["[]", "[]"]
    assert wheel.stat().st_size < 40e6
