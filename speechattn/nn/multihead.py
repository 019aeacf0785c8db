"""Multi-head self-attention over a window of nearby frames."""

from __future__ import annotations

from torch import Tensor, nn

from speechattn.nn.attention import truncated_attention
from speechattn.nn.positional import RotaryEmbedding

__all__ = ["MultiHeadSelfAttention"]


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention in which frame ``t`` attends to frames ``t-left .. t+right``.

    Args:
        d_model: model dimension (divisible by ``num_heads``).
        num_heads: number of heads.
        left_context: past frames visible to each frame (``None``: all).
        right_context: future frames visible to each frame (``None``: all); this is the layer's
            look-ahead in streaming.
        dropout: dropout on the attention output.
        rotary: apply rotary position embeddings to queries and keys.
        bias: use biases in the projections.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        left_context: int | None,
        right_context: int | None,
        dropout: float = 0.0,
        rotary: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if d_model < 1 or num_heads < 1 or d_model % num_heads:
            raise ValueError(f"d_model ({d_model}) must be a positive multiple of num_heads ({num_heads})")
        for name, value in (("left_context", left_context), ("right_context", right_context)):
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0 or None, got {value}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.d_model = d_model
        self.num_heads = num_heads
        self.head_dim = d_model // num_heads
        self.left_context = left_context
        self.right_context = right_context
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.out = nn.Linear(d_model, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout)
        self.rotary = RotaryEmbedding(self.head_dim) if rotary else None

    def project(self, x: Tensor, offset: int = 0) -> tuple[Tensor, Tensor, Tensor]:
        """x: (batch, time, d_model) at absolute frames ``offset..`` -> q, k, v (batch, heads, time, head_dim)."""
        batch, time, _ = x.shape
        qkv = self.qkv(x).view(batch, time, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.rotary is None:
            q, k, v = qkv.unbind(0)
            return q, k, v
        qk, v = qkv.split((2, 1), dim=0)
        q, k = self.rotary(qk, offset).unbind(0)  # queries and keys rotated in one call
        return q, k, v[0]

    def attend(self, q: Tensor, k: Tensor, v: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Windowed attention of projected q, k, v (batch, heads, time, head_dim) -> (batch, time, d_model)."""
        a = truncated_attention(q, k, v, self.left_context, self.right_context, lengths)
        batch, _, time, _ = a.shape
        return self.dropout(self.out(a.transpose(1, 2).reshape(batch, time, self.d_model)))

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """x: (batch, time, d_model), lengths: (batch,) or None -> (batch, time, d_model).

        Outputs at padded frames (``t >= length``) are the output projection's bias only.
        """
        q, k, v = self.project(x)
        return self.attend(q, k, v, lengths)
