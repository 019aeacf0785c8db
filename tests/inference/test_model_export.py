"""One model, one file: export a run, load the file (or a shipped name) with the same outputs,
and one-line errors for files that are not model files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from speechattn.cli.main import main
from speechattn.inference import Labeler, SpeakerRecognizer, Transcriber, export_model, load, model_task
from speechattn.models import pretrained
from speechattn.models.files import ModelFileError
from speechattn.models.modelfile import FORMAT_VERSION, HEADER_KEY, ModelHeader, read_header, read_model_file
from tests.ctc_support import tiny_ctc_run
from tests.labeling_support import tiny_label_run


@pytest.fixture(scope="module")
def runs(tiny_run, tmp_path_factory, speechocean_dir) -> dict[str, Path]:
    return {"speaker": tiny_run[0], "labeling": tiny_label_run(tmp_path_factory, speechocean_dir)[0],
            "ctc": tiny_ctc_run(tmp_path_factory)[0]}


@pytest.fixture(scope="module")
def speech(speechocean_dir) -> tuple[torch.Tensor, int]:
    from speechattn.audio import load_audio

    rel = (speechocean_dir / "dev" / "wav.scp").read_text().splitlines()[0].split()[1]
    wave, rate = load_audio(speechocean_dir / rel)
    return wave, rate


def _outputs(predictor, wave: torch.Tensor, rate: int) -> np.ndarray:
    if isinstance(predictor, SpeakerRecognizer):
        return predictor.embed(wave, rate).numpy()
    if isinstance(predictor, Labeler):
        return predictor.label_waveform(wave, rate).posteriors
    feats = predictor.features(wave, rate)
    with predictor.precision():
        return predictor.model(feats[None], torch.tensor([feats.shape[0]]))[0][0].float().numpy()


@pytest.mark.parametrize("task", ["speaker", "labeling", "ctc"])
def test_exported_file_gives_the_runs_outputs(task, runs, speech, tmp_path):
    run = runs[task]
    f32 = export_model(run, tmp_path / "m32.safetensors", dtype="float32", card={"name": "tiny", "licence": "X"})
    f16 = export_model(run, tmp_path / "m16.safetensors", card={"name": "tiny"})
    header = read_header(f32)
    assert header.version == FORMAT_VERSION and header.dtype == "float32" and header.card.licence == "X"
    assert "data" not in header.config and "train" not in header.config and "features" in header.config
    assert header.card.metrics["dev"] is not None  # from the run's metrics.json
    assert read_header(f16).dtype == "float16"
    assert f16.stat().st_size < 0.6 * f32.stat().st_size
    a, b, c = (load(src, device="cpu") for src in (run, f32, f16))
    assert type(a) is type(b) is type(c)
    wave, rate = speech
    ref = _outputs(a, wave, rate)
    np.testing.assert_array_equal(_outputs(b, wave, rate), ref)  # float32: the same weights
    # float16 storage: close, not equal (weights rounded to 11 bits of mantissa)
    assert np.abs(_outputs(c, wave, rate) - ref).max() < 0.05 * max(1.0, np.abs(ref).max())


def test_a_model_file_loads_without_its_run_or_training_code(runs, tmp_path):
    out = export_model(runs["labeling"], tmp_path / "vad.safetensors")
    code = ("import sys; from speechattn.inference import load\n"
            f"m = load({str(out)!r}, device='cpu'); print(type(m).__name__, m.classes)\n"
            "print([n for n in sys.modules if n.startswith(('speechattn.training', 'speechattn.tasks'))])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert done.stdout.splitlines() == ["Labeler ['speech']", "[]"]


def test_a_shipped_name_loads_and_the_cli_takes_it(runs, tmp_path, monkeypatch, good_wavs):
    shipped = tmp_path / "pretrained"
    shipped.mkdir()
    export_model(runs["labeling"], shipped / "tinyvad.safetensors", card={"name": "tinyvad", "licence": "CC BY 4.0"})
    export_model(runs["speaker"], shipped / "tinyspk.safetensors", card={"name": "tinyspk"})
    export_model(runs["ctc"], shipped / "tinyphones.safetensors", card={"name": "tinyphones"})
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", shipped)
    assert isinstance(load("tinyvad"), Labeler) and isinstance(load("tinyspk"), SpeakerRecognizer)
    assert isinstance(load("tinyphones", beam=2), Transcriber) and model_task("tinyphones") == "ctc"
    runner = CliRunner()
    a, b = good_wavs
    for args in (["label", "tinyvad", str(a), "--format", "json"], ["verify", "tinyspk", str(a), str(b)],
                 ["transcribe", "tinyphones", str(a)], ["embed", "tinyspk", str(a)]):
        res = runner.invoke(main, args)
        assert res.exit_code == 0, (args, res.output)
    listing = runner.invoke(main, ["models", "--json"])
    records = [json.loads(line) for line in listing.output.splitlines()]
    assert [r["name"] for r in records] == ["tinyphones", "tinyspk", "tinyvad"]
    assert records[2]["licence"] == "CC BY 4.0" and records[2]["dev"]["f1"] >= 0
    assert records[1]["parameters"] == sum(p.numel() for p in load("tinyspk").model.state_dict().values()
                                           if p.is_floating_point())
    text = runner.invoke(main, ["models"]).output
    assert "tinyvad  [" in text and "licence     CC BY 4.0" in text


@pytest.fixture(scope="module")
def good_wavs(fsdd_dir) -> tuple[Path, Path]:
    rec = fsdd_dir / "recordings"
    return rec / "0_jackson_0.wav", rec / "1_jackson_1.wav"


def test_export_command(runs, tmp_path):
    out = tmp_path / "m.safetensors"
    res = CliRunner().invoke(main, ["export", str(runs["ctc"]), str(out), "--name", "p", "--licence", "L",
                                    "--commit", "abc"])
    assert res.exit_code == 0, res.output
    card = read_model_file(out).card
    assert (card.name, card.licence, card.commit) == ("p", "L", "abc")
    res = CliRunner().invoke(main, ["export", str(runs["ctc"]), str(tmp_path / "m.bin")])
    assert res.exit_code == 2 and ".safetensors" in res.output


def test_errors_are_one_line(runs, tmp_path):
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(ModelFileError, match="not a speechattn model file"):
        read_model_file(foreign)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 40)
    with pytest.raises(ModelFileError, match="not a readable safetensors file"):
        read_model_file(junk)
    newer = tmp_path / "newer.safetensors"
    header = ModelHeader(task="ctc", config={}, info={}, version=FORMAT_VERSION + 1)
    save_file({"w": torch.zeros(2)}, str(newer), metadata={HEADER_KEY: header.to_json()})
    with pytest.raises(ModelFileError, match="newer than this speechattn reads"):
        read_model_file(newer)
    with pytest.raises(FileNotFoundError, match="no such model: not a shipped model name"):
        load("no-such-model")
    with pytest.raises(ValueError, match="not a CTC transcription model"):
        Transcriber.load(runs["speaker"])
    vad = export_model(runs["labeling"], tmp_path / "vad.safetensors")
    with pytest.raises(ValueError, match="not a speaker model"):
        SpeakerRecognizer.load(vad)
    res = CliRunner().invoke(main, ["label", "no-such-model", "x.wav"])
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1
    assert "no-such-model: no such model" in res.output


def test_a_runs_own_weights_file_loads_with_its_folder(runs):
    assert isinstance(load(runs["speaker"] / "model.safetensors", device="cpu"), SpeakerRecognizer)
