"""embed / verify / identify / evaluate on real audio from the data root, through the real CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from speechattn.cli.main import main
from speechattn.data.featcache import extract_features
from speechattn.data.splits import resolve_manifest
from speechattn.inference import SpeakerRecognizer
from speechattn.utils.paths import data_root
from tests.reference_metrics import all_pair_cosine_trials, reference_eer, reference_min_dcf


@pytest.fixture(scope="module")
def audio(fsdd_dir, speechocean_dir, tmp_path_factory):
    """Real recordings: FSDD speakers (8 kHz WAV) and a speechocean762 Ogg (16 kHz)."""
    rec = fsdd_dir / "recordings"
    files = {
        "jackson_a": rec / "0_jackson_0.wav", "jackson_b": rec / "1_jackson_1.wav",
        "nicolas_a": rec / "0_nicolas_0.wav", "theo_a": rec / "2_theo_2.wav",
        "ogg": next(iter(sorted((speechocean_dir / "audio").glob("*/*.ogg")))),
    }
    tmp = tmp_path_factory.mktemp("audio")
    enroll = tmp / "enroll"
    for speaker in ("jackson", "nicolas", "theo"):
        (enroll / speaker).mkdir(parents=True)
        for digit in (3, 4):
            shutil.copy(rec / f"{digit}_{speaker}_3.wav", enroll / speaker)
    bad = tmp / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    files.update(enroll=enroll, bad=bad, tmp=tmp)
    return files


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_embed_writes_npy_and_reports_bad_files(tiny_run, audio):
    run_dir, _ = tiny_run
    out = audio["tmp"] / "emb.npy"
    res = _run("embed", run_dir, audio["jackson_a"], audio["ogg"], audio["bad"], audio["tmp"] / "missing.wav", "-o", out)
    assert res.exit_code == 1  # some files failed, the others were embedded
    assert "broken.wav" in res.output and "missing.wav" in res.output
    assert "2 files done, 2 failed" in res.output
    emb = np.load(out)
    assert emb.shape == (2, 16) and np.isfinite(emb).all()
    assert out.with_suffix(".txt").read_text().splitlines() == [str(audio["jackson_a"]), str(audio["ogg"])]


def test_embed_folder_to_stdout_json_lines(tiny_run, audio):
    run_dir, _ = tiny_run
    res = _run("embed", run_dir, audio["enroll"] / "theo")
    assert res.exit_code == 0
    lines = [json.loads(line) for line in res.output.splitlines() if line.startswith("{")]
    assert len(lines) == 2 and all(len(x["embedding"]) == 16 for x in lines)


def test_verify_prints_score_and_decision(tiny_run, audio):
    run_dir, _ = tiny_run
    res = _run("verify", run_dir, audio["jackson_a"], audio["jackson_b"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)  # stderr has the "speaker model on ... in ..." line
    # the cosine of the Python API's embeddings of the same files, and the run's calibrated threshold
    model = SpeakerRecognizer.from_run(run_dir)  # the command's default device, "auto"
    a, b = (model.embed_file(audio[k]).double().numpy() for k in ("jackson_a", "jackson_b"))
    assert out["score"] == pytest.approx(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)), abs=2e-6)
    assert out["threshold"] == pytest.approx(json.loads((run_dir / "model.json").read_text())["threshold"], abs=1e-6)
    assert out["same_speaker"] == (out["score"] >= out["threshold"])
    res = _run("verify", run_dir, audio["jackson_a"], audio["jackson_b"], "--threshold", "2")
    assert json.loads(res.stdout)["same_speaker"] is False


def test_verify_bad_file_is_one_line_error(tiny_run, audio):
    run_dir, _ = tiny_run
    res = _run("verify", run_dir, audio["jackson_a"], audio["bad"])
    assert res.exit_code == 2 and res.stdout == ""
    errors = [line for line in res.stderr.splitlines() if line.startswith("speechattn: error:")]
    assert len(errors) == 1 and "broken.wav" in errors[0]


def test_identify_against_enrolled_folders(tiny_run, audio):
    run_dir, _ = tiny_run
    res = _run("identify", run_dir, "--enroll", audio["enroll"], audio["jackson_a"], audio["nicolas_a"], audio["bad"])
    assert res.exit_code == 1
    rows = [json.loads(line) for line in res.output.splitlines() if line.startswith("{")]
    assert [r["file"] for r in rows] == [str(audio["jackson_a"]), str(audio["nicolas_a"])]
    for r in rows:
        assert r["speaker"] in {"jackson", "nicolas", "theo"}
        assert r["candidates"][0]["speaker"] == r["speaker"] and len(r["candidates"]) == 3
    assert "enrolled 3 speakers from 6 files" in res.output


def test_evaluate_prints_metrics_and_det(tiny_run, audio):
    run_dir, _ = tiny_run
    det = audio["tmp"] / "det.png"
    res = _run("evaluate", run_dir, "--data", "fsdd:test", "--det", det)
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.stdout)
    assert metrics["utterances"] == 300 and metrics["speakers"] == 6
    # EER and minDCF of all pairs, recomputed from the Python API's embeddings of the same files
    model = SpeakerRecognizer.from_run(run_dir)  # the command's default device, "auto"
    fs = extract_features(resolve_manifest("fsdd:test", data_root()), model.extractor, progress=False)
    scores, target = all_pair_cosine_trials(model.embed_features(fs.feats).double().numpy(),
                                            [str(u.speaker) for u in fs.manifest])
    assert (metrics["trials"], metrics["target_trials"]) == (len(scores), int(target.sum())) == (44850, 7350)
    assert metrics["eer"] == pytest.approx(100.0 * reference_eer(scores, target), abs=1e-3)
    assert metrics["min_dcf"] == pytest.approx(reference_min_dcf(scores, target), abs=1e-3)
    assert det.read_bytes()[:4] == b"\x89PNG"


def test_evaluate_with_trials_file(tiny_run, audio, tmp_path):
    run_dir, _ = tiny_run
    trials = tmp_path / "trials.txt"
    trials.write_text("0_jackson_0 1_jackson_1 target\n0_jackson_0 0_nicolas_0 nontarget\n"
                      "0_theo_0 1_theo_1 target\n1_theo_1 0_nicolas_1 nontarget\n")
    res = _run("evaluate", run_dir, "--data", "fsdd:test", "--trials", trials)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["trials"] == 4


def test_not_a_run_dir(tmp_path):
    res = _run("embed", tmp_path, "x.wav")
    assert res.exit_code == 2 and "config.yaml" in res.output


# ----------------------------------------------------------------------------- long files: windows


def _concatenated(fsdd_dir, speaker: str, path, rate: int = 8000):
    """All recordings of one FSDD speaker end to end (about 2-3 minutes at 8 kHz)."""
    import soundfile as sf

    parts = [sf.read(p, dtype="float32")[0] for p in sorted((fsdd_dir / "recordings").glob(f"*_{speaker}_*.wav"))]
    sf.write(path, np.concatenate(parts), rate, subtype="FLOAT")
    return path


def test_embed_file_shorter_than_the_window_is_the_offline_embedding(tiny_run, audio):
    import torch

    from speechattn.audio import load_audio
    from speechattn.inference import SpeakerRecognizer

    model = SpeakerRecognizer.from_run(tiny_run[0], device="cpu")
    for path in (audio["jackson_a"], audio["ogg"]):
        offline = model.embed(*load_audio(path))
        assert torch.equal(model.embed_file(path), offline)
        duration = load_audio(path)[0].numel() / load_audio(path)[1]
        assert torch.equal(model.embed_file(path, window_seconds=duration + 0.01), offline)


def test_embed_file_streams_long_files_in_windows(tiny_run, fsdd_dir, tmp_path, monkeypatch):
    """A file longer than the window is read block by block (never whole) and embedded window by
    window; the averaged embedding stays close to the whole-file one."""
    import torch

    import speechattn.inference as inference
    import speechattn.inference.speaker as speaker_module
    from speechattn.audio import load_audio

    path = _concatenated(fsdd_dir, "jackson", tmp_path / "long.wav")
    whole_wave, rate = load_audio(path)
    assert whole_wave.numel() / rate > 100
    model = inference.SpeakerRecognizer.from_run(tiny_run[0], device="cpu")
    offline = model.embed(whole_wave, rate)
    sizes = []
    real_embed = model.embed
    monkeypatch.setattr(model, "embed", lambda w, r: sizes.append(w.numel()) or real_embed(w, r))
    monkeypatch.setattr(speaker_module, "load_audio", lambda *a, **k: pytest.fail("read the whole file"))
    windowed = model.embed_file(path, window_seconds=20)
    total = whole_wave.numel()
    assert sum(sizes) == total and len(sizes) == -(-total // (20 * rate))
    assert max(sizes) <= 20 * rate and max(sizes) - min(sizes) < len(sizes)  # equal windows
    cosine = float(torch.nn.functional.cosine_similarity(windowed, offline, dim=0))
    assert cosine > 0.9, cosine
    assert float(windowed.norm()) == pytest.approx(float(offline.norm()), rel=0.3)
    # another speaker's file stays further away than the same speaker's windows
    other = model.embed_file(_concatenated(fsdd_dir, "nicolas", tmp_path / "other.wav"), window_seconds=20)
    assert cosine > float(torch.nn.functional.cosine_similarity(windowed, other, dim=0))
