"""Generic heads that plugins reuse. Domain heads (detectors, margin heads) live in their plugins."""

from __future__ import annotations

import torch
from torch import nn


class LinearHead(nn.Module):
    """Dropout then one linear layer: features ``[B, D]`` -> logits ``[B, C]``."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_dim, out_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(features))


class MLPHead(nn.Module):
    """Two layers with GELU and dropout: features ``[B, D]`` -> logits ``[B, C]``."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 256, dropout: float = 0.1):
        super().__init__()
        self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, out_dim))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


def build_head(kind: str, in_dim: int, out_dim: int, hidden: int = 256, dropout: float = 0.1) -> nn.Module:
    """``"linear"`` or ``"mlp"`` head by name."""
    if kind == "linear":
        return LinearHead(in_dim, out_dim, dropout)
    if kind == "mlp":
        return MLPHead(in_dim, out_dim, hidden, dropout)
    raise ValueError(f"unknown head type {kind!r}; expected 'linear' or 'mlp'")


class BackboneWithHead(nn.Module):
    """``head(backbone(**inputs))``: the usual shape of a fine-tuned model.

    Parameters of ``backbone`` and ``head`` are kept apart so the trainer can give the
    freshly initialised head a larger learning rate (``train.head_lr``).
    """

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(**inputs))
