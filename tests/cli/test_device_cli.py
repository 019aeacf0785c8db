"""``--device`` of the inference commands, on untrained tiny runs (no corpus needed)."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from speechattn.audio import save_audio
from speechattn.cli.main import main
from tests.utils.test_device import write_untrained_run

COMMANDS = ["label", "transcribe", "embed", "verify", "identify", "evaluate"]


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("device_runs")
    wav = base / "a.wav"
    save_audio(wav, 0.1 * torch.randn(16000, generator=torch.Generator().manual_seed(0)), 16000)
    return {task: write_untrained_run(base / task, task) for task in ("labeling", "ctc", "speaker")}, wav


@pytest.mark.parametrize("command", COMMANDS)
def test_every_inference_command_has_a_device_option(command):
    res = _run(command, "--help")
    assert res.exit_code == 0 and "--device" in res.output and "cuda:N" in res.output


@pytest.mark.parametrize(("task", "command"), [("labeling", "label"), ("ctc", "transcribe"), ("speaker", "embed")])
def test_device_cpu_runs_and_logs_the_precision_once(runs, task, command):
    run_dirs, wav = runs
    res = _run(command, run_dirs[task], wav, "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert "1 file done, 0 failed" in res.stderr
    # config.yaml says bf16; the precision follows this CPU (fp32 unless it has native bf16).
    lines = [line for line in res.stderr.splitlines() if " on cpu in " in line]
    assert len(lines) == 1 and lines[0].endswith(("fp32", "bf16")), res.stderr
    if command == "embed":
        assert len(json.loads(res.stdout)["embedding"]) == 16


def test_verify_on_cpu(runs):
    run_dirs, wav = runs
    res = _run("verify", run_dirs["speaker"], wav, wav, "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["score"] == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("device", ["tpu", "cuda:x", "cuda"])
def test_a_bad_or_missing_device_is_a_one_line_error(runs, command, device):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    run_dirs, wav = runs
    run_dir = run_dirs["ctc" if command == "transcribe" else "labeling" if command == "label" else "speaker"]
    args = {"verify": [wav, wav], "identify": [wav, "--enroll", wav.parent], "evaluate": ["--data", wav.parent]}
    res = _run(command, run_dir, *args.get(command, [wav]), "--device", device)
    assert res.exit_code == 2, res.output
    assert res.stdout == ""
    assert res.stderr.startswith("speechattn: error: ") and res.stderr.strip().count("\n") == 0, res.stderr
    assert ("no CUDA device" if device == "cuda" else "device must be auto, cpu, cuda or cuda:N") in res.stderr
