"""The recipe and task registry: every recipe validates; a typo is a one-line error naming the key;
every task registers once (:mod:`speechattn.recipes.registry`) and a new task needs nothing else."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from speechattn.cli.main import main
from speechattn.recipes import load_task_recipe
from speechattn.recipes.registry import (
    TaskCommand,
    TaskEntry,
    UnknownTaskError,
    get_task,
    register_task,
    same_task,
    task_commands,
    task_names,
    unregister_task,
)
from speechattn.recipes.schema import ConfigError


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
    # recipes/models.yaml lists the shipped models (name -> recipe + card), it is no recipe itself
    recipes = sorted(p for p in Path("recipes").glob("*.yaml") if p.name != "models.yaml")
    assert recipes
    for path in recipes:
        recipe = load_task_recipe(path)
        assert recipe.task in task_names(), path


# ----------------------------------------------------------------------------- the registry

def test_the_builtin_tasks_and_their_pieces():
    assert task_names() == ("ctc", "labeling", "speaker")
    predictors = {"speaker": "speechattn.inference.speaker:SpeakerRecognizer",
                  "labeling": "speechattn.inference.labeler:Labeler",
                  "ctc": "speechattn.inference.transcriber:Transcriber"}
    for name in task_names():
        entry = get_task(name)
        assert entry.name == name and entry.predictor == predictors[name]
        assert entry.recipe_class()().task == name  # the recipe's default task is its registered name
        for piece in (entry.training_class(), entry.model_builder(), entry.predictor_class(),
                      entry.evaluator_function()):
            assert callable(piece)
    assert task_commands() == {
        "embed": ("speechattn.cli.speaker:embed", "Write speaker embeddings of audio files."),
        "verify": ("speechattn.cli.speaker:verify", "Score whether two recordings share a speaker."),
        "identify": ("speechattn.cli.speaker:identify", "Name the enrolled speaker of each recording."),
        "label": ("speechattn.cli.labeling:label", "Label the frames of audio files."),
        "transcribe": ("speechattn.cli.ctc:transcribe", "Transcribe audio files."),
    }


def test_unknown_task_names_are_one_line_errors_listing_the_known_ones():
    with pytest.raises(UnknownTaskError) as err:
        get_task("speeker")
    assert str(err.value) == "unknown task 'speeker' (did you mean 'speaker'?); known tasks: ctc, labeling, speaker"
    assert isinstance(err.value, ConfigError) and isinstance(err.value, ValueError)
    with pytest.raises(UnknownTaskError, match=r"^x\.yaml: unknown task 'frame_label' \(did you mean 'labeling'\?\)"):
        get_task("frame_label", source="x.yaml")
    with pytest.raises(UnknownTaskError, match=r"^unknown task 3; known tasks: ctc, labeling, speaker$"):
        get_task(3)


def test_the_old_name_of_the_labeling_task_is_an_alias():
    assert get_task("frame_labels") is get_task("labeling")
    assert same_task("frame_labels", "labeling") and not same_task("labeling", "ctc")
    assert same_task("nosuch", "nosuch") and not same_task(["x"], "labeling")
    assert "frame_labels" not in task_names()


def test_registering_checks_names_aliases_and_commands():
    def entry(name: str, *verbs: str, aliases: tuple[str, ...] = ()) -> TaskEntry:
        return TaskEntry(name=name, description="d", recipe="m:R", training="m:T", model="m:b", predictor="m:P",
                         evaluator="m:e", commands=tuple(TaskCommand(v, "m:c", "Help.") for v in verbs),
                         aliases=aliases)

    with pytest.raises(ValueError, match="'speaker' is already the task 'speaker'"):
        register_task(entry("speaker"))
    with pytest.raises(ValueError, match="'frame_labels' is already the task 'labeling'"):
        register_task(entry("other", aliases=("frame_labels",)))
    with pytest.raises(ValueError, match="command 'label' is already a command of the task 'labeling'"):
        register_task(entry("other", "label"))
    with pytest.raises(ValueError, match="listed twice"):
        register_task(entry("other", "go", "go"))
    with pytest.raises(ValueError, match="is not 'module:attr'"):
        TaskEntry(name="other", description="d", recipe="no colon", training="m:T", model="m:b", predictor="m:P",
                  evaluator="m:e")
    with pytest.raises(ValueError, match="help must be one non-empty line"):
        TaskCommand("go", "m:c", "two\nlines")
    assert task_names() == ("ctc", "labeling", "speaker")  # nothing half-registered

    register_task(entry("other", "go", aliases=("older",)))
    try:
        assert get_task("older").name == "other" and task_commands()["go"] == ("m:c", "Help.")
    finally:
        assert unregister_task("older").name == "other"
    assert "other" not in task_names() and "go" not in task_commands()
    with pytest.raises(UnknownTaskError):
        get_task("older")


# ----------------------------------------------------------------------------- through the CLI

pytestmark = pytest.mark.usefixtures("restore_cli_logging")


def run(*args: str) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture()
def toy() -> Iterator[TaskEntry]:
    """The toy task (tests/recipes/toy_task.py), registered for one test: its one registration."""
    from tests.recipes.toy_task import ENTRY

    register_task(ENTRY)
    try:
        yield ENTRY
    finally:
        unregister_task(ENTRY.name)


TOY_RECIPE = """\
task: toy
data:
  train_size: 256
  dev_size: 64
train:
  batch_size: 32
  max_epochs: 8
  lr: 0.1
  warmup_steps: 0
  weight_decay: 0.0
  device: cpu
  precision: fp32
"""


def test_a_new_task_trains_predicts_and_evaluates_through_the_cli(toy, tmp_path):
    from tests.recipes.toy_task import TRUE_B, TRUE_W, write_points

    recipe = tmp_path / "toy.yaml"
    recipe.write_text(TOY_RECIPE)
    run_dir = tmp_path / "runs" / "toy"

    help_text = run("--help").stdout
    assert any(line.split() == ["toy-predict", "Predict", "y", "for", "the", "points", "of", "a", "JSON", "file."]
               for line in help_text.splitlines()), help_text

    trained = run("train", recipe, "--run-dir", run_dir)
    assert trained.exit_code == 0, trained.output
    summary = json.loads(trained.stdout[trained.stdout.index("{\n"):])  # after the per-epoch lines
    assert summary["metric"] == "mse" and summary["best"] < 0.05 and summary["run_dir"] == str(run_dir)
    assert load_task_recipe(run_dir / "config.yaml").task == "toy"
    assert json.loads((run_dir / "model.json").read_text())["task"] == "toy"

    points = write_points(tmp_path / "points.json", 5, seed=7)
    predicted = run("toy-predict", run_dir, points)
    assert predicted.exit_code == 0, predicted.output
    x = json.loads(points.read_text())["x"]
    expected = [sum(w * v for w, v in zip(TRUE_W, row)) + TRUE_B for row in x]
    assert json.loads(predicted.stdout) == pytest.approx(expected, abs=0.3)

    scored = run("evaluate", run_dir, "--data", points.name, "--data-root", tmp_path, "--device", "cpu")
    assert scored.exit_code == 0, scored.output
    metrics = json.loads(scored.stdout)
    assert metrics["task"] == "toy" and metrics["points"] == 5 and metrics["mse"] < 0.1

    refused = run("evaluate", run_dir, "--data", points, "--beam", "2", "--trials", points)
    assert refused.exit_code == 2
    assert "--trials: only for speaker runs; --beam: only for ctc runs (this is a 'toy' run)" in refused.stderr


def test_the_toy_task_is_gone_once_unregistered(tmp_path):
    assert "toy-predict" not in run("--help").stdout
    (tmp_path / "toy.yaml").write_text(TOY_RECIPE)
    result = run("train", tmp_path / "toy.yaml", "--run-dir", tmp_path / "run")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"speechattn: error: {tmp_path / 'toy.yaml'}: unknown task 'toy'; known tasks: ctc, labeling, speaker"]
    assert not (tmp_path / "run").exists()


def test_an_unknown_task_in_a_recipe_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: speeker\ntrain:\n  max_epochs: 1\n")
    result = run("train", bad, "--run-dir", tmp_path / "run")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"speechattn: error: {bad}: unknown task 'speeker' (did you mean 'speaker'?); "
        "known tasks: ctc, labeling, speaker"]
    assert not (tmp_path / "run").exists()


def test_evaluate_on_a_run_of_an_unknown_task_is_one_line_not_a_speaker_evaluation(tmp_path, monkeypatch):
    import speechattn.evaluation.speaker

    called = []
    monkeypatch.setattr(speechattn.evaluation.speaker, "evaluate_run", lambda *a, **k: called.append(a) or {})
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("task: diarization\ntrain:\n  max_epochs: 1\n")
    result = run("evaluate", run_dir, "--data", "anything")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"speechattn: error: {run_dir / 'config.yaml'}: unknown task 'diarization'; "
        "known tasks: ctc, labeling, speaker"]
    assert called == []


# ----------------------------------------------------------------------------- the old name

def test_recipes_and_runs_of_frame_labels_still_load(tmp_path, monkeypatch):
    """Recipes and run folders written when the labeling task was called ``frame_labels``
    (config.yaml ``task: frame_labels``, model metadata ``"task": "frame_labels"``) still load,
    as ``labeling``."""
    import speechattn.evaluation.labeling
    from speechattn.inference import Labeler, load_run_model, load_run_recipe
    from speechattn.models.files import load_weights, save_model
    from speechattn.recipes.labeling import LabelRecipe
    from tests.utils.test_device import write_untrained_run

    vad = tmp_path / "vad.yaml"
    vad.write_text(Path("recipes/vad.yaml").read_text().replace("task: labeling", "task: frame_labels"))
    recipe = load_task_recipe(vad, ["train.max_epochs=3"])
    assert isinstance(recipe, LabelRecipe) and recipe.task == "labeling" and recipe.train.max_epochs == 3

    run_dir = write_untrained_run(tmp_path / "old_run", "labeling")
    config = run_dir / "config.yaml"
    config.write_text(config.read_text().replace("task: labeling", "task: frame_labels"))
    assert "task: frame_labels" in config.read_text()
    info = {**json.loads((run_dir / "model.json").read_text()), "task": "frame_labels"}
    save_model(load_weights(run_dir / "model.safetensors"), info, run_dir)

    assert load_run_recipe(run_dir).task == "labeling"
    for name in ("labeling", "frame_labels"):
        assert load_run_model(run_dir, name, "frame-labeling model").info["task"] == "frame_labels"
    assert Labeler.from_run(run_dir, device="cpu").classes == ["speech"]

    seen = []
    monkeypatch.setattr(speechattn.evaluation.labeling, "evaluate_run",
                        lambda run, data, **kwargs: seen.append((run, data)) or {"f1": 1.0})
    result = run("evaluate", run_dir, "--data", "somewhere", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"f1": 1.0} and seen == [(str(run_dir), "somewhere")]
    refused = run("evaluate", run_dir, "--data", "somewhere", "--det", tmp_path / "det.png")
    assert refused.exit_code == 2 and "--det: only for speaker runs (this is a 'labeling' run)" in refused.stderr
