"""Temporal pooling layers: ``(batch, frames, dim)`` + lengths -> ``(batch, output_dim)``.

One class per module (WeSpeaker style); :func:`build_pooling` builds one by name.
"""

from __future__ import annotations

from typing import Any

import torch

from speechattn.nn.pooling.attentive_stats import AttentiveStatsPooling
from speechattn.nn.pooling.mean_std import MeanStdPooling
from speechattn.nn.pooling.self_attention import SelfAttentionPooling

__all__ = [
    "POOLING_CLASSES",
    "AttentiveStatsPooling",
    "MeanStdPooling",
    "SelfAttentionPooling",
    "build_pooling",
]

#: Registry used by :func:`build_pooling` (name -> class).
POOLING_CLASSES: dict[str, type[torch.nn.Module]] = {
    "mean_std": MeanStdPooling,
    "attentive": AttentiveStatsPooling,
    "self_attention": SelfAttentionPooling,
}


def build_pooling(name: str, input_dim: int, **kwargs: Any) -> torch.nn.Module:
    """Build a pooling layer by name.

    Args:
        name (str): ``"mean_std"``, ``"attentive"`` or ``"self_attention"``.
        input_dim (int): feature size of the frames to pool.
        **kwargs: further constructor arguments of that class (e.g. ``attention_dim``,
            ``num_heads``).

    Returns:
        torch.nn.Module: the layer; its ``output_dim`` property gives the pooled size.
    """
    try:
        cls = POOLING_CLASSES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown pooling {name!r}; valid names: {', '.join(POOLING_CLASSES)}") from None
    return cls(input_dim, **kwargs)
