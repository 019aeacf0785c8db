"""Frame-labeling task end to end on real audio: training from audio + TextGrid / RTTM, streaming
labels equal to offline labels, evaluation on audio + RTTM."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch

from speechattn.audio import load_audio, save_audio
from speechattn.data.labels import LabelError, Segment, write_rttm
from speechattn.data.vad_sim import endpoint
from speechattn.inference import Labeler
from speechattn.recipes import load_task_recipe
from speechattn.recipes.labeling import LabelRecipe
from speechattn.recipes.schema import ConfigError
from speechattn.tasks import train_recipe
from speechattn.tasks.labeling import LabelTask
from tests.labeling_support import TINY_RECIPE, tiny_label_run
from tests.reference_metrics import f1_precision_recall, frame_counts


@pytest.fixture(scope="module")
def run(tmp_path_factory, speechocean_dir):
    return tiny_label_run(tmp_path_factory, speechocean_dir)


def _check_dev_metrics_against_the_saved_model(run_dir, folders, dev):
    """The run's dev F1 and precision, recounted by hand from the saved model's segments of the 4
    dev recordings against dev.rttm on the 10 ms grid. The labels come from the streaming path
    (as `speechattn evaluate`), which reproduces training's offline labels to about 0.01."""
    from speechattn.data.labels import read_rttm

    labeler = Labeler.from_run(run_dir)
    reference = read_rttm(folders["dev"] / "dev.rttm")
    counts = np.zeros(3, dtype=np.int64)
    for path in sorted(folders["dev"].glob("*.ogg")):
        result = labeler.label_file(path)
        counts += frame_counts([(s.start, s.end) for s in reference[path.stem]],
                               [(s.start, s.end) for s in result.segments], result.duration)
    f1, precision, _ = f1_precision_recall(*counts.tolist())
    assert counts[0] > 100 and counts[1] + counts[2] > 0  # speech found, and some errors to count
    assert dev["f1"] == pytest.approx(f1, abs=0.01)
    assert dev["precision"] == pytest.approx(precision, abs=0.01)


def test_dev_metrics_count_frames_over_all_recordings():
    """LabelTask.evaluate on posteriors with known frames: two recordings, 400 true positive,
    100 false positive and 300 false negative frames in all (F1 2/3, not the mean of the two
    recordings' F1s)."""
    from types import SimpleNamespace

    from speechattn.data.labels import FrameGrid
    from speechattn.decoding.segments import PostprocessConfig

    grid = FrameGrid(hop=0.04, offset=0.02)  # frame j stands for [0.04 j, 0.04 (j + 1))
    active = np.zeros((250, 1), dtype=np.float32)
    active[50:175] = 1.0  # speech from 2 s to 7 s
    recipe = SimpleNamespace(features=SimpleNamespace(frame_shift=160, frame_length=400, sample_rate=16000),
                             eval=SimpleNamespace(step=0.01), postprocess=PostprocessConfig())
    task = SimpleNamespace(
        recipe=recipe, classes=["speech"], grid=grid, dev_feats=[torch.zeros(999, 40)] * 2,  # 10 s each
        dev_items=[SimpleNamespace(segments=[Segment(1.0, 5.0, "speech"), Segment(6.0, 8.0, "speech")]),
                   SimpleNamespace(segments=[Segment(0.5, 1.5, "speech")])],
        posteriors=lambda feats: [active, np.zeros_like(active)])
    task._metrics = lambda items, feats: LabelTask._metrics(task, items, feats)  # what evaluate() scores dev with
    metrics = LabelTask.evaluate(task)
    # first recording: hypothesis [2, 7) against [1, 5) + [6, 8): tp 300 + 100, fp 100, fn 100 + 100;
    # second: nothing found against [0.5, 1.5): fn 100
    assert metrics["precision"] == pytest.approx(400 / 500) and metrics["recall"] == pytest.approx(400 / 700)
    assert metrics["f1"] == pytest.approx(2 / 3)
    assert metrics["detection_error_rate"] == pytest.approx(400 / 700)


def test_training_from_audio_and_textgrid_writes_a_complete_run(run):
    run_dir, summary, folders = run
    for name in ("config.yaml", "model.safetensors", "model.json", "metrics.json", "log.csv", "checkpoints/last.pt"):
        assert (run_dir / name).exists(), name
    info = json.loads((run_dir / "model.json").read_text())
    assert info["classes"] == ["speech"] and info["mode"] == "single" and info["train_files"] == 12
    assert info["grid"]["hop"] == pytest.approx(0.04) and info["cmvn_frames"] > 1000
    assert summary["epochs"] == 2 and summary["metric"] == "f1"
    _check_dev_metrics_against_the_saved_model(run_dir, folders, summary["dev"])
    recipe = load_task_recipe(run_dir / "config.yaml")
    assert isinstance(recipe, LabelRecipe) and recipe.model.encoder.d_model == 32
    # The CMVN statistics of the training data travel with the weights.
    labeler = Labeler.from_run(run_dir)
    assert labeler.model.cmvn.mean.abs().sum() > 0 and (labeler.model.cmvn.std != 1).any()


def _two_speaker_mixtures(folder, speechocean_dir, count):
    """Overlapping two-speaker mixtures (speakers 0001 and 0005) + one RTTM naming both."""
    folder.mkdir(parents=True)
    a = sorted((speechocean_dir / "audio").glob("SPEAKER0001/*.ogg"))
    b = sorted((speechocean_dir / "audio").glob("SPEAKER0005/*.ogg"))
    rttm = io.StringIO()
    for i in range(count):
        x, y = load_audio(a[i], 16000)[0], load_audio(b[i], 16000)[0]
        shift = 16000  # the second talker starts 1 s later
        mix = torch.zeros(max(x.numel(), shift + y.numel()))
        mix[: x.numel()] += x
        mix[shift : shift + y.numel()] += y
        save_audio(folder / f"mix{i}.wav", mix * 0.5, 16000)
        segs = [Segment(s, e, "0001") for s, e in endpoint(x.numpy(), 16000)]
        segs += [Segment(s + 1.0, e + 1.0, "0005") for s, e in endpoint(y.numpy(), 16000)]
        write_rttm(f"mix{i}", segs, rttm)
    (folder / "labels.rttm").write_text(rttm.getvalue())


def test_multi_label_training_from_audio_and_rttm(tmp_path, speechocean_dir):
    _two_speaker_mixtures(tmp_path / "train", speechocean_dir, 6)
    _two_speaker_mixtures(tmp_path / "dev", speechocean_dir, 2)  # same mixtures: only the mechanics matter here
    recipe = tmp_path / "multi.yaml"
    recipe.write_text(TINY_RECIPE.format(train=tmp_path / "train", dev=tmp_path / "dev", mode="multi"))
    summary = train_recipe(recipe, ["train.max_epochs=1"], run_dir=tmp_path / "run", progress=False)
    info = json.loads((tmp_path / "run" / "model.json").read_text())
    assert info["classes"] == ["0001", "0005"] and info["mode"] == "multi"
    assert {"0001_f1", "0005_f1", "macro_f1"} <= set(summary["dev"])
    labeler = Labeler.from_run(tmp_path / "run")
    result = labeler.label_file(tmp_path / "dev" / "mix0.wav")
    assert result.posteriors.shape[1] == 2 and ((result.posteriors >= 0) & (result.posteriors <= 1)).all()
    # Overlapping classes cannot train a single-label model: a clear error naming the label file.
    recipe.write_text(TINY_RECIPE.format(train=tmp_path / "train", dev=tmp_path / "dev", mode="single"))
    with pytest.raises(LabelError, match=r"labels.rttm: classes \['0001', '0005'\] overlap at .*model.mode: multi"):
        train_recipe(recipe, run_dir=tmp_path / "run-single", progress=False)


def test_recipes_validate_and_reject_bad_data_blocks(tmp_path):
    recipe = load_task_recipe("recipes/vad.yaml")
    assert isinstance(recipe, LabelRecipe) and recipe.data.simulate is not None
    assert recipe.data.simulate.snr_db == (-5.0, 20.0)
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: labeling\ndata:\n  train: a\n")
    with pytest.raises(ConfigError, match="data.train and data.dev"):
        load_task_recipe(bad)
    with pytest.raises(ConfigError, match="leave data.train and data.dev unset"):
        load_task_recipe("recipes/vad.yaml", ["data.train=x"])
    with pytest.raises(ConfigError, match="invalid .data.simulate.: snr_db must be"):
        load_task_recipe("recipes/vad.yaml", ["data.simulate.snr_db=[20, -5]"])


def test_ddp_ranks_get_equal_parts_of_the_single_process_global_batches(monkeypatch):
    from types import SimpleNamespace

    from speechattn.tasks import labeling

    lengths = torch.randint(50, 900, (40,), generator=torch.Generator().manual_seed(2)).tolist()

    def task(batch_size):
        recipe = LabelRecipe()
        recipe.train.batch_size = batch_size
        t = SimpleNamespace(recipe=recipe, train_feats=[torch.zeros(n, 1) for n in lengths], crop_frames=200, stride=4)
        t._crops = lambda epoch: LabelTask._crops(t, epoch)
        t.steps_per_epoch = lambda: LabelTask.steps_per_epoch(t)
        return t

    single = list(LabelTask.train_batches(task(6), 3))
    assert len(single) > 3 and all(len(b) == 6 for b in single)
    parts = []
    for rank in (0, 1):
        monkeypatch.setattr(labeling, "rank_world", lambda rank=rank: (rank, 2))
        t = task(3)
        assert t.steps_per_epoch() == len(single)
        parts.append(list(LabelTask.train_batches(t, 3)))
    assert all(len(b) == 3 for part in parts for b in part)
    assert [a + b for a, b in zip(*parts)] == single  # together: exactly the batches of one process


def test_label_task_device_and_per_rank_augmentation_seed(run, monkeypatch, tmp_path):
    from speechattn.tasks import labeling

    _, _, folders = run
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_RECIPE.format(train=folders["train"], dev=folders["dev"], mode="single"))
    recipe = load_task_recipe(path)
    seeds = []
    for rank in (0, 1):
        monkeypatch.setattr(labeling, "rank_world", lambda rank=rank: (rank, 2))
        task = LabelTask(recipe, progress=False)
        assert task.device == torch.device("cpu")
        seeds.append(task.generator.initial_seed())
    assert seeds == [recipe.train.seed, recipe.train.seed + 1_000_003]


def test_evaluate_test_scores_the_saved_best_model(run):
    """data.test: a task with fresh weights reloads the best model of the run; on the dev data as
    test set it gets the best dev metrics. Without data.test there is nothing to report."""
    from speechattn.utils.device import autocast

    run_dir, summary, folders = run
    torch.manual_seed(123)
    task = LabelTask(load_task_recipe(run_dir / "config.yaml", [f"data.test={folders['dev']}"]), progress=False)
    assert len(task.test_items) == 4
    task.modules.eval()
    with torch.inference_mode(), autocast(torch.device("cpu"), summary["precision"]):  # as the trainer evaluates
        assert task.evaluate_test(run_dir) == pytest.approx(summary["dev"], abs=1e-9)
    assert LabelTask(load_task_recipe(run_dir / "config.yaml"), progress=False).evaluate_test(run_dir) is None
