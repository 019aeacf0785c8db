"""The frame-labeling recipe (``task: labeling``, e.g. voice activity): typed blocks validated from YAML.

``task: frame_labels``, the earlier name, is still accepted (see :mod:`speechattn.recipes.registry`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from speechattn.audio.features import FeatureConfig
from speechattn.data.augment import AugmentConfig
from speechattn.data.vad_sim import VadSimConfig
from speechattn.decoding.segments import PostprocessConfig
from speechattn.nn.encoder import EncoderConfig
from speechattn.recipes.train import TrainConfig

__all__ = ["LabelDataConfig", "LabelModelConfig", "LabelEvalConfig", "LabelRecipe"]


@dataclass
class LabelDataConfig:
    """Where the labelled data is (see :mod:`speechattn.data.labelled` for references).

    Either ``train`` + ``dev`` (labelled audio) or ``simulate`` (voice activity from
    ``simulate.train_speech`` / ``dev_speech`` and ``simulate.noise``) must be given.

    ``test`` (+ ``test_labels``, as ``dev_labels``): labelled audio reported only (default None:
    dev only). Dev chooses the best checkpoint and early stopping; after training, the best saved
    model labels ``test`` once, whole (no ``max_dev_files`` cap), and ``metrics.json`` gets
    ``"test": {...}``. It must exist when given (checked at start). ``simulate`` makes no test
    set (the noise recordings are split between train and dev only), so a simulated recipe
    reports dev only, unless ``test`` names real labelled audio.
    """

    train: str | None = None
    dev: str | None = None
    test: str | None = None
    train_labels: str | None = None
    dev_labels: str | None = None
    test_labels: str | None = None
    root: str | None = None
    simulate: VadSimConfig | None = None
    classes: list[str] | None = None
    label_map: dict[str, str] = field(default_factory=dict)
    tier: str | None = None
    frame_shift: float = 0.01
    noise: str | None = None
    crop_seconds: float = 8.0
    max_train_files: int | None = None
    max_dev_files: int | None = None

    def __post_init__(self) -> None:
        if self.simulate is None and (self.train is None or self.dev is None):
            raise ValueError("give data.train and data.dev (labelled audio), or data.simulate")
        if self.simulate is not None and (self.train is not None or self.dev is not None):
            raise ValueError("data.simulate generates train and dev; leave data.train and data.dev unset")
        if self.crop_seconds <= 0 or self.frame_shift <= 0:
            raise ValueError(f"crop_seconds and frame_shift must be > 0, got {self.crop_seconds}, {self.frame_shift}")
        if self.classes is not None and (not self.classes or len(set(self.classes)) != len(self.classes)):
            raise ValueError(f"classes must be a non-empty list of distinct names, got {self.classes}")


@dataclass
class LabelModelConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    mode: Literal["single", "multi"] = "single"
    head_hidden: int = 0
    head_dropout: float = 0.1


@dataclass
class LabelEvalConfig:
    metric: Literal["f1", "macro_f1", "detection_error_rate", "accuracy"] = "f1"
    step: float = 0.01
    batch_frames: int = 200000

    def __post_init__(self) -> None:
        if self.step <= 0 or self.batch_frames < 1:
            raise ValueError(f"step must be > 0 and batch_frames >= 1, got {self.step}, {self.batch_frames}")


@dataclass
class LabelRecipe:
    """A frame-labeling recipe (``task: labeling``)."""

    task: Literal["labeling"] = "labeling"
    data: LabelDataConfig = field(default_factory=lambda: LabelDataConfig(simulate=VadSimConfig()))
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: LabelModelConfig = field(default_factory=LabelModelConfig)
    augment: AugmentConfig = field(default_factory=lambda: AugmentConfig(noise_prob=0.0))
    train: TrainConfig = field(default_factory=TrainConfig)
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    eval: LabelEvalConfig = field(default_factory=LabelEvalConfig)
