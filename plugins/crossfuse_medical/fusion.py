"""An image backbone and a text backbone fused into one classifier (``head.fusion``).

- ``concat``: each input's pooled features layer-normalised, concatenated with the presence
  flags, then an MLP. The simple baseline, and the default.
- ``gated``: a gated multimodal unit (Arevalo et al., 2017): each input projected and squashed
  (``tanh``), a sigmoid gate computed from both decides, per hidden unit, how much comes from
  the image and how much from the note.
- ``cross-attention``: the image's spatial feature map (one token per position) and the note's
  token states attend to each other (one multi-head attention layer each way, with residuals),
  then both are pooled and classified. Image backbones without a spatial map (a ViT) give one
  token, their pooled features.

Every fusion takes ``keep`` ``[B, 2]``: whether the image and the note are present. A hidden
input contributes nothing (its features are zeroed, its attention masked, the gate forced to the
other), so the same model scores an image without a note, or a note without an image. Training
hides each input at random (``head.modality_dropout``), which teaches the head to cope and lets
the report score each input alone from the same run.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from crossfuse.heads import LinearHead, MLPHead

IMAGE, TEXT = 0, 1  # columns of ``keep``


class ConcatFusion(nn.Module):
    """LayerNorm per input, concatenation with the presence flags, MLP."""

    def __init__(self, dims: dict[str, int], outputs: int, hidden: int, dropout: float):
        super().__init__()
        self.names = list(dims)
        self.norms = nn.ModuleDict({name: nn.LayerNorm(dim) for name, dim in dims.items()})
        self.head = MLPHead(sum(dims.values()) + 2, outputs, hidden=hidden, dropout=dropout)

    def forward(self, features: dict[str, torch.Tensor], keep: torch.Tensor) -> torch.Tensor:
        parts = [self.norms[name](features[name]) * keep[:, _column(name), None] for name in self.names]
        return self.head(torch.cat([*parts, keep], dim=1))


class GatedFusion(nn.Module):
    """Gated multimodal unit: ``h = z * tanh(W_i x_i) + (1 - z) * tanh(W_t x_t)``, ``z = sigmoid(W_z [x_i; x_t])``."""

    def __init__(self, dims: dict[str, int], outputs: int, hidden: int, dropout: float):
        super().__init__()
        self.norms = nn.ModuleDict({name: nn.LayerNorm(dim) for name, dim in dims.items()})
        self.projections = nn.ModuleDict({name: nn.Linear(dim, hidden) for name, dim in dims.items()})
        self.gate = nn.Linear(dims["image"] + dims["text"] + 2, hidden)
        self.head = LinearHead(hidden, outputs, dropout)
        self.last_gate: Optional[torch.Tensor] = None  # mean share of the image per sample, for inspection

    def forward(self, features: dict[str, torch.Tensor], keep: torch.Tensor) -> torch.Tensor:
        normed = {name: norm(features[name]) * keep[:, _column(name), None] for name, norm in self.norms.items()}
        image = torch.tanh(self.projections["image"](normed["image"]))
        text = torch.tanh(self.projections["text"](normed["text"]))
        gate = torch.sigmoid(self.gate(torch.cat([normed["image"], normed["text"], keep], dim=1)))
        # A hidden input gets no say: all from the other (both hidden never happens in training).
        gate = torch.where(keep[:, TEXT, None] == 0, torch.ones_like(gate), gate)
        gate = torch.where(keep[:, IMAGE, None] == 0, torch.zeros_like(gate), gate)
        self.last_gate = gate.detach().mean(dim=1)
        return self.head(gate * image + (1 - gate) * text)


class CrossAttentionFusion(nn.Module):
    """Image positions attend to the note's tokens and the tokens to the positions; pooled, classified."""

    def __init__(self, dims: dict[str, int], outputs: int, hidden: int, dropout: float, heads: int):
        super().__init__()
        self.image_in = nn.Sequential(nn.LayerNorm(dims["image_tokens"]), nn.Linear(dims["image_tokens"], hidden))
        self.text_in = nn.Sequential(nn.LayerNorm(dims["text_tokens"]), nn.Linear(dims["text_tokens"], hidden))
        self.image_reads_text = nn.MultiheadAttention(hidden, heads, dropout=dropout, batch_first=True)
        self.text_reads_image = nn.MultiheadAttention(hidden, heads, dropout=dropout, batch_first=True)
        self.image_norm, self.text_norm = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.head = MLPHead(2 * hidden + 2, outputs, hidden=hidden, dropout=dropout)

    def forward(self, features: dict[str, torch.Tensor], keep: torch.Tensor) -> torch.Tensor:
        image_kept, text_kept = keep[:, IMAGE, None, None], keep[:, TEXT, None, None]
        image = self.image_in(features["image_tokens"]) * image_kept
        text = self.text_in(features["text_tokens"]) * text_kept
        mask = features["text_mask"].bool()
        read_text, _ = self.image_reads_text(image, text, text, key_padding_mask=~mask, need_weights=False)
        read_image, _ = self.text_reads_image(text, image, image, need_weights=False)
        image = self.image_norm(image + read_text * text_kept) * image_kept
        text = self.text_norm(text + read_image * image_kept) * text_kept
        weights = mask.unsqueeze(-1).to(text.dtype)
        pooled_text = (text * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return self.head(torch.cat([image.mean(1), pooled_text, keep], dim=1))


def _column(name: str) -> int:
    return IMAGE if name == "image" else TEXT


class TokenTaps:
    """Forward hooks that keep the token sequences cross-attention needs while the backbones run their
    own forward: the image backbone's last spatial feature map, the text encoder's last hidden states."""

    def __init__(self, image_layer: Optional[nn.Module], text_model: nn.Module):
        self.seen: dict[str, torch.Tensor] = {}
        if image_layer is not None:
            image_layer.register_forward_hook(lambda m, i, output: self.seen.__setitem__("image", output))
        text_model.register_forward_hook(
            lambda m, i, output: self.seen.__setitem__("text", output.last_hidden_state))

    def take(self, name: str) -> Optional[torch.Tensor]:
        return self.seen.pop(name, None)


class FusionClassifier(nn.Module):
    """Backbones of the inputs in ``head.inputs``, and the fusion over their features.

    ``encode`` runs the backbones once, ``classify`` fuses given the presence flags: evaluation
    scores fused, image-alone and note-alone from one pass of the backbones.
    """

    def __init__(self, image: nn.Module, text: nn.Module, outputs: int, head: Any,
                 example: Optional[torch.Tensor] = None):
        super().__init__()
        self.image, self.text = image, text
        self.inputs = tuple(head.inputs)
        self.kind = head.fusion if len(self.inputs) == 2 else "concat"  # one input: nothing to fuse
        self.taps: Optional[TokenTaps] = None
        if self.kind == "cross-attention":
            from crossfuse.explain import spatial_feature_map

            layer = spatial_feature_map(image, example) if example is not None else None
            self.taps = TokenTaps(layer, text.model)
            channels = _channels(image, layer, example)
            dims = {"image_tokens": channels, "text_tokens": text.feature_dim}
            self.fusion: nn.Module = CrossAttentionFusion(dims, outputs, head.hidden, head.dropout, head.attention_heads)
        else:
            dims = {name: getattr(self, name).feature_dim for name in self.inputs}
            fusion_class = GatedFusion if self.kind == "gated" else ConcatFusion
            self.fusion = fusion_class(dims, outputs, head.hidden, head.dropout)

    def encode(self, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, Any]:
        """Each used backbone's pooled features (and, for cross-attention, its tokens)."""
        features: dict[str, Any] = {}
        if "image" in self.inputs:
            features["image"] = self.image(images)
        if "text" in self.inputs:
            features["text"] = self.text(input_ids=input_ids, attention_mask=attention_mask)
        if self.taps is not None:
            spatial = self.taps.take("image")
            features["image_tokens"] = spatial.flatten(2).transpose(1, 2) if spatial is not None \
                else features["image"].unsqueeze(1)
            features["text_tokens"] = self.taps.take("text")
            features["text_mask"] = attention_mask
        return features

    def classify(self, features: dict[str, Any], keep: torch.Tensor) -> torch.Tensor:
        """Logits from the features, each input counted only where ``keep`` says it is present."""
        keep = keep.to(next(iter(v for v in features.values() if isinstance(v, torch.Tensor))).dtype)
        return self.fusion(features, self._restrict(keep))

    def _restrict(self, keep: torch.Tensor) -> torch.Tensor:
        """Inputs the head does not use are absent, always."""
        mask = torch.tensor([float("image" in self.inputs), float("text" in self.inputs)], device=keep.device)
        return keep * mask.to(keep.dtype)

    def forward(self, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                keep: Optional[torch.Tensor] = None) -> torch.Tensor:
        if keep is None:
            keep = torch.ones(len(images), 2, device=images.device)
        return self.classify(self.encode(images, input_ids, attention_mask), keep)


def _channels(image: nn.Module, layer: Optional[nn.Module], example: Optional[torch.Tensor]) -> int:
    """Channels of the spatial map ``layer`` outputs (probed once in eval mode), else the pooled size."""
    if layer is None or example is None:
        return int(image.feature_dim)
    seen: list[int] = []
    hook = layer.register_forward_hook(lambda m, i, output: seen.append(int(output.shape[1])))
    training = image.training
    image.eval()
    try:
        with torch.no_grad():
            image(example)
    finally:
        image.train(training)
        hook.remove()
    return seen[-1]


def modality_dropout(keep: torch.Tensor, rate: float) -> torch.Tensor:
    """Hide each present input with probability ``rate``, never both of one sample (then one of the
    two, at random, is shown again). Draws from torch's global generator, so a resume replays it."""
    if rate <= 0:
        return keep
    hide = torch.rand(keep.shape, device=keep.device) < rate
    both = hide.all(dim=1)
    if bool(both.any()):
        show = torch.randint(0, 2, (int(both.sum()),), device=keep.device)
        hide[both, show] = False
    return keep * (~hide).to(keep.dtype)
