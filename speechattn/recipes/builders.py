"""Models built from recipes: what training and inference both construct from a run's ``config.yaml``."""

from __future__ import annotations

from typing import Union

from torch import nn

from speechattn.data.labels import FrameGrid
from speechattn.models.ctc import CTCModel
from speechattn.models.labeler import FrameLabeler
from speechattn.models.speaker import SpeakerEmbedder
from speechattn.nn.encoder import EncoderConfig, TruncatedEncoder
from speechattn.recipes.ctc import CTCRecipe
from speechattn.recipes.labeling import LabelRecipe
from speechattn.recipes.speaker import SpeakerModelConfig

__all__ = ["build_encoder", "build_embedder", "build_labeler", "build_ctc_model", "output_grid"]


def build_encoder(config: EncoderConfig, feature_dim: int) -> TruncatedEncoder:
    """The encoder of ``config``, its ``input_dim`` set from the features."""
    return TruncatedEncoder.from_config(EncoderConfig(**{**config.__dict__, "input_dim": feature_dim}))


def build_embedder(model: SpeakerModelConfig, feature_dim: int) -> SpeakerEmbedder:
    """The speaker recipe's embedder."""
    return SpeakerEmbedder(build_encoder(model.encoder, feature_dim), model.embed_dim, model.pooling, model.aggregate)


def build_labeler(recipe: LabelRecipe, num_classes: int) -> FrameLabeler:
    """The frame-labeling recipe's labeler."""
    return FrameLabeler(build_encoder(recipe.model.encoder, recipe.features.feature_dim), num_classes,
                        recipe.model.mode, recipe.model.head_hidden, recipe.model.head_dropout)


def build_ctc_model(recipe: CTCRecipe, vocab_size: int, encoder: nn.Module | None = None) -> CTCModel:
    """The CTC recipe's model. ``encoder`` replaces the recipe's truncated encoder (baselines train
    in the same harness this way)."""
    if encoder is None:
        encoder = build_encoder(recipe.model.encoder, recipe.features.feature_dim)
    return CTCModel(encoder, vocab_size, recipe.model.head_dropout)


def output_grid(recipe: Union[LabelRecipe, CTCRecipe]) -> FrameGrid:
    """Times of a frame model's output frames (Kaldi framing, then the encoder's subsampling)."""
    feats = recipe.features
    sub = recipe.model.encoder.subsampling
    return FrameGrid.for_model(feats.frame_shift / feats.sample_rate, feats.frame_length / feats.sample_rate,
                               sub, {1: 1, 2: 3, 4: 7}[sub])
