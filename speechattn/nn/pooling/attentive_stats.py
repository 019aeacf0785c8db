"""Attentive statistics pooling (ECAPA-TDNN, Desplanques et al. 2020)."""

from __future__ import annotations

import torch
from torch import Tensor

from speechattn.nn.pooling._masking import (
    check_positive_int,
    valid_frame_mask,
    weighted_mean_std,
)

__all__ = ["AttentiveStatsPooling"]


class AttentiveStatsPooling(torch.nn.Module):
    r"""Channel- and context-dependent attentive statistics pooling (ECAPA-TDNN).

    For every frame ``h_t`` (optionally concatenated with the utterance's global masked
    mean and std, ``global_context=True``) a score per channel is computed,

    .. math:: e_{t,c} = v_c^\top \tanh(W [h_t; \mu; \sigma] + b) + k_c,

    normalised with a softmax over the valid frames, and used for a weighted mean
    :math:`\tilde\mu_c = \sum_t \alpha_{t,c} h_{t,c}` and weighted std
    :math:`\tilde\sigma_c = \sqrt{\sum_t \alpha_{t,c} h_{t,c}^2 - \tilde\mu_c^2}`
    (computed as a central moment, clamped at ``1e-5`` before ``sqrt``).

    Unlike SpeechBrain's version the attention MLP has no BatchNorm (as in WeSpeaker's
    ``ASTP``): batch statistics would mix in padded frames in training mode, and padding
    must have no effect on the output.

    Args:
        input_dim (int): feature size ``C`` of the input frames.
        attention_dim (int, optional): hidden size of the attention MLP. (Default: ``128``)
        global_context (bool, optional): feed ``[h_t, mean, std]`` (size ``3C``) to the
            attention MLP instead of ``h_t`` alone. (Default: ``True``)
    """

    def __init__(self, input_dim: int, attention_dim: int = 128, global_context: bool = True) -> None:
        super().__init__()
        check_positive_int(input_dim, "input_dim")
        check_positive_int(attention_dim, "attention_dim")
        if not isinstance(global_context, bool):
            raise ValueError(f"global_context must be a bool, got {global_context!r}")
        self.input_dim = input_dim
        self.attention_dim = attention_dim
        self.global_context = global_context
        context_dim = 3 * input_dim if global_context else input_dim
        self.attention = torch.nn.Sequential(
            torch.nn.Linear(context_dim, attention_dim),
            torch.nn.Tanh(),
            torch.nn.Linear(attention_dim, input_dim),
        )

    @property
    def output_dim(self) -> int:
        """Size of the pooled vector: ``2 * input_dim`` (weighted mean then weighted std)."""
        return 2 * self.input_dim

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        r"""
        Args:
            x (Tensor): frames, shape `(batch, frames, input_dim)`.
            lengths (Tensor or None, optional): valid frames per utterance, shape `(batch,)`,
                integer, each in `[1, frames]`. ``None``: all frames valid. (Default: ``None``)

        Returns:
            Tensor: ``[weighted mean, weighted std]``, shape `(batch, 2 * input_dim)`.
        """
        mask = valid_frame_mask(x, lengths, self.input_dim).unsqueeze(-1)  # (B, T, 1)
        x = x.masked_fill(~mask, 0.0)
        if self.global_context:
            uniform = mask.to(x.dtype) / mask.sum(dim=1, keepdim=True).to(x.dtype)
            mean, std = weighted_mean_std(x, uniform)
            frames = x.shape[1]
            context = torch.cat(
                [x, mean.unsqueeze(1).expand(-1, frames, -1), std.unsqueeze(1).expand(-1, frames, -1)],
                dim=-1,
            )
        else:
            context = x
        scores = self.attention(context)  # (B, T, C)
        scores = scores.masked_fill(~mask, float("-inf"))
        alpha = torch.softmax(scores, dim=1)  # exactly 0 on padded frames
        mean, std = weighted_mean_std(x, alpha)
        return torch.cat([mean, std], dim=-1)

    def extra_repr(self) -> str:
        return (
            f"input_dim={self.input_dim}, attention_dim={self.attention_dim}, "
            f"global_context={self.global_context}"
        )
