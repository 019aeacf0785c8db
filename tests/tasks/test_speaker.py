"""Speaker task on real audio (FSDD), with a tiny model and a few steps."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from speechattn.config import ConfigError
from speechattn.tasks import choose_run_dir, load_task_recipe, train_recipe
from speechattn.tasks.speaker import evaluate_embeddings, normalize_features

def test_training_writes_a_complete_run(tiny_run):
    run_dir, summary = tiny_run
    for name in ("config.yaml", "model.safetensors", "model.json", "metrics.json", "log.csv", "det.png",
                 "checkpoints/last.pt"):
        assert (run_dir / name).exists(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["metric"] == "accuracy"
    assert 0.0 <= metrics["dev"]["accuracy"] <= 100.0 and 0.0 <= metrics["dev"]["eer"] <= 100.0
    # The saved recipe holds the overrides and reloads into the same typed config.
    recipe = load_task_recipe(run_dir / "config.yaml")
    assert recipe.model.encoder.d_model == 32 and recipe.data.train == "fsdd:train"


def test_resume_extends_a_finished_run(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(run_dir, copy)
    summary = train_recipe(copy / "config.yaml", ["train.max_epochs=3"], run_dir=copy, resume=True, progress=False)
    assert summary["epochs"] == 3
    assert summary["steps"] == 3 * (120 // 16)


def test_recipe_typos_are_one_line_errors_naming_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: speaker\nmodel:\n  encoder:\n    num_layer: 4\n")
    with pytest.raises(ConfigError) as err:
        load_task_recipe(bad)
    assert "model.encoder.num_layer" in str(err.value) and "num_layers" in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="task"):
        bad.write_text("task: speeker\n")
        load_task_recipe(bad)
    with pytest.raises(ConfigError, match="train.lr"):
        load_task_recipe("recipes/speaker.yaml", ["train.lr=fast"])


def test_every_recipe_validates():
    from pathlib import Path

    recipes = sorted(Path("recipes").glob("*.yaml"))
    assert recipes
    for path in recipes:
        load_task_recipe(path)


def test_run_dirs_are_numbered_and_resume_picks_the_newest(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert str(choose_run_dir("recipes/speaker.yaml", None, False)) == "runs/speaker"
    (tmp_path / "runs" / "speaker").mkdir(parents=True)
    assert str(choose_run_dir("recipes/speaker.yaml", None, False)) == "runs/speaker-2"
    (tmp_path / "runs" / "speaker-2").mkdir()
    assert str(choose_run_dir("recipes/speaker.yaml", None, True)) == "runs/speaker-2"
    with pytest.raises(FileNotFoundError):
        choose_run_dir("recipes/other.yaml", None, True)


def test_evaluate_embeddings_on_separable_and_random_data():
    gen = torch.Generator().manual_seed(0)
    speakers = [f"s{i % 5}" for i in range(50)]
    centres = torch.randn(5, 16, generator=gen) * 5
    emb = centres[[i % 5 for i in range(50)]] + 0.1 * torch.randn(50, 16, generator=gen)
    metrics, scores, labels = evaluate_embeddings(emb, speakers, [str(i) for i in range(50)])
    assert metrics["eer"] == 0.0 and metrics["accuracy"] == 100.0
    assert labels.sum() == 5 * (10 * 9 // 2) and len(labels) == 50 * 49 // 2
    noise = torch.randn(50, 16, generator=gen)
    metrics, _, _ = evaluate_embeddings(noise, speakers, [str(i) for i in range(50)])
    assert 30.0 < metrics["eer"] < 70.0


def test_evaluate_embeddings_with_trial_list_and_cohort(tmp_path):
    ids = ["a1", "a2", "b1", "b2"]
    emb = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    trials = tmp_path / "trials.txt"
    trials.write_text("a1 a2 target\na1 b1 nontarget\nb1 b2 target\na2 b2 nontarget\nzz a1 target\n")
    cohort = torch.nn.functional.normalize(torch.randn(10, 2), dim=-1)
    metrics, scores, labels = evaluate_embeddings(emb, ["a", "a", "b", "b"], ids, trials=trials, cohort=cohort,
                                                  cohort_top_k=5)
    assert len(scores) == 4 and labels.tolist() == [True, False, True, False]
    assert metrics["eer"] == 0.0 and "eer_asnorm" in metrics


def test_normalize_features_ignores_padding():
    x = torch.randn(2, 10, 3)
    lengths = torch.tensor([10, 6])
    y = normalize_features(x, lengths, "mean_var")
    alone = normalize_features(x[1:, :6], None, "mean_var")
    assert torch.allclose(y[1, :6], alone[0], atol=1e-5)
    assert y[1, 6:].abs().max() == 0
    assert np.isclose(float(y[0].mean()), 0.0, atol=1e-5)


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
