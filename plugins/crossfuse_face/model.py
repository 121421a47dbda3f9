"""The face model: backbone -> embedding, and a margin head over identities that only training uses."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import FaceHeadConfig
from .heads import EmbeddingHead, MarginHead


class FaceModel(nn.Module):
    """Backbone -> embedding; ``margin`` (training only) turns embeddings into identity logits."""

    def __init__(self, backbone: nn.Module, config: FaceHeadConfig, identities: int | None):
        super().__init__()
        self.backbone = backbone
        self.embed = EmbeddingHead(backbone.feature_dim, config.embedding_dim, config.dropout)
        # A saved run is served without the classifier: embeddings are all matching needs.
        self.margin = (MarginHead(config.embedding_dim, identities, config.loss, config.margin, config.scale)
                       if identities else None)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None,
                with_embeddings: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Embeddings ``[B, D]`` (not normalised); with ``labels``, the margin head's identity logits
        (and the embeddings before them when ``with_embeddings``: distillation needs both).

        The margin head runs inside ``forward`` so DDP sees every parameter it must synchronise.
        """
        embeddings = self.embed(self.backbone(images))
        if labels is None:
            return embeddings
        logits = self.margin(embeddings, labels)
        return (embeddings, logits) if with_embeddings else logits


def normalised_embeddings(model: nn.Module, images: torch.Tensor, flip_test: bool) -> torch.Tensor:
    """L2-normalised embeddings of a batch of input tensors; with ``flip_test`` the embedding of each
    image's mirror image is added first (the common face-verification practice)."""
    embeddings = model(images).float()
    if flip_test:
        embeddings = embeddings + model(images.flip(-1)).float()
    return F.normalize(embeddings, dim=1)
