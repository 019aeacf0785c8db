"""Tests for the typed recipe loader (speechattn.recipes.schema)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import pytest
import yaml

from speechattn.recipes.schema import (
    ConfigError,
    apply_overrides,
    dump_recipe,
    from_dict,
    load_recipe,
    save_recipe,
    to_dict,
)

# ----------------------------------------------------------------- example schema

class Precision(enum.Enum):
    FP32 = "fp32"
    BF16 = "bf16"


@dataclass
class DataConfig:
    train: Path
    dev: Optional[Path] = None
    sample_rate: int = 16000
    speakers: list[str] = field(default_factory=list)


@dataclass
class ModelConfig:
    num_layers: int = 6
    d_model: int = 256
    dropout: float = 0.1
    pooling: Literal["attentive", "mean_std", "self_attention"] = "attentive"
    window: tuple[int, ...] = (16, 16)
    causal: bool = False

    def __post_init__(self) -> None:
        if self.num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {self.num_layers}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


@dataclass
class Stage:
    name: str
    epochs: int = 1
    lr: float | None = None


@dataclass
class TrainConfig:
    lr: float = 1e-3
    epochs: int = 10
    stages: list[Stage] = field(default_factory=list)
    schedule: dict[str, float] = field(default_factory=dict)
    precision: Precision = Precision.FP32
    seed: int | None = None


@dataclass
class Recipe:
    data: DataConfig
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tags: tuple[str, ...] = ()
    size: tuple[int, float] = (1, 2.0)


MINIMAL = {"data": {"train": "data/train"}}


def full_recipe() -> Recipe:
    return Recipe(
        data=DataConfig(train=Path("d/train"), dev=Path("d/dev"), speakers=["a", "b"]),
        model=ModelConfig(num_layers=4, pooling="mean_std", window=(8, 0), causal=True),
        train=TrainConfig(
            lr=0.5,
            stages=[Stage("warmup", 1, 1e-4), Stage("main", 9)],
            schedule={"decay": 0.9},
            precision=Precision.BF16,
            seed=3,
        ),
        tags=("x", "y"),
        size=(3, 4.5),
    )


# ----------------------------------------------------------------- from_dict / to_dict

def test_minimal_defaults_and_conversion() -> None:
    cfg = from_dict(Recipe, MINIMAL)
    assert cfg.data.train == Path("data/train")
    assert isinstance(cfg.data.train, Path)
    assert cfg.model == ModelConfig()
    assert cfg.train.lr == 1e-3


def test_round_trip() -> None:
    cfg = full_recipe()
    data = to_dict(cfg)
    assert data["data"]["train"] == "d/train"  # paths become strings
    assert data["model"]["window"] == [8, 0]  # tuples become lists
    assert data["train"]["precision"] == "bf16"
    assert from_dict(Recipe, data) == cfg
    # and through YAML text
    assert from_dict(Recipe, yaml.safe_load(dump_recipe(cfg))) == cfg


def test_int_accepted_as_float_but_not_bool() -> None:
    cfg = from_dict(Recipe, {**MINIMAL, "train": {"lr": 1}})
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    with pytest.raises(ConfigError, match=r"'train.lr' must be a float, got True"):
        from_dict(Recipe, {**MINIMAL, "train": {"lr": True}})


def test_wrong_type_message_names_source_and_key() -> None:
    with pytest.raises(ConfigError) as info:
        from_dict(Recipe, {**MINIMAL, "train": {"lr": "fast"}}, source="recipes/speaker.yaml")
    assert str(info.value) == "recipes/speaker.yaml: 'train.lr' must be a float, got 'fast'"
    assert info.value.key == "train.lr"
    assert info.value.source == "recipes/speaker.yaml"


@pytest.mark.parametrize(
    ("section", "value", "message"),
    [
        ({"model": {"causal": 1}}, None, r"'model.causal' must be a bool \(true/false\), got 1"),
        ({"model": {"causal": "yes"}}, None, r"'model.causal' must be a bool"),
        ({"model": {"num_layers": 2.5}}, None, r"'model.num_layers' must be an int, got 2.5"),
        ({"model": {"num_layers": True}}, None, r"'model.num_layers' must be an int, got True"),
        ({"data": {"train": 3}}, None, r"'data.train' must be a path \(string\), got 3"),
        ({"data": {"train": "x", "speakers": "ab"}}, None, r"'data.speakers' must be a list, got 'ab'"),
        ({"data": {"train": "x", "speakers": ["a", 2]}}, None, r"'data.speakers\[1\]' must be a string, got 2"),
        ({"model": {"window": [1, "a"]}}, None, r"'model.window\[1\]' must be an int, got 'a'"),
        ({"size": [1]}, None, r"'size' must be a list of 2 items, got \[1\]"),
        ({"train": {"schedule": {"decay": "slow"}}}, None, r"'train.schedule.decay' must be a float, got 'slow'"),
        ({"train": {"schedule": [1]}}, None, r"'train.schedule' must be a mapping, got \[1\]"),
        ({"train": {"precision": "fp16"}}, None, r"'train.precision' must be one of \['fp32', 'bf16'\], got 'fp16'"),
        ({"train": {"seed": "x"}}, None, r"'train.seed' must be an int, got 'x'"),
        ({"model": 3}, None, r"'model' must be a mapping, got 3"),
    ],
)
def test_type_errors(section: dict, value: object, message: str) -> None:
    data = {**MINIMAL, **section}
    with pytest.raises(ConfigError, match=message):
        from_dict(Recipe, data, source="r.yaml")


def test_unknown_key_with_suggestion() -> None:
    with pytest.raises(ConfigError) as info:
        from_dict(Recipe, {**MINIMAL, "model": {"num_layer": 4}}, source="recipes/speaker.yaml")
    assert str(info.value) == "recipes/speaker.yaml: unknown key 'model.num_layer' (did you mean 'num_layers'?)"


def test_unknown_key_without_suggestion_and_top_level() -> None:
    with pytest.raises(ConfigError) as info:
        from_dict(Recipe, {**MINIMAL, "zzz": 1})
    assert str(info.value) == "unknown key 'zzz'"
    with pytest.raises(ConfigError, match=r"unknown key 'trian' \(did you mean 'train'\?\)"):
        from_dict(Recipe, {**MINIMAL, "trian": {}})


def test_missing_required_key() -> None:
    with pytest.raises(ConfigError) as info:
        from_dict(Recipe, {"data": {"dev": "x"}}, source="recipes/speaker.yaml")
    assert str(info.value) == "recipes/speaker.yaml: missing required key 'data.train'"
    with pytest.raises(ConfigError, match=r"missing required key 'data'$"):
        from_dict(Recipe, {})
    with pytest.raises(ConfigError, match=r"missing required key 'train.stages\[1\].name'"):
        from_dict(Recipe, {**MINIMAL, "train": {"stages": [{"name": "a"}, {"epochs": 2}]}})


def test_literal_choices() -> None:
    cfg = from_dict(Recipe, {**MINIMAL, "model": {"pooling": "self_attention"}})
    assert cfg.model.pooling == "self_attention"
    with pytest.raises(ConfigError) as info:
        from_dict(Recipe, {**MINIMAL, "model": {"pooling": "atentive"}}, source="recipes/speaker.yaml")
    assert str(info.value) == (
        "recipes/speaker.yaml: 'model.pooling' must be one of "
        "['attentive', 'mean_std', 'self_attention'], got 'atentive'"
    )


def test_optional_and_union() -> None:
    cfg = from_dict(Recipe, {"data": {"train": "t", "dev": None}, "train": {"seed": None}})
    assert cfg.data.dev is None and cfg.train.seed is None
    cfg = from_dict(Recipe, {"data": {"train": "t", "dev": "dv"}, "train": {"seed": 7}})
    assert cfg.data.dev == Path("dv") and cfg.train.seed == 7
    with pytest.raises(ConfigError, match=r"'data.train' must be a path \(string\), got None"):
        from_dict(Recipe, {"data": {"train": None}})


def test_union_of_several_types() -> None:
    @dataclass
    class U:
        x: int | str = 0

    assert from_dict(U, {"x": 3}).x == 3
    assert from_dict(U, {"x": "a"}).x == "a"
    with pytest.raises(ConfigError, match=r"'x' must be an int or a string, got 1.5"):
        from_dict(U, {"x": 1.5})


def test_nested_list_of_dataclasses() -> None:
    data = {**MINIMAL, "train": {"stages": [{"name": "warmup", "lr": 1e-4}, {"name": "main", "epochs": 9}]}}
    cfg = from_dict(Recipe, data)
    assert cfg.train.stages == [Stage("warmup", 1, 1e-4), Stage("main", 9, None)]
    with pytest.raises(ConfigError, match=r"unknown key 'train.stages\[1\].epoch' \(did you mean 'epochs'\?\)"):
        from_dict(Recipe, {**MINIMAL, "train": {"stages": [{"name": "a"}, {"name": "b", "epoch": 2}]}})
    with pytest.raises(ConfigError, match=r"'train.stages\[0\]' must be a mapping, got 'warmup'"):
        from_dict(Recipe, {**MINIMAL, "train": {"stages": ["warmup"]}})


def test_post_init_errors_are_wrapped() -> None:
    with pytest.raises(ConfigError) as info:
        from_dict(Recipe, {**MINIMAL, "model": {"dropout": 1.5}}, source="r.yaml")
    assert str(info.value) == "r.yaml: invalid 'model': dropout must be in [0, 1), got 1.5"
    assert info.value.key == "model"
    assert isinstance(info.value, ValueError)


def test_not_a_mapping_and_not_a_dataclass() -> None:
    with pytest.raises(ConfigError, match="the recipe must be a mapping"):
        from_dict(Recipe, [1, 2])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        from_dict(dict, {})  # type: ignore[type-var]


# ----------------------------------------------------------------- overrides

def test_overrides_parse_yaml_values() -> None:
    data = {"data": {"train": "t"}, "model": {"num_layers": 6}}
    out = apply_overrides(
        data,
        ["model.num_layers=4", "model.causal=true", "model.window=[1, 2]", "train.lr=1e-4", "data.dev=null"],
        schema=Recipe,
    )
    assert out["model"] == {"num_layers": 4, "causal": True, "window": [1, 2]}
    assert out["train"] == {"lr": 1e-4}  # section created: known to the schema
    assert out["data"]["dev"] is None
    assert data["model"]["num_layers"] == 6  # input untouched
    cfg = from_dict(Recipe, out)
    assert cfg.model.window == (1, 2) and cfg.train.lr == 1e-4


def test_override_unknown_path_suggests() -> None:
    with pytest.raises(ConfigError) as info:
        apply_overrides(MINIMAL, ["model.num_layer=4"], source="r.yaml", schema=Recipe)
    assert str(info.value) == (
        "r.yaml: override 'model.num_layer=4': unknown key 'model.num_layer' (did you mean 'num_layers'?)"
    )
    # without a schema, paths must exist in the data
    with pytest.raises(ConfigError, match=r"unknown key 'data.trian' \(did you mean 'train'\?\)"):
        apply_overrides(MINIMAL, ["data.trian=x"])
    with pytest.raises(ConfigError, match=r"'data.train' is not a mapping"):
        apply_overrides(MINIMAL, ["data.train.x=1"])


def test_override_syntax_errors() -> None:
    with pytest.raises(ConfigError, match=r"override 'model.num_layers' must look like 'section.key=value'"):
        apply_overrides(MINIMAL, ["model.num_layers"], schema=Recipe)
    with pytest.raises(ConfigError, match="cannot parse the value"):
        apply_overrides(MINIMAL, ["model.window=[1, 2"], schema=Recipe)


def test_override_into_lists_and_dicts() -> None:
    data = {**MINIMAL, "train": {"stages": [{"name": "a"}, {"name": "b"}]}}
    out = apply_overrides(data, ["train.stages.1.epochs=5", "train.schedule.decay=0.5"], schema=Recipe)
    cfg = from_dict(Recipe, out)
    assert cfg.train.stages[1].epochs == 5 and cfg.train.schedule == {"decay": 0.5}
    with pytest.raises(ConfigError, match=r"is a list of 2 items, no item '2'"):
        apply_overrides(data, ["train.stages.2.epochs=5"], schema=Recipe)
    with pytest.raises(ConfigError, match=r"unknown key 'train.stages.0.epoch' \(did you mean 'epochs'\?\)"):
        apply_overrides(data, ["train.stages.0.epoch=5"], schema=Recipe)


# ----------------------------------------------------------------- files

def test_load_and_save_recipe(tmp_path: Path) -> None:
    recipe = tmp_path / "speaker.yaml"
    recipe.write_text(
        "data:\n  train: data/train\nmodel:\n  num_layers: 2\n  pooling: mean_std\ntrain:\n  lr: 3e-4\n"
    )
    cfg = load_recipe(Recipe, recipe, overrides=["model.num_layers=4"])
    assert cfg.model.num_layers == 4 and cfg.model.pooling == "mean_std" and cfg.train.lr == 3e-4

    out = save_recipe(cfg, tmp_path / "run" / "recipe.yaml")
    assert out.is_file()
    assert load_recipe(Recipe, out) == cfg
    assert "num_layers: 4" in out.read_text()


def test_load_recipe_errors_name_the_file(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("data:\n  train: x\nmodel:\n  num_layer: 2\n")
    with pytest.raises(ConfigError) as info:
        load_recipe(Recipe, recipe)
    assert str(info.value) == f"{recipe}: unknown key 'model.num_layer' (did you mean 'num_layers'?)"

    with pytest.raises(ConfigError, match=r"override 'train.lrr=1'.*did you mean 'lr'"):
        load_recipe(Recipe, recipe, ["train.lrr=1"])


def test_load_recipe_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_recipe(Recipe, missing)
    assert str(info.value) == f"{missing}: recipe file not found"


def test_load_recipe_yaml_syntax_error_gives_line(tmp_path: Path) -> None:
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("data:\n  train: x\nmodel:\n  num_layers: [1, 2\n  d_model: 3\n")
    with pytest.raises(ConfigError) as info:
        load_recipe(Recipe, recipe)
    message = str(info.value)
    assert message.startswith(f"{recipe}:")
    assert info.value.line is not None and 4 <= info.value.line <= 5
    assert f"{recipe}:{info.value.line}: invalid YAML" in message
    assert "\n" not in message


def test_load_recipe_rejects_non_mapping_and_code(tmp_path: Path) -> None:
    recipe = tmp_path / "list.yaml"
    recipe.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        load_recipe(Recipe, recipe)
    code = tmp_path / "code.yaml"
    code.write_text("data: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_recipe(Recipe, code)


def test_empty_recipe_reports_missing_keys(tmp_path: Path) -> None:
    recipe = tmp_path / "empty.yaml"
    recipe.write_text("# nothing\n")
    with pytest.raises(ConfigError, match=r"missing required key 'data'"):
        load_recipe(Recipe, recipe)
