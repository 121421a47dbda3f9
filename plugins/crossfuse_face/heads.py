"""Heads that turn backbone features into face embeddings and train them with angular margins.

:class:`EmbeddingHead` maps features to the embedding that is stored and matched;
:class:`MarginHead` is the training-only classifier over identities whose logits go into a plain
cross-entropy. Margin losses: ArcFace (additive angular margin, Deng et al., CVPR 2019,
arXiv:1801.07698) and CosFace (large-margin cosine loss, Wang et al., CVPR 2018,
arXiv:1801.09414), with a plain softmax classifier as the baseline.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LOSSES = ("arcface", "cosface", "softmax")
DEFAULT_MARGINS = {"arcface": 0.5, "cosface": 0.35, "softmax": 0.0}  # the papers' recommended values


class MarginHead(nn.Module):
    """Identity classifier whose logits, fed to ``F.cross_entropy``, give the ArcFace/CosFace loss.

    ``loss="arcface"``: target logit ``s * cos(theta + m)``; ``"cosface"``: ``s * (cos(theta) - m)``;
    other classes get ``s * cos(theta)``, where ``theta`` is the angle between the embedding and the
    (normalised) class weight. ``"softmax"``: an ordinary ``Linear`` layer, no normalisation or margin.
    Without ``labels`` (evaluation) no margin is applied.

    >>> head = MarginHead(128, num_classes=10)
    >>> loss = F.cross_entropy(head(torch.randn(4, 128), torch.tensor([0, 1, 2, 3])), torch.tensor([0, 1, 2, 3]))
    """

    def __init__(self, embedding_dim: int, num_classes: int, loss: str = "arcface", margin: float | None = None,
                 scale: float = 64.0):
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"unknown margin loss {loss!r}; choose one of {', '.join(LOSSES)}")
        self.loss, self.scale = loss, float(scale)
        self.margin = DEFAULT_MARGINS[loss] if margin is None else float(margin)
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_dim))
        nn.init.xavier_uniform_(self.weight)
        self.bias = nn.Parameter(torch.zeros(num_classes)) if loss == "softmax" else None
        # InsightFace's constants: beyond theta = pi - m, cos(theta + m) would turn back up (theta + m
        # passes pi), so the target logit switches to the CosFace-like cos(theta) - m * sin(m).
        self._cos_m, self._sin_m = math.cos(self.margin), math.sin(self.margin)
        self._threshold = math.cos(math.pi - self.margin)
        self._fallback = math.sin(math.pi - self.margin) * self.margin

    def extra_repr(self) -> str:
        return f"loss={self.loss}, margin={self.margin}, scale={self.scale}, classes={self.weight.shape[0]}"

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Cosine between each embedding and each class weight, ``[N, num_classes]``."""
        cosine = F.linear(F.normalize(embeddings, dim=1), F.normalize(self.weight, dim=1))
        return cosine.clamp(-1.0, 1.0)  # rounding can leave |cos| a hair above 1; acos/sqrt need it inside

    def target_logit(self, cosine: torch.Tensor) -> torch.Tensor:
        """The margin-penalised cosine for the true class (before scaling)."""
        if self.loss == "cosface":
            return cosine - self.margin
        # clamp_min keeps the sqrt's gradient finite at theta = 0.
        sine = torch.sqrt((1.0 - cosine * cosine).clamp_min(1e-12))
        phi = cosine * self._cos_m - sine * self._sin_m  # cos(theta + m)
        return torch.where(cosine > self._threshold, phi, cosine - self._fallback)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``[N, num_classes]``; pass ``labels`` during training to apply the margin.

        Always computed in fp32, autocast or not: bf16 keeps 8 bits of mantissa, so cosines of 0.996
        and 1.0 fall on neighbouring values and an angular margin of 0.5 rad loses its meaning.
        """
        if embeddings.dtype in (torch.float16, torch.bfloat16):
            embeddings = embeddings.float()
        with torch.autocast(embeddings.device.type, enabled=False):
            return self._logits(embeddings, labels)

    def _logits(self, embeddings: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if self.loss == "softmax":
            return F.linear(embeddings, self.weight, self.bias)
        cosine = self.cosine(embeddings)
        if labels is None:
            return self.scale * cosine
        index = labels.long().view(-1, 1)
        target = self.target_logit(cosine.gather(1, index))
        return self.scale * cosine.scatter(1, index, target)


class EmbeddingHead(nn.Module):
    """Backbone features to a face embedding: ``[Dropout] -> Linear(no bias) -> BatchNorm1d``.

    This is ArcFace's "FC-BN" neck (their best "E" option adds a BN before the dropout, which
    matters for flattened conv maps; our backbones already end in pooled, normalised features).
    The bias is left out because the BN that follows would cancel it. The output is *not*
    L2-normalised: the margin head and the matcher normalise, and the norm stays available as
    a quality signal.
    """

    def __init__(self, feature_dim: int, embedding_dim: int = 128, dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.linear = nn.Linear(feature_dim, embedding_dim, bias=False)
        self.norm = nn.BatchNorm1d(embedding_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Embeddings ``[N, embedding_dim]`` from features ``[N, feature_dim]`` (or ``[N, C, 1, 1]``)."""
        return self.norm(self.linear(self.dropout(features.flatten(1))))
