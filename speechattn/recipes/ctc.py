"""The CTC transcription recipe (``task: ctc``): typed blocks validated from YAML."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from speechattn.audio.features import FeatureConfig
from speechattn.data.augment import AugmentConfig
from speechattn.nn.encoder import EncoderConfig
from speechattn.recipes.train import TrainConfig

__all__ = ["CTCDataConfig", "CTCModelConfig", "CTCDecodeConfig", "CTCRecipe"]


@dataclass
class CTCDataConfig:
    """Transcribed data. ``train`` / ``dev`` are references under the data root (Kaldi dir with
    ``text``, CSV or JSONL manifest with a ``text`` column, see :mod:`speechattn.data.splits`).

    ``test``: a test set, reported only (default None: dev only). Dev chooses the best
    checkpoint and early stopping; after training, the best saved model decodes ``test`` once,
    whole (no ``max_dev_utterances`` cap), and ``metrics.json`` gets ``"test": {...}``. It must
    exist when given (checked at start), e.g. ``speechocean762/test``, which ``speechattn data
    prepare speechocean762`` writes from the original release.
    """

    train: str = "speechocean762/train"
    dev: str = "speechocean762/dev"
    test: str | None = None
    root: str | None = None
    tokens: Literal["phones", "chars"] = "phones"
    #: pronunciation lexicon (under the data root, or absolute) for ``tokens: phones``.
    lexicon: str | None = "speechocean762/lexicon.txt"
    strip_stress: bool = True
    #: speed-perturbation factors of the training audio (each factor adds a copy).
    speed_perturb: list[float] = field(default_factory=lambda: [1.0])
    #: training utterances longer than this are left out (memory of a padded batch).
    max_seconds: float = 30.0
    #: training batches are padded to a multiple of this many frames (fewer distinct shapes:
    #: faster CPU steps; padded frames are masked everywhere in our encoder).
    pad_multiple: int = 32
    #: the first this many epochs visit the training batches from the shortest utterances to
    #: the longest (SortaGrad) instead of in random order: CTC leaves its all-blank plateau
    #: more reliably (RESULTS.md, CTC section).
    sortagrad_epochs: int = 0
    max_train_utterances: int | None = None
    max_dev_utterances: int | None = None

    def __post_init__(self) -> None:
        if self.tokens == "phones" and not self.lexicon:
            raise ValueError("tokens: phones needs data.lexicon (a pronunciation lexicon)")
        if not self.speed_perturb or any(f <= 0 for f in self.speed_perturb):
            raise ValueError(f"speed_perturb must list factors > 0, got {self.speed_perturb}")
        if self.max_seconds <= 0:
            raise ValueError(f"max_seconds must be > 0, got {self.max_seconds}")
        if self.pad_multiple < 1:
            raise ValueError(f"pad_multiple must be >= 1, got {self.pad_multiple}")
        if self.sortagrad_epochs < 0:
            raise ValueError(f"sortagrad_epochs must be >= 0, got {self.sortagrad_epochs}")


@dataclass
class CTCModelConfig:
    encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(subsampling=4))
    head_dropout: float = 0.1


@dataclass
class CTCDecodeConfig:
    """Decoding: ``beam`` 1 is greedy (best path); > 1 is prefix beam search."""

    beam: int = 1
    batch_frames: int = 60000

    def __post_init__(self) -> None:
        if self.beam < 1 or self.batch_frames < 1:
            raise ValueError(f"beam and batch_frames must be >= 1, got {self.beam}, {self.batch_frames}")


@dataclass
class CTCRecipe:
    """A CTC transcription recipe (``task: ctc``)."""

    task: Literal["ctc"] = "ctc"
    data: CTCDataConfig = field(default_factory=CTCDataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: CTCModelConfig = field(default_factory=CTCModelConfig)
    augment: AugmentConfig = field(default_factory=lambda: AugmentConfig(noise_prob=0.0))
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: CTCDecodeConfig = field(default_factory=CTCDecodeConfig)

    def __post_init__(self) -> None:
        if self.augment.noise_prob > 0:
            raise ValueError("augment.noise_prob: noise mixing is not supported by ctc recipes; set it to 0")
