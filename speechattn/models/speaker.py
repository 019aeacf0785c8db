"""Speaker embedding model: truncated encoder -> layer aggregation -> pooling -> embedding."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from speechattn.data.batching import length_batches
from speechattn.nn.encoder import TruncatedEncoder
from speechattn.nn.masks import frame_mask
from speechattn.nn.pooling import build_pooling

__all__ = ["SpeakerEmbedder", "AGGREGATIONS"]

AGGREGATIONS = ("last", "concat")


class SpeakerEmbedder(nn.Module):
    """Utterance-level speaker embeddings from frame features.

    ``aggregate="concat"`` concatenates the outputs of all encoder layers before pooling
    (multi-layer feature aggregation, as in MFA-Conformer): lower layers carry much of the
    speaker information that the last layer abstracts away. ``"last"`` pools the final layer.

    Args:
        encoder: the frame encoder.
        embed_dim: embedding size E.
        pooling: ``"attentive"``, ``"mean_std"`` or ``"self_attention"``.
        aggregate: ``"concat"`` or ``"last"``.
    """

    def __init__(
        self, encoder: TruncatedEncoder, embed_dim: int = 192, pooling: str = "attentive", aggregate: str = "concat"
    ) -> None:
        super().__init__()
        if embed_dim < 1:
            raise ValueError(f"embed_dim must be >= 1, got {embed_dim}")
        if aggregate not in AGGREGATIONS:
            raise ValueError(f"aggregate must be one of {list(AGGREGATIONS)}, got {aggregate!r}")
        self.encoder = encoder
        self.aggregate = aggregate
        frame_dim = encoder.d_model * (len(encoder.layers) if aggregate == "concat" else 1)
        self.frame_norm = nn.LayerNorm(frame_dim) if aggregate == "concat" else nn.Identity()
        self.pooling = build_pooling(pooling, frame_dim)
        pooled = self.pooling.output_dim
        self.pooled_norm = nn.BatchNorm1d(pooled)
        self.embedding = nn.Linear(pooled, embed_dim)
        self.embed_norm = nn.BatchNorm1d(embed_dim)
        self.embed_dim = embed_dim

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        """features: (batch, frames, input_dim), lengths: (batch,) -> embeddings (batch, embed_dim)."""
        if lengths is None:
            lengths = torch.full((features.shape[0],), features.shape[1], dtype=torch.long, device=features.device)
        if self.aggregate == "concat":
            hidden, out_lengths = self.encoder.extract_layers(features, lengths)
            frames = self.frame_norm(torch.cat(hidden, dim=-1))
        else:
            frames, out_lengths = self.encoder(features, lengths)
        pooled = self.pooling(frames, out_lengths.clamp(min=1))
        return self.embed_norm(self.embedding(self.pooled_norm(pooled.float())))


def normalize_features(x: Tensor, lengths: Tensor | None, mode: str) -> Tensor:
    """Per-utterance mean (and variance) normalisation of (batch, frames, dim) over valid frames."""
    if mode == "none":
        return x
    if lengths is None:
        out = x - x.mean(dim=1, keepdim=True)
        if mode == "mean_var":
            out = out / out.pow(2).mean(dim=1, keepdim=True).sqrt().clamp(min=1e-5)
        return out
    valid = frame_mask(lengths, x.shape[1])[..., None].to(x.dtype)
    count = lengths.clamp(min=1)[:, None, None].to(x.dtype)
    mean = (x * valid).sum(1, keepdim=True) / count
    out = (x - mean) * valid
    if mode == "mean_var":
        std = ((out**2).sum(1, keepdim=True) / count).sqrt().clamp(min=1e-5)
        out = out / std
    return out


def embed_feature_list(
    embedder: nn.Module, feats: Sequence[Tensor], normalize: str, batch_frames: int = 40000,
    device: torch.device | str = "cpu",
) -> Tensor:
    """(N, E) embeddings (on the CPU) of whole utterances, batched by similar length and computed on
    ``device``, where ``embedder`` is (call in eval mode)."""
    out: list[Tensor | None] = [None] * len(feats)
    for idx, x, lengths in length_batches(feats, batch_frames):
        x, lengths = x.to(device), lengths.to(device)
        emb = embedder(normalize_features(x, lengths, normalize), lengths).float().cpu()
        for j, i in enumerate(idx):
            out[i] = emb[j]
    return torch.stack(out)  # type: ignore[arg-type]
