"""Self-attentive pooling: a learned weighted mean over frames, one or more heads."""

from __future__ import annotations

import torch
from torch import Tensor

from speechattn.nn.pooling._masking import check_positive_int, valid_frame_mask

__all__ = ["SelfAttentionPooling"]


class SelfAttentionPooling(torch.nn.Module):
    r"""Self-attentive pooling (Safari et al. 2019; Lin et al. 2017 with ``hidden_dim``).

    Each head ``k`` scores every frame with a learned function, normalises the scores with
    a softmax over the valid frames and takes the weighted mean of the *whole* frame
    vector:

    .. math:: \alpha_{t,k} = \mathrm{softmax}_t(s_k(h_t)), \qquad
              e_k = \sum_t \alpha_{t,k} h_t,

    with :math:`s_k(h) = w_k^\top h + b_k`, or :math:`v_k^\top \tanh(W h + b)` when
    ``hidden_dim`` is given. The heads' means are concatenated, so the output size is
    ``num_heads * input_dim`` (equal to ``input_dim`` for the default single head). The
    scoring layer is zero-initialised: at initialisation every head is the plain masked
    mean.

    Args:
        input_dim (int): feature size of the input frames.
        num_heads (int, optional): number of attention heads. (Default: ``1``)
        hidden_dim (int or None, optional): hidden size of a ``tanh`` scoring MLP; ``None``
            scores with a single linear layer. (Default: ``None``)
    """

    def __init__(self, input_dim: int, num_heads: int = 1, hidden_dim: int | None = None) -> None:
        super().__init__()
        check_positive_int(input_dim, "input_dim")
        check_positive_int(num_heads, "num_heads")
        if hidden_dim is not None:
            check_positive_int(hidden_dim, "hidden_dim")
        self.input_dim = input_dim
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        if hidden_dim is None:
            out = torch.nn.Linear(input_dim, num_heads)
            self.score = torch.nn.Sequential(out)
        else:
            out = torch.nn.Linear(hidden_dim, num_heads)
            self.score = torch.nn.Sequential(torch.nn.Linear(input_dim, hidden_dim), torch.nn.Tanh(), out)
        torch.nn.init.zeros_(out.weight)
        torch.nn.init.zeros_(out.bias)

    @property
    def output_dim(self) -> int:
        """Size of the pooled vector: ``num_heads * input_dim``."""
        return self.num_heads * self.input_dim

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        r"""
        Args:
            x (Tensor): frames, shape `(batch, frames, input_dim)`.
            lengths (Tensor or None, optional): valid frames per utterance, shape `(batch,)`,
                integer, each in `[1, frames]`. ``None``: all frames valid. (Default: ``None``)

        Returns:
            Tensor: concatenated per-head weighted means, shape `(batch, num_heads * input_dim)`
            (head-major: ``out[:, k*input_dim:(k+1)*input_dim]`` is head ``k``).
        """
        mask = valid_frame_mask(x, lengths, self.input_dim).unsqueeze(-1)  # (B, T, 1)
        x = x.masked_fill(~mask, 0.0)
        scores = self.score(x).masked_fill(~mask, float("-inf"))  # (B, T, H)
        alpha = torch.softmax(scores, dim=1)
        pooled = torch.einsum("bth,btd->bhd", alpha, x)  # (B, H, D)
        return pooled.reshape(x.shape[0], self.output_dim)

    def extra_repr(self) -> str:
        return f"input_dim={self.input_dim}, num_heads={self.num_heads}, hidden_dim={self.hidden_dim}"
