"""Device choice and hardware-aware precision (speechattn.utils.device), and inference that follows the
hardware it runs on rather than the precision a model was trained in."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from speechattn.utils import device as devmod
from speechattn.utils.device import autocast, cpu_has_native_bf16, resolve_device, resolve_precision

CPU = torch.device("cpu")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
without_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


# ----------------------------------------------------------------------------- capability probe

@pytest.mark.parametrize(("avx512_bf16", "amx", "native"), [
    (False, False, False), (True, False, True), (False, True, True), (True, True, True)])
def test_cpu_has_native_bf16_asks_the_cpu_probes(monkeypatch, avx512_bf16, amx, native):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    assert cpu_has_native_bf16() is native


def test_cpu_has_native_bf16_without_the_probes_is_false(monkeypatch):
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported", raising=False)
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    assert cpu_has_native_bf16() is False


# ----------------------------------------------------------------------------- precision

@pytest.mark.parametrize(("native", "expected"), [(False, "fp32"), (True, "bf16")])
def test_auto_precision_is_bf16_only_where_native(monkeypatch, native, expected):
    monkeypatch.setattr(devmod, "cpu_has_native_bf16", lambda: native)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # auto never warns
        assert resolve_precision("auto", CPU) == expected


def test_explicit_bf16_without_native_support_warns_but_stays_bf16(monkeypatch):
    monkeypatch.setattr(devmod, "cpu_has_native_bf16", lambda: False)
    with pytest.warns(RuntimeWarning, match="emulated"):
        assert resolve_precision("bf16", CPU) == "bf16"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_precision("bf16", CPU, warn=False) == "bf16"
        monkeypatch.setattr(devmod, "cpu_has_native_bf16", lambda: True)
        assert resolve_precision("bf16", CPU) == "bf16"  # native: no warning


@pytest.mark.parametrize("native", [False, True])
def test_fp32_stays_fp32(monkeypatch, native):
    monkeypatch.setattr(devmod, "cpu_has_native_bf16", lambda: native)
    assert resolve_precision("fp32", CPU) == "fp32"


@pytest.mark.parametrize("name", ["fp16", "BF16", "float32", ""])
def test_bad_precision_names_raise(name):
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision(name, CPU)


def test_autocast_is_on_only_for_bf16():
    with autocast(CPU, "fp32"):
        assert not torch.is_autocast_enabled("cpu")
    with autocast(CPU, "bf16"):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16


# ----------------------------------------------------------------------------- devices

def test_resolve_device_cpu_and_auto():
    assert resolve_device("cpu") == CPU
    assert resolve_device(CPU) == CPU
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected and resolve_device(None).type == expected


@without_cuda
def test_auto_is_the_cpu_without_cuda():
    assert resolve_device("auto") == CPU


@without_cuda
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_cuda_is_a_value_error(name):
    with pytest.raises(ValueError, match="no CUDA device"):
        resolve_device(name)


@pytest.mark.parametrize("name", ["tpu", "gpu", "cuda:x", "mps", "meta"])
def test_bad_device_names_are_value_errors(name):
    with pytest.raises(ValueError, match="device must be auto, cpu, cuda or cuda:N"):
        resolve_device(name)


# ----------------------------------------------------------------------------- untrained runs

TINY_ENCODER = {"d_model": 32, "num_heads": 2, "num_layers": 1, "ffn_dim": 64, "left_context": 8,
                "right_context": 2, "subsampling_channels": 8}


def write_untrained_run(run_dir: Path, task: str, precision: str = "bf16") -> Path:
    """A run folder (config.yaml saying ``train.precision: PRECISION``, model.safetensors,
    model.json) of an untrained tiny model of ``task`` (``labeling``, ``ctc``, ``speaker``)."""
    from speechattn.models.files import save_weights
    from speechattn.nn.encoder import EncoderConfig
    from speechattn.recipes.schema import save_recipe
    from speechattn.recipes.train import TrainConfig
    from speechattn.utils.files import write_json

    torch.manual_seed(0)
    train = TrainConfig(precision=precision)  # type: ignore[arg-type]
    if task == "labeling":
        from speechattn.recipes.builders import build_labeler, output_grid
        from speechattn.recipes.labeling import LabelModelConfig, LabelRecipe

        recipe: Any = LabelRecipe(model=LabelModelConfig(encoder=EncoderConfig(subsampling=4, **TINY_ENCODER)),
                                  train=train)
        model: Any = build_labeler(recipe, 1)
        grid = output_grid(recipe)
        info: dict[str, Any] = {"task": task, "classes": ["speech"], "mode": "single",
                                "grid": {"hop": grid.hop, "offset": grid.offset}}
    elif task == "ctc":
        from speechattn.recipes.builders import build_ctc_model, output_grid
        from speechattn.recipes.ctc import CTCDataConfig, CTCModelConfig, CTCRecipe
        from speechattn.text import CharTokenizer

        recipe = CTCRecipe(data=CTCDataConfig(tokens="chars", lexicon=None),
                           model=CTCModelConfig(encoder=EncoderConfig(subsampling=4, **TINY_ENCODER)), train=train)
        tokenizer = CharTokenizer.build(["HELLO WORLD"])
        model = build_ctc_model(recipe, len(tokenizer))
        grid = output_grid(recipe)
        info = {"task": task, "tokenizer": tokenizer.to_dict(), "grid": {"hop": grid.hop, "offset": grid.offset}}
    else:
        from speechattn.recipes.builders import build_embedder
        from speechattn.recipes.speaker import SpeakerModelConfig, SpeakerRecipe

        recipe = SpeakerRecipe(model=SpeakerModelConfig(encoder=EncoderConfig(**TINY_ENCODER), embed_dim=16),
                               train=train)
        model = build_embedder(recipe.model, recipe.features.feature_dim)
        info = {"threshold": 0.5}
    run_dir.mkdir(parents=True, exist_ok=True)
    save_recipe(recipe, run_dir / "config.yaml")
    save_weights(model, run_dir / "model.safetensors")
    write_json(info, run_dir / "model.json")
    return run_dir


def _load(task: str, run_dir: Path, device: Any = "auto") -> Any:
    if task == "labeling":
        from speechattn.inference import Labeler

        return Labeler.from_run(run_dir, device=device)
    if task == "ctc":
        from speechattn.inference import Transcriber

        return Transcriber.from_run(run_dir, device=device)
    from speechattn.inference import SpeakerRecognizer

    return SpeakerRecognizer.from_run(run_dir, device=device)


def _run_once(task: str, model: Any, wave: torch.Tensor) -> Any:
    if task == "labeling":
        return model.label_waveform(wave, 16000)
    if task == "ctc":
        return model.transcribe_waveform(wave, 16000)
    return model.embed(wave, 16000)


def _network(task: str, model: Any) -> torch.nn.Module:
    return model.embedder if task == "speaker" else model.model


TASKS = ["labeling", "ctc", "speaker"]


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize(("native", "expected"), [(False, "fp32"), (True, "bf16")])
def test_a_bf16_trained_run_runs_in_the_precision_of_the_hardware(tmp_path, monkeypatch, caplog, task, native,
                                                                  expected):
    """config.yaml says precision: bf16; on a CPU without native bf16 the model runs in fp32 (no
    autocast), and in bf16 where the CPU has it."""
    from speechattn.inference import load_run_recipe

    run_dir = write_untrained_run(tmp_path / "run", task, precision="bf16")
    assert load_run_recipe(run_dir).train.precision == "bf16"  # old run folders still load
    monkeypatch.setattr(devmod, "cpu_has_native_bf16", lambda: native)
    with caplog.at_level("INFO", logger="speechattn"):
        model = _load(task, run_dir, device="cpu")
    assert model.device == CPU and model.run_precision == expected
    assert f"on cpu in {expected}" in caplog.text
    seen: list[tuple[bool, torch.dtype]] = []
    first_linear = next(m for m in _network(task, model).modules() if isinstance(m, torch.nn.Linear))
    first_linear.register_forward_hook(lambda mod, args, out: seen.append((torch.is_autocast_enabled("cpu"), out.dtype)))
    wave = 0.1 * torch.randn(16000, generator=torch.Generator().manual_seed(1))
    out = _run_once(task, model, wave)
    assert seen
    if expected == "fp32":
        assert all(not enabled and dtype == torch.float32 for enabled, dtype in seen)
    else:
        assert all(enabled and dtype == torch.bfloat16 for enabled, dtype in seen)
    if task == "speaker":
        assert out.dtype == torch.float32 and out.device == CPU
    elif task == "labeling":
        assert out.posteriors.dtype == np.float32


@pytest.mark.parametrize("task", TASKS)
def test_from_run_rejects_bad_devices_before_loading(tmp_path, task):
    run_dir = write_untrained_run(tmp_path / "run", task)
    with pytest.raises(ValueError, match="device must be"):
        _load(task, run_dir, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            _load(task, run_dir, device="cuda")
    assert _load(task, run_dir, device="cpu").device == CPU


def test_streaming_file_outputs_on_the_model_device(tmp_path, monkeypatch):
    """stream_file_outputs runs the model where it is and hands ``convert`` CPU logits."""
    from speechattn.audio import save_audio

    monkeypatch.setattr(devmod, "cpu_has_native_bf16", lambda: False)
    run_dir = write_untrained_run(tmp_path / "run", "labeling")
    labeler = _load("labeling", run_dir, device="cpu")
    wave = 0.1 * torch.randn(3 * 16000, generator=torch.Generator().manual_seed(2))
    save_audio(tmp_path / "a.wav", wave, 16000, subtype="FLOAT")
    labeler.block_seconds = 0.7
    streamed = labeler.label_file(tmp_path / "a.wav")
    offline = labeler.label_waveform(wave, 16000)
    assert streamed.posteriors.shape == offline.posteriors.shape
    assert np.abs(streamed.posteriors - offline.posteriors).max() < 1e-4


# ----------------------------------------------------------------------------- CUDA

@needs_cuda
def test_tiny_forward_on_cuda_in_the_resolved_precision():
    from speechattn.nn.encoder import TruncatedEncoder

    dev = resolve_device("cuda")
    precision = resolve_precision("auto", dev)
    assert precision == ("bf16" if torch.cuda.is_bf16_supported() else "fp32")
    enc = TruncatedEncoder(input_dim=20, d_model=32, num_heads=2, num_layers=1, ffn_dim=64).to(dev).eval()
    x = torch.randn(2, 50, 20, device=dev)
    with torch.inference_mode(), autocast(dev, precision):
        y, lengths = enc(x, torch.tensor([50, 30], device=dev))
    assert y.device.type == "cuda" and y.shape[:2] == (2, 50) and torch.isfinite(y.float()).all()


@needs_cuda
@pytest.mark.parametrize("task", TASKS)
def test_inference_on_cuda_matches_the_cpu(tmp_path, task):
    run_dir = write_untrained_run(tmp_path / "run", task, precision="fp32")
    wave = 0.1 * torch.randn(16000, generator=torch.Generator().manual_seed(3))
    cpu = _load(task, run_dir, device="cpu")
    gpu = _load(task, run_dir, device="cuda")
    assert gpu.device.type == "cuda" and next(_network(task, gpu).parameters()).is_cuda
    a, b = _run_once(task, cpu, wave), _run_once(task, gpu, wave)
    tol = 0.1 if gpu.run_precision == "bf16" else 1e-3
    if task == "labeling":
        assert np.abs(a.posteriors - b.posteriors).max() < tol
    elif task == "speaker":
        assert b.device == CPU and torch.nn.functional.cosine_similarity(a, b, dim=0) > 1 - tol
    else:
        assert isinstance(b.text, str)


@needs_cuda
def test_ctc_and_labeling_batches_run_on_cuda():
    """The tasks' device paths: SpecAugment masks drawn on the CPU, applied on the GPU; the CTC
    loss and the offline decoding/posteriors on the GPU with CPU results."""
    from types import SimpleNamespace

    from speechattn.data.augment import AugmentConfig, spec_augment, spec_augment_on
    from speechattn.models.ctc import decode_features
    from speechattn.models.labeler import batch_posteriors
    from speechattn.recipes.builders import build_ctc_model, build_labeler
    from speechattn.recipes.ctc import CTCRecipe
    from speechattn.recipes.labeling import LabelRecipe
    from speechattn.tasks.ctc import CTCTask

    dev = torch.device("cuda")
    cfg = AugmentConfig(time_masks=2, freq_masks=2)
    x = torch.randn(3, 40, 20)
    on_gpu = spec_augment_on(x.to(dev), cfg, torch.Generator().manual_seed(0))
    assert on_gpu.is_cuda and torch.equal(on_gpu.cpu(), spec_augment(x, cfg, torch.Generator().manual_seed(0)))

    recipe = CTCRecipe()
    recipe.model.encoder = recipe.model.encoder.__class__(subsampling=4, **TINY_ENCODER)
    model = build_ctc_model(recipe, 6).to(dev)
    feats = [torch.randn(n, recipe.features.feature_dim) for n in (120, 90, 150)]
    task = SimpleNamespace(recipe=recipe, model=model, device=dev, generator=torch.Generator().manual_seed(0),
                           train_feats=feats, train_targets=[torch.tensor([1, 2]), torch.tensor([3]), torch.tensor([4, 5])])
    loss = CTCTask.batch_loss(task, [0, 1, 2])  # type: ignore[arg-type]
    assert loss.is_cuda and torch.isfinite(loss)
    loss.backward()
    model.eval()
    with torch.inference_mode():
        hyps = decode_features(model, feats, device=dev)
    assert len(hyps) == 3

    lrec = LabelRecipe()
    lrec.model.encoder = lrec.model.encoder.__class__(subsampling=4, **TINY_ENCODER)
    labeler = build_labeler(lrec, 2).to(dev).eval()
    with torch.inference_mode():
        posts = batch_posteriors(labeler, feats, device=dev)
    assert [p.shape[1] for p in posts] == [2, 2, 2] and all(isinstance(p, np.ndarray) for p in posts)
