"""Speaker-classification heads with their losses: AAM-softmax (ArcFace) and plain softmax.

Both map ``embeddings (batch, embed_dim)`` and ``labels (batch,)`` to ``(loss, logits)``;
the head owns the class weights, so it is dropped after training and only the embedding
extractor is kept.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["LOSS_CLASSES", "AAMSoftmax", "SoftmaxLoss", "build_loss"]

# Floor for 1 - cos^2 before sqrt: keeps sin(theta) and its gradient finite when an
# embedding is (numerically) parallel to a class weight.
_SIN2_EPS = 1e-7


def _check_positive_int(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_inputs(embeddings: Tensor, labels: Tensor, embed_dim: int, num_classes: int) -> None:
    if embeddings.dim() != 2 or embeddings.shape[1] != embed_dim:
        raise ValueError(f"embeddings must have shape (batch, {embed_dim}), got {tuple(embeddings.shape)}")
    if labels.dim() != 1 or labels.shape[0] != embeddings.shape[0]:
        raise ValueError(f"labels must have shape ({embeddings.shape[0]},), got {tuple(labels.shape)}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.is_complex():
        raise ValueError(f"labels must be class indices (integer dtype), got {labels.dtype}")
    if labels.numel() and (bool((labels < 0).any()) or bool((labels >= num_classes).any())):
        raise ValueError(f"labels must be in [0, {num_classes}), got min {int(labels.min())}, max {int(labels.max())}")


class AAMSoftmax(torch.nn.Module):
    r"""Additive angular margin softmax (ArcFace, Deng et al. 2019), as in WeSpeaker/insightface.

    With :math:`\cos\theta_j = \hat x^\top \hat w_j` (L2-normalised embedding and class
    weights) the logits are

    .. math:: z_j = s\cos\theta_j \;(j \ne y), \qquad z_y = s\,\psi(\theta_y),

    where :math:`\psi(\theta) = \cos(\theta + m)` while :math:`\theta + m \le \pi`. Beyond
    that :math:`\cos(\theta+m)` would increase again with :math:`\theta` (rewarding a worse
    target angle), so, as in insightface/WeSpeaker, for :math:`\theta > \pi - m` the target
    logit falls back to the monotone :math:`\cos\theta - m\sin m`. With
    ``easy_margin=True`` the margin is applied only where :math:`\cos\theta_y > 0`
    (:math:`\psi = \cos\theta` elsewhere).

    ``margin`` is a settable property (``head.margin = 0.1``) for margin warm-up schedules;
    it is a plain attribute, not part of the ``state_dict``.

    Args:
        embed_dim (int): embedding size.
        num_classes (int): number of training speakers.
        margin (float, optional): angular margin ``m`` in radians, in ``[0, pi/2)``. (Default: ``0.2``)
        scale (float, optional): logit scale ``s`` > 0. (Default: ``30.0``)
        easy_margin (bool, optional): see above. (Default: ``False``)
    """

    def __init__(
        self,
        embed_dim: int,
        num_classes: int,
        margin: float = 0.2,
        scale: float = 30.0,
        easy_margin: bool = False,
    ) -> None:
        super().__init__()
        _check_positive_int(embed_dim, "embed_dim")
        _check_positive_int(num_classes, "num_classes")
        if not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"scale must be a positive finite number, got {scale!r}")
        self.embed_dim = embed_dim
        self.num_classes = num_classes
        self.scale = float(scale)
        self.easy_margin = bool(easy_margin)
        self.weight = torch.nn.Parameter(torch.empty(num_classes, embed_dim))
        torch.nn.init.xavier_uniform_(self.weight)
        self.margin = margin  # property setter: validates and caches the trig constants

    @property
    def margin(self) -> float:
        """Angular margin ``m`` (radians); assign to change it, e.g. during warm-up."""
        return self._margin

    @margin.setter
    def margin(self, value: float) -> None:
        value = float(value)
        if not (0.0 <= value < math.pi / 2):
            raise ValueError(f"margin must be in [0, pi/2), got {value!r}")
        self._margin = value
        self._cos_m = math.cos(value)
        self._sin_m = math.sin(value)
        self._th = math.cos(math.pi - value)  # cos(theta) below this <=> theta + m > pi
        self._mm = math.sin(math.pi - value) * value

    def cosine(self, embeddings: Tensor) -> Tensor:
        r"""Margin-free cosine similarities to the class weights.

        Args:
            embeddings (Tensor): shape `(batch, embed_dim)`.

        Returns:
            Tensor: :math:`\cos\theta`, shape `(batch, num_classes)`, float32, in `[-1, 1]`.
        """
        if embeddings.dim() != 2 or embeddings.shape[1] != self.embed_dim:
            raise ValueError(f"embeddings must have shape (batch, {self.embed_dim}), got {tuple(embeddings.shape)}")
        # float32 even under autocast: the margin arithmetic needs more than bf16/fp16 precision
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            cos = F.linear(F.normalize(embeddings.float(), dim=-1), F.normalize(self.weight.float(), dim=-1))
        return cos.clamp(-1.0, 1.0)

    def forward(self, embeddings: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        r"""
        Args:
            embeddings (Tensor): shape `(batch, embed_dim)`.
            labels (Tensor): class indices, shape `(batch,)`, integer, in `[0, num_classes)`.

        Returns:
            (Tensor, Tensor):
                Tensor
                    mean cross-entropy over the batch, a scalar.
                Tensor
                    logits with the margin applied to each row's target class, shape
                    `(batch, num_classes)`, float32 (use :meth:`cosine` for margin-free scores).
        """
        _check_inputs(embeddings, labels, self.embed_dim, self.num_classes)
        cos = self.cosine(embeddings)
        sin = (1.0 - cos * cos).clamp(min=_SIN2_EPS).sqrt()
        phi = cos * self._cos_m - sin * self._sin_m  # cos(theta + m)
        if self.easy_margin:
            phi = torch.where(cos > 0, phi, cos)
        else:
            phi = torch.where(cos > self._th, phi, cos - self._mm)
        target = F.one_hot(labels.to(cos.device).long(), self.num_classes).bool()
        logits = self.scale * torch.where(target, phi, cos)
        return F.cross_entropy(logits, labels.long()), logits

    def extra_repr(self) -> str:
        return (
            f"embed_dim={self.embed_dim}, num_classes={self.num_classes}, margin={self.margin}, "
            f"scale={self.scale}, easy_margin={self.easy_margin}"
        )


class SoftmaxLoss(torch.nn.Module):
    r"""Plain softmax head: a linear layer (with bias) followed by cross-entropy.

    Args:
        embed_dim (int): embedding size.
        num_classes (int): number of training speakers.
    """

    def __init__(self, embed_dim: int, num_classes: int) -> None:
        super().__init__()
        _check_positive_int(embed_dim, "embed_dim")
        _check_positive_int(num_classes, "num_classes")
        self.embed_dim = embed_dim
        self.num_classes = num_classes
        self.linear = torch.nn.Linear(embed_dim, num_classes)

    def forward(self, embeddings: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        r"""
        Args:
            embeddings (Tensor): shape `(batch, embed_dim)`.
            labels (Tensor): class indices, shape `(batch,)`, integer, in `[0, num_classes)`.

        Returns:
            (Tensor, Tensor): mean cross-entropy (scalar) and logits `(batch, num_classes)`.
        """
        _check_inputs(embeddings, labels, self.embed_dim, self.num_classes)
        logits = self.linear(embeddings)
        return F.cross_entropy(logits, labels.long()), logits

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_classes={self.num_classes}"


#: Registry used by :func:`build_loss` (name -> class); ``"aam"`` is an alias.
LOSS_CLASSES: dict[str, type[torch.nn.Module]] = {
    "aam_softmax": AAMSoftmax,
    "aam": AAMSoftmax,
    "softmax": SoftmaxLoss,
}


def build_loss(name: str, embed_dim: int, num_classes: int, **kwargs: Any) -> torch.nn.Module:
    """Build a classification head + loss by name.

    Args:
        name (str): ``"aam_softmax"`` (alias ``"aam"``) or ``"softmax"``.
        embed_dim (int): embedding size.
        num_classes (int): number of training speakers.
        **kwargs: further constructor arguments (``margin``, ``scale``, ``easy_margin``).

    Returns:
        torch.nn.Module: the head; ``head(embeddings, labels) -> (loss, logits)``.
    """
    try:
        cls = LOSS_CLASSES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown loss {name!r}; valid names: {', '.join(LOSS_CLASSES)}") from None
    return cls(embed_dim, num_classes, **kwargs)
