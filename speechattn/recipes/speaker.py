"""The speaker-recognition recipe (``task: speaker``): typed blocks validated from YAML."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from speechattn.audio.features import FeatureConfig
from speechattn.data.augment import AugmentConfig
from speechattn.nn.encoder import EncoderConfig
from speechattn.recipes.train import TrainConfig

__all__ = ["SpeakerDataConfig", "SpeakerModelConfig", "SpeakerLossConfig", "SpeakerEvalConfig", "SpeakerRecipe"]


@dataclass
class SpeakerDataConfig:
    """Where the data is. References are paths under the data root (Kaldi dir, CSV, JSONL)
    or ``CORPUS:SPLIT`` (see :mod:`speechattn.data.splits`).

    ``train_shards``: a shard folder (holding ``index.json``; written by ``speechattn data
    shard``), under the data root or absolute. When set, training streams random crops from its
    webdataset shards through a DataLoader with ``num_workers`` worker processes instead of
    holding the training features in memory (for corpora larger than RAM); ``train``,
    ``speed_perturb`` and ``max_train_utterances`` are then not used (the shards already hold
    the perturbed copies; the speakers come from ``index.json``), and the shards' feature
    settings must equal the recipe's ``features``. Dev evaluation is unchanged, except that the
    shards keep no training embeddings: closed-set identification (every dev speaker seen in
    training) and ``eval.as_norm`` are refused with an error at start.

    ``num_workers``: DataLoader worker processes reading the shards (0: read in the training
    process); only used with ``train_shards``.

    ``test``: a test set, reported only (default None: dev only). Dev chooses everything (the
    best checkpoint, early stopping, the threshold); after training, the best saved model is
    evaluated once on ``test``, whole (no ``max_dev_utterances`` cap, all-pairs trials:
    ``trials`` is dev's), and ``metrics.json`` gets ``"test": {...}``. It must exist when
    given (checked at start), e.g. ``speechocean762/test``, which ``speechattn data prepare
    speechocean762`` writes from the original release.
    """

    train: str = "speechocean762/train"
    dev: str = "speechocean762/dev"
    test: str | None = None
    root: str | None = None
    noise: str | None = "noise"
    trials: str | None = None
    crop_seconds: float = 2.0
    #: speed-perturbation factors of the training audio; each factor other than 1 adds a
    #: perturbed copy of every training speaker as a new class (more speakers, less overfitting).
    speed_perturb: list[float] = field(default_factory=lambda: [1.0])
    max_train_utterances: int | None = None
    max_dev_utterances: int | None = None
    train_shards: str | None = None
    num_workers: int = 2

    def __post_init__(self) -> None:
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        if self.crop_seconds <= 0:
            raise ValueError(f"crop_seconds must be > 0, got {self.crop_seconds}")
        if not self.speed_perturb or any(f <= 0 for f in self.speed_perturb):
            raise ValueError(f"speed_perturb must list factors > 0, got {self.speed_perturb}")


@dataclass
class SpeakerModelConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    embed_dim: int = 192
    pooling: Literal["attentive", "mean_std", "self_attention"] = "attentive"
    aggregate: Literal["concat", "last"] = "concat"


@dataclass
class SpeakerLossConfig:
    name: Literal["aam", "softmax"] = "aam"
    margin: float = 0.2
    scale: float = 30.0
    margin_warmup: float = 0.2

    def __post_init__(self) -> None:
        if not 0.0 <= self.margin_warmup <= 1.0:
            raise ValueError(f"margin_warmup must be a fraction of the run in [0, 1], got {self.margin_warmup}")


@dataclass
class SpeakerEvalConfig:
    metric: Literal["eer", "accuracy"] = "eer"
    as_norm: bool = False
    cohort_top_k: int = 100
    max_nontarget: int | None = None
    batch_frames: int = 40000


@dataclass
class SpeakerRecipe:
    """A speaker-recognition recipe (``task: speaker``)."""

    task: Literal["speaker"] = "speaker"
    data: SpeakerDataConfig = field(default_factory=SpeakerDataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    normalize: Literal["mean", "mean_var", "none"] = "mean"
    model: SpeakerModelConfig = field(default_factory=SpeakerModelConfig)
    loss: SpeakerLossConfig = field(default_factory=SpeakerLossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: SpeakerEvalConfig = field(default_factory=SpeakerEvalConfig)
