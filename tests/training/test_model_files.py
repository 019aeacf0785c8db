"""A run's model is one unit (weights + metadata in model.safetensors), loaded safely.

- a crash while saving never pairs the weights of one evaluation with the metadata of another;
- runs written before (model.safetensors + model.json) still load;
- wrong shapes, missing / unexpected tensors, corrupt metadata and pickled code in
  ``checkpoints/last.pt`` are one-line errors naming the file (and the tensor), also on the
  command line (``speechattn: error: ...``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open
from safetensors.torch import save_file

import speechattn.models.files as model_files
from speechattn.audio import save_audio
from speechattn.cli.main import main
from speechattn.inference import load_run_model
from speechattn.models.files import ModelFileError, load_model, load_weights, save_model
from speechattn.training.checkpoint import CheckpointError, load_state, save_state
from tests.utils.test_device import write_untrained_run

TASKS = ("speaker", "labeling", "ctc")
WHAT = {"speaker": "speaker model", "labeling": "frame-labeling model", "ctc": "CTC model"}


def _from_run(task: str, run_dir: Path) -> Any:
    if task == "labeling":
        from speechattn.inference import Labeler

        return Labeler.from_run(run_dir, device="cpu")
    if task == "ctc":
        from speechattn.inference import Transcriber

        return Transcriber.from_run(run_dir, device="cpu")
    from speechattn.inference import SpeakerRecognizer

    return SpeakerRecognizer.from_run(run_dir, device="cpu")


def _module(task: str, loaded: Any) -> torch.nn.Module:
    return loaded.embedder if task == "speaker" else loaded.model


def _legacy_info(run_dir: Path, task: str) -> dict[str, Any]:
    info = json.loads((run_dir / "model.json").read_text())
    info.setdefault("task", task)
    return info


@pytest.fixture(scope="module")
def legacy_runs(tmp_path_factory) -> dict[str, Path]:
    """Untrained tiny runs in the old layout: model.safetensors without metadata + model.json."""
    base = tmp_path_factory.mktemp("legacy_runs")
    return {task: write_untrained_run(base / task, task) for task in TASKS}


def _copy_run(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for name in ("config.yaml", "model.safetensors", "model.json"):
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


def _unit_run(legacy: Path, dst: Path, task: str, epoch: int, scale: float = 1.0) -> tuple[Path, dict[str, Any]]:
    """A copy of ``legacy`` saved by save_model (the unit), weights scaled, metadata marked ``epoch``."""
    _copy_run(legacy, dst)
    weights = {k: v * scale if v.is_floating_point() else v for k, v in load_weights(legacy / "model.safetensors").items()}
    info = {**_legacy_info(legacy, task), "dev_metrics": {"epoch": epoch}}
    save_model(weights, info, dst)
    return dst, weights


# ----------------------------------------------------------------------------- one unit


def test_save_model_puts_the_metadata_in_the_safetensors_header(legacy_runs, tmp_path):
    run_dir, weights = _unit_run(legacy_runs["speaker"], tmp_path / "run", "speaker", epoch=3)
    with safe_open(str(run_dir / "model.safetensors"), framework="pt") as f:
        header = f.metadata()
    info = json.loads(header["speechattn.model_info"])
    assert info["dev_metrics"] == {"epoch": 3} and info["task"] == "speaker"
    assert json.loads((run_dir / "model.json").read_text()) == info  # the readable copy
    loaded, meta, source = load_model(run_dir)
    assert meta == info and source == run_dir / "model.safetensors"
    assert all(torch.equal(loaded[k], weights[k]) for k in weights)
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]


def test_the_same_model_gives_the_same_bytes(legacy_runs, tmp_path):
    """Reproducible artifacts: the header holds one metadata key (safetensors writes several in
    hash-map order, different from one process to the next)."""
    script = (
        "import sys, json, torch; from speechattn.models.files import save_model; "
        "torch.manual_seed(0); save_model({'w': torch.randn(4, 3), 'b': torch.zeros(3)}, "
        "{'task': 'speaker', 'threshold': 0.5, 'dev_metrics': {'eer': 1.0}}, sys.argv[1])"
    )
    for name in ("a", "b"):
        subprocess.run([sys.executable, "-c", script, str(tmp_path / name)], check=True)
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()


@pytest.mark.parametrize("task", TASKS)
def test_a_crash_between_the_two_writes_keeps_a_consistent_model(legacy_runs, tmp_path, monkeypatch, task):
    run_dir, old = _unit_run(legacy_runs[task], tmp_path / "run", task, epoch=1)
    new = {k: v * 2.0 + 0.5 if v.is_floating_point() else v for k, v in old.items()}
    new_info = {**_legacy_info(legacy_runs[task], task), "dev_metrics": {"epoch": 2}}

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash")

    # 1. A crash while writing the weights: the previous model stays whole.
    monkeypatch.setattr(model_files, "save_file", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        save_model(new, new_info, run_dir)
    monkeypatch.undo()
    run = load_run_model(run_dir, task, WHAT[task])
    assert run.info["dev_metrics"] == {"epoch": 1}
    module = _module(task, _from_run(task, run_dir))
    assert all(torch.equal(module.state_dict()[k], old[k]) for k in old)

    # 2. A crash after the weights, before model.json: the new weights come with their own
    # metadata, although model.json still shows the previous evaluation.
    monkeypatch.setattr(model_files, "write_json", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        save_model(new, new_info, run_dir)
    monkeypatch.undo()
    assert json.loads((run_dir / "model.json").read_text())["dev_metrics"] == {"epoch": 1}
    run = load_run_model(run_dir, task, WHAT[task])
    assert run.info["dev_metrics"] == {"epoch": 2}
    module = _module(task, _from_run(task, run_dir))
    assert all(torch.equal(module.state_dict()[k], new[k]) for k in new)
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("task", TASKS)
def test_runs_written_before_still_load(legacy_runs, task):
    run = load_run_model(legacy_runs[task], task, WHAT[task])
    assert run.info_path == legacy_runs[task] / "model.json"
    loaded = _from_run(task, legacy_runs[task])
    weights = load_weights(legacy_runs[task] / "model.safetensors")
    assert all(torch.equal(_module(task, loaded).state_dict()[k], weights[k]) for k in weights)


def test_the_unit_wins_over_a_stale_model_json(legacy_runs, tmp_path):
    run_dir, _ = _unit_run(legacy_runs["speaker"], tmp_path / "run", "speaker", epoch=1)
    info = json.loads((run_dir / "model.json").read_text())
    (run_dir / "model.json").write_text(json.dumps({**info, "threshold": 0.987}))
    assert _from_run("speaker", run_dir).threshold == pytest.approx(info["threshold"])
    (run_dir / "model.json").write_text("{ not json")  # not read at all
    assert _from_run("speaker", run_dir).threshold == pytest.approx(info["threshold"])


def test_the_trainer_saves_the_unit(tiny_run):
    run_dir, _ = tiny_run
    _, info, source = load_model(run_dir)
    assert source == run_dir / "model.safetensors"
    assert info == json.loads((run_dir / "model.json").read_text())
    assert info["task"] == "speaker" and "threshold" in info


# ----------------------------------------------------------------------------- bad model files


def _one_line_error(exc: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(exc.value)
    assert "\n" not in text, text
    return text


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("layout", ["unit", "legacy"])
def test_a_wrong_shape_names_the_tensor_and_the_file(legacy_runs, tmp_path, task, layout):
    run_dir = _copy_run(legacy_runs[task], tmp_path / "run")
    weights = load_weights(run_dir / "model.safetensors")
    name = next(k for k, v in weights.items() if v.dim() == 2)
    weights[name] = torch.zeros(weights[name].shape[0] + 1, weights[name].shape[1])
    if layout == "unit":
        save_model(weights, _legacy_info(run_dir, task), run_dir)
    else:
        save_file(weights, str(run_dir / "model.safetensors"))
    with pytest.raises(ModelFileError) as exc:
        _from_run(task, run_dir)
    text = _one_line_error(exc)
    assert str(run_dir / "model.safetensors") in text and repr(name) in text and "shape" in text, text


@pytest.mark.parametrize("task", TASKS)
def test_missing_and_unexpected_tensors_name_the_tensor(legacy_runs, tmp_path, task):
    weights = load_weights(legacy_runs[task] / "model.safetensors")
    dropped = sorted(weights)[-1]
    missing = {k: v for k, v in weights.items() if k != dropped}
    extra = {**weights, "head.surprise": torch.zeros(3)}
    for i, (bad, word, name) in enumerate([(missing, "missing", dropped), (extra, "unexpected", "head.surprise")]):
        run_dir = _copy_run(legacy_runs[task], tmp_path / f"run{i}")
        save_model(bad, _legacy_info(run_dir, task), run_dir)
        with pytest.raises(ModelFileError) as exc:
            _from_run(task, run_dir)
        text = _one_line_error(exc)
        assert word in text and repr(name) in text and str(run_dir / "model.safetensors") in text, text


@pytest.mark.parametrize("task", TASKS)
def test_corrupt_metadata_is_named(legacy_runs, tmp_path, task):
    # model.json of an older run
    run_dir = _copy_run(legacy_runs[task], tmp_path / "legacy")
    (run_dir / "model.json").write_text('{"threshold": 0.5, "classes": [')
    with pytest.raises(ModelFileError) as exc:
        _from_run(task, run_dir)
    assert str(run_dir / "model.json") in _one_line_error(exc) and "corrupt" in str(exc.value)
    # the header of the unit
    run_dir = _copy_run(legacy_runs[task], tmp_path / "unit")
    weights = load_weights(run_dir / "model.safetensors")
    save_file(weights, str(run_dir / "model.safetensors"), metadata={"speechattn.model_info": "{oops"})
    with pytest.raises(ModelFileError) as exc:
        _from_run(task, run_dir)
    text = _one_line_error(exc)
    assert str(run_dir / "model.safetensors") in text and "corrupt model metadata" in text, text
    # well-formed JSON lacking what the model needs
    save_model(weights, {"task": task}, run_dir)
    with pytest.raises(ModelFileError) as exc:
        _from_run(task, run_dir)
    text = _one_line_error(exc)
    assert str(run_dir / "model.safetensors") in text and "bad model metadata (no " in text, text
    # metadata of another task
    save_model(weights, {**_legacy_info(legacy_runs[task], task), "task": "nonsense"}, run_dir)
    with pytest.raises(ModelFileError, match="metadata of a 'nonsense' model"):
        _from_run(task, run_dir)


def test_a_truncated_weights_file_is_named(legacy_runs, tmp_path):
    run_dir = _copy_run(legacy_runs["speaker"], tmp_path / "run")
    data = (run_dir / "model.safetensors").read_bytes()
    (run_dir / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError) as exc:
        _from_run("speaker", run_dir)
    assert _one_line_error(exc).startswith(f"{run_dir / 'model.safetensors'}: not a readable safetensors file")


def test_bad_model_files_are_one_line_cli_errors(legacy_runs, tmp_path):
    wav = tmp_path / "a.wav"
    save_audio(wav, 0.1 * torch.randn(8000, generator=torch.Generator().manual_seed(0)), 16000)
    cases = {}
    run_dir = _copy_run(legacy_runs["speaker"], tmp_path / "shape")
    weights = load_weights(run_dir / "model.safetensors")
    name = next(k for k, v in weights.items() if v.dim() == 2)
    weights[name] = torch.zeros(1, 1)
    save_model(weights, _legacy_info(run_dir, "speaker"), run_dir)
    cases[("embed", run_dir)] = f"tensor {name!r} has shape (1, 1)"
    run_dir = _copy_run(legacy_runs["labeling"], tmp_path / "json")
    (run_dir / "model.json").write_text("[1, 2")
    cases[("label", run_dir)] = f"{run_dir / 'model.json'}: corrupt model metadata"
    run_dir = _copy_run(legacy_runs["ctc"], tmp_path / "header")
    save_file(load_weights(run_dir / "model.safetensors"), str(run_dir / "model.safetensors"),
              metadata={"speechattn.model_info": "nope"})
    cases[("transcribe", run_dir)] = f"{run_dir / 'model.safetensors'}: corrupt model metadata"
    for (command, run_dir), expected in cases.items():
        res = CliRunner().invoke(main, [command, str(run_dir), str(wav), "--device", "cpu"])
        assert res.exit_code == 2, (command, res.output)
        assert res.stderr.startswith("speechattn: error: ") and res.stderr.strip().count("\n") == 0, res.stderr
        assert expected in res.stderr, res.stderr


# ----------------------------------------------------------------------------- checkpoints


class _Payload:
    """Pickles as a call of os.system that would create a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _PythonPayload:
    """Pickles as a call of exec() (no shell needed) that would create a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def _evil_checkpoint(path: Path, payload: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"modules": {}, "optimizer": {}, "trainer": {"step": 1}, "hook": payload}, path)
    return path


@pytest.mark.parametrize("kind", [_Payload, _PythonPayload])
def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(tmp_path, kind):
    marker = tmp_path / "PWNED"
    path = _evil_checkpoint(tmp_path / "checkpoints" / "last.pt", kind(marker))
    with pytest.raises(CheckpointError) as exc:
        load_state(path)
    text = _one_line_error(exc)
    assert text.startswith(f"{path}: ") and "refused" in text, text
    assert not marker.exists()
    # a plain checkpoint still loads
    save_state({"step": 3, "w": torch.ones(2)}, tmp_path / "ok.pt")
    assert load_state(tmp_path / "ok.pt")["step"] == 3


def test_a_garbage_checkpoint_is_a_one_line_error(tmp_path):
    path = tmp_path / "last.pt"
    path.write_bytes(b"\x80\x04garbage")
    with pytest.raises(CheckpointError) as exc:
        load_state(path)
    assert _one_line_error(exc).startswith(f"{path}: ")


def test_trainer_resume_refuses_the_payload(tmp_path):
    from speechattn.recipes.train import TrainConfig
    from speechattn.training.trainer import Trainer
    from tests.training.test_trainer import ToyTask

    marker = tmp_path / "PWNED"
    run_dir = tmp_path / "run"
    _evil_checkpoint(run_dir / "checkpoints" / "last.pt", _Payload(marker))
    trainer = Trainer(TrainConfig(batch_size=8, max_epochs=1, precision="fp32", device="cpu"), run_dir,
                      progress_bar=False)
    with pytest.raises(CheckpointError, match="last.pt: .*refused"):
        trainer.fit(ToyTask(), resume=True)
    assert not marker.exists()


def test_train_resume_on_the_command_line_refuses_the_payload(tmp_path, fsdd_dir):
    from tests.conftest import TINY_SPEAKER

    marker = tmp_path / "PWNED"
    run_dir = tmp_path / "run"
    last = _evil_checkpoint(run_dir / "checkpoints" / "last.pt", _Payload(marker))
    recipe = Path(__file__).parents[2] / "recipes" / "speaker_fsdd.yaml"
    args = ["train", str(recipe), "--run-dir", str(run_dir), "--resume", "--data-root", str(fsdd_dir.parent)]
    for override in TINY_SPEAKER:
        args += ["--set", override]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2, res.output
    errors = [line for line in res.stderr.splitlines() if "error" in line]  # (after the INFO log lines)
    assert errors == [res.stderr.strip().splitlines()[-1]], res.stderr
    assert errors[0].startswith(f"speechattn: error: {last}: ") and "refused" in errors[0], res.stderr
    assert not marker.exists()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
