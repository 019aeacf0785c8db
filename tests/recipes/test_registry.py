"""The recipe registry: every recipe validates; a typo is a one-line error naming the key."""

from __future__ import annotations

import pytest

from speechattn.recipes import load_task_recipe
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
    from pathlib import Path

    recipes = sorted(Path("recipes").glob("*.yaml"))
    assert recipes
    for path in recipes:
        load_task_recipe(path)
