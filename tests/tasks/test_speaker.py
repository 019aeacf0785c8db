"""Speaker task on real audio (FSDD), with a tiny model and a few steps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from speechattn.recipes import load_task_recipe
from speechattn.tasks import choose_run_dir, train_recipe
from tests.reference_metrics import all_pair_cosine_trials, reference_eer

FSDD_RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "speaker_fsdd.yaml"


def test_training_writes_a_complete_run(tiny_run):
    run_dir, summary = tiny_run
    for name in ("config.yaml", "model.safetensors", "model.json", "metrics.json", "log.csv", "det.png",
                 "checkpoints/last.pt"):
        assert (run_dir / name).exists(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["metric"] == "accuracy"
    _check_dev_metrics_against_the_saved_model(run_dir, metrics["dev"])
    # The saved recipe holds the overrides and reloads into the same typed config.
    recipe = load_task_recipe(run_dir / "config.yaml")
    assert recipe.model.encoder.d_model == 32 and recipe.data.train == "fsdd:train"


def _spread(manifest, count):
    """``count`` utterances evenly spread over ``manifest`` (data.max_*_utterances)."""
    from speechattn.data.manifest import Manifest

    step = len(manifest) / count
    return Manifest([manifest[int(i * step)] for i in range(count)])


def _check_dev_metrics_against_the_saved_model(run_dir, dev):
    """The run's dev EER and identification accuracy, recomputed from the saved model's
    embeddings of the same utterances with the reference metrics."""
    from speechattn.data.featcache import extract_features
    from speechattn.data.splits import resolve_manifest
    from speechattn.inference import SpeakerRecognizer
    from speechattn.models.speaker import embed_feature_list
    from speechattn.utils.paths import data_root

    model = SpeakerRecognizer.from_run(run_dir)  # the device training evaluated on ("auto")

    def embeddings(data, count):
        fs = extract_features(_spread(resolve_manifest(data, data_root()), count), model.extractor, progress=False)
        assert not fs.failures
        with torch.inference_mode():  # fp32, as training evaluated (train.precision=fp32)
            emb = embed_feature_list(model.embedder, fs.feats, model.recipe.normalize, device=model.device)
        return emb.numpy().astype(np.float64), [str(u.speaker) for u in fs.manifest]

    dev_emb, dev_speakers = embeddings("fsdd:test", 60)  # data.dev, data.max_dev_utterances=60
    scores, target = all_pair_cosine_trials(dev_emb, dev_speakers)
    assert target.sum() > 100 and (~target).sum() > 1000
    assert dev["eer"] == pytest.approx(100.0 * reference_eer(scores, target), abs=0.01)
    # closed-set identification: the nearest mean direction of the training speakers' utterances
    train_emb, train_speakers = embeddings("fsdd:train", 120)
    names = sorted(set(train_speakers))
    assert set(dev_speakers) <= set(names)
    unit = train_emb / np.linalg.norm(train_emb, axis=1, keepdims=True)
    centroids = np.stack([unit[[s == n for s in train_speakers]].sum(0) for n in names])
    guesses = (dev_emb @ (centroids / np.linalg.norm(centroids, axis=1, keepdims=True)).T).argmax(1)
    accuracy = 100.0 * np.mean([names[g] == s for g, s in zip(guesses, dev_speakers)])
    assert dev["accuracy"] == pytest.approx(accuracy, abs=1e-6)


def test_resume_extends_a_finished_run(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(run_dir, copy)
    summary = train_recipe(copy / "config.yaml", ["train.max_epochs=3"], run_dir=copy, resume=True, progress=False)
    assert summary["epochs"] == 3
    assert summary["steps"] == 3 * (120 // 16)


def test_run_dirs_are_numbered_and_resume_picks_the_newest(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert str(choose_run_dir("recipes/speaker.yaml", None, False)) == "runs/speaker"
    (tmp_path / "runs" / "speaker").mkdir(parents=True)
    assert str(choose_run_dir("recipes/speaker.yaml", None, False)) == "runs/speaker-2"
    (tmp_path / "runs" / "speaker-2").mkdir()
    assert str(choose_run_dir("recipes/speaker.yaml", None, True)) == "runs/speaker-2"
    with pytest.raises(FileNotFoundError):
        choose_run_dir("recipes/other.yaml", None, True)


def test_speed_perturbation_adds_speakers_and_changes_length(fsdd_dir, tmp_path, monkeypatch):
    from speechattn.tasks.speaker import SpeakerTask

    monkeypatch.setenv("SPEECHATTN_CACHE", str(tmp_path / "cache"))
    recipe = load_task_recipe("recipes/speaker_fsdd.yaml", [
        "data.max_train_utterances=30", "data.max_dev_utterances=30", "data.noise=null",
        "data.speed_perturb=[0.9,1.0,1.1]", "model.encoder.num_layers=1", "model.encoder.d_model=32",
        "model.encoder.num_heads=2", "model.encoder.ffn_dim=64",
    ])
    task = SpeakerTask(recipe, progress=False)
    n = 30
    assert len(task.train_set.feats) == 3 * n
    assert len(task.speakers) == 3 * len({s.split("-sp")[0] for s in task.speakers})
    slow, plain, fast = (task.train_set.feats[i * n].shape[0] for i in range(3))
    assert slow > plain > fast  # 0.9x speed lasts longer, 1.1x shorter
    assert abs(slow / plain - 1 / 0.9) < 0.05 and abs(fast / plain - 1 / 1.1) < 0.05
    assert task.original_index.numel() == n


def test_without_a_test_set_metrics_json_says_test_null(tiny_run):
    run_dir, summary = tiny_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test"] is None and summary["test"] is None
    assert metrics["test_note"].startswith("no test set (data.test): only dev was available")


def test_a_test_set_is_reported_with_the_best_model(tmp_path, fsdd_dir):
    """data.test: after training, the best saved model is evaluated on it once, into metrics.json.
    The test set here is dev itself, whole: its test metrics must be the best dev metrics (the
    threshold excepted: the model keeps dev's), and a fresh model reloading the run gets them too."""
    import torch

    from speechattn.tasks.speaker import SpeakerTask
    from tests.conftest import TINY_SPEAKER

    run_dir = tmp_path / "run"
    overrides = [*TINY_SPEAKER, "data.max_dev_utterances=null", "data.test=fsdd:test"]
    summary = train_recipe(FSDD_RECIPE, overrides, run_dir=run_dir, progress=False)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test"] == summary["test"] and "test_note" not in metrics
    dev = dict(metrics["dev"])
    dev.pop("threshold")
    assert metrics["test"] == pytest.approx(dev, abs=1e-6)
    assert set(metrics["test"]) == {"eer", "min_dcf", "accuracy"}

    torch.manual_seed(123)  # other initial weights: evaluate_test must load the saved best model
    task = SpeakerTask(load_task_recipe(run_dir / "config.yaml"), progress=False)
    task.modules.eval()
    with torch.inference_mode():
        assert task.evaluate_test(run_dir) == pytest.approx(metrics["test"], abs=1e-6)


def test_a_missing_test_set_fails_at_start(tmp_path, fsdd_dir):
    from speechattn.data.manifest import ManifestError
    from tests.conftest import TINY_SPEAKER

    with pytest.raises(ManifestError, match="no-such-test.*data not found"):
        train_recipe(FSDD_RECIPE, [*TINY_SPEAKER, "data.test=no-such-test"], run_dir=tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "checkpoints").exists()
