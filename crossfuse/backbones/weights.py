"""``backbone.weights``: load the state dicts people have (torchvision, timm, transformers, DDP, Lightning ...).

Names rarely line up: a torchvision file says ``conv1.weight`` where the backbone holds
``body.conv1.weight``, DDP adds ``module.``, Lightning ``model.``, a sequence classifier ``bert.``.
The loader tries every (file prefix to strip, backbone prefix to add) pair built from the leading
dotted components of both sides and keeps the one that matches the most tensors of equal shape.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ..errors import CrossfuseError

if TYPE_CHECKING:  # torch is imported on use: crossfuse.backbones stays cheap to import
    import torch
    from torch import nn

# Keys under which checkpoints wrap their state dict ({"state_dict": ...} from Lightning, {"model": ...} ...).
_WRAPPERS = ("state_dict", "model", "model_state_dict", "module", "net", "network", "params")
_PREFIX_DEPTH = 3  # leading components tried as a prefix: "module.", "model.backbone.", "module.model.body."
_LISTED = 4  # names shown per list in the report line


@dataclass
class WeightsReport:
    """What ``backbone.weights`` did: counts and names, and the one-line summary printed to stderr."""

    file: str
    loaded: int  # tensors copied into the backbone
    total: int  # tensors in the file
    file_prefix: str = ""  # stripped from the file's names
    backbone_prefix: str = ""  # put in front of them instead
    not_in_backbone: list[str] = field(default_factory=list)  # file tensors with no place in the backbone
    missing: list[str] = field(default_factory=list)  # backbone tensors the file did not provide
    mismatched: list[str] = field(default_factory=list)  # "name: file [..] vs backbone [..]"
    adapted: list[str] = field(default_factory=list)  # first convolutions remade for 1 or 3 input channels

    def summary(self) -> str:
        """``backbone.weights: loaded 120 of 122 tensors from FILE (file prefix '' -> 'body.'); ...``."""
        line = (f"backbone.weights: loaded {self.loaded} of {self.total} tensors from {self.file} "
                f"(file prefix {self.file_prefix!r} -> {self.backbone_prefix!r}); "
                f"not in the backbone: {_names(self.not_in_backbone)}; missing from the file: {_names(self.missing)}")
        if self.mismatched:
            line += f"; shape mismatch: {_names(self.mismatched)}"
        if self.adapted:
            line += f"; input channels adapted (RGB filters summed, or a grey filter split in 3): {_names(self.adapted)}"
        return line


def load_weights(module: nn.Module, path: str) -> WeightsReport:
    """Load the tensors of a local weights file that fit ``module``; print and return a :class:`WeightsReport`.

    Reads ``.safetensors``, or ``.pt``/``.pth``/``.bin`` with ``torch.load(weights_only=True)``.
    """
    state = read_state_dict(path)
    target = module.state_dict()
    strip, add = best_prefixes(state, target)
    loadable: dict[str, torch.Tensor] = {}
    report = WeightsReport(file=str(path), loaded=0, total=len(state), file_prefix=strip, backbone_prefix=add)
    for key, tensor in state.items():
        name = add + key[len(strip):] if key.startswith(strip) else None
        if name not in target:
            report.not_in_backbone.append(key)
        elif tensor.shape == target[name].shape:
            loadable[name] = tensor
        elif (adapted := adapt_input_channels(tensor, target[name].shape)) is not None:
            loadable[name] = adapted
            report.adapted.append(name)
        else:
            report.mismatched.append(f"{key}: file {list(tensor.shape)} vs backbone {list(target[name].shape)}")
    if not loadable:
        raise CrossfuseError(f"backbone.weights: no tensor in {path!r} matches the backbone's parameter names and "
                             f"shapes (file has {_names(sorted(state), 3)}; the backbone expects "
                             f"{_names(sorted(target), 3)})")
    module.load_state_dict(loadable, strict=False)
    report.loaded = len(loadable)
    report.missing = [name for name in target if name not in loadable]
    print(report.summary(), file=sys.stderr)
    return report


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, unwrapped from ``{"state_dict": ...}``/``{"model": ...}`` checkpoints."""
    import torch

    file = Path(path).expanduser()
    if not file.is_file():
        raise CrossfuseError(f"backbone.weights: file {path!r} does not exist")
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(file))
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
            raise CrossfuseError(f"backbone.weights: {path!r} is not a readable safetensors file ({exc})") from None
    try:
        state: Any = torch.load(str(file), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling fails in many ways
        raise CrossfuseError(f"backbone.weights: {path!r} is not a plain state dict ({exc}); save "
                             f"model.state_dict() with torch.save or safetensors") from None
    for _ in range(3):  # Lightning: {"state_dict": {...}, "epoch": ...}; some nest twice
        if not isinstance(state, Mapping) or any(isinstance(v, torch.Tensor) for v in state.values()):
            break
        inner = next((state[key] for key in _WRAPPERS if isinstance(state.get(key), Mapping)), None)
        if inner is None:
            break
        state = inner
    if not isinstance(state, Mapping):
        raise CrossfuseError(f"backbone.weights: {path!r} holds a {type(state).__name__}, not a state dict")
    return {str(key): value for key, value in state.items() if isinstance(value, torch.Tensor)}


def best_prefixes(state: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]) -> tuple[str, str]:
    """The (strip from the file, add for the backbone) prefix pair under which most tensors match in shape.

    Ties go to the shortest prefixes, so identical names stay as they are.
    """
    by_prefix: dict[str, list[tuple[str, torch.Size]]] = defaultdict(list)
    for key, tensor in state.items():
        for prefix in _prefixes(key):
            by_prefix[prefix].append((key[len(prefix):], tensor.shape))
    additions = {prefix for key in target for prefix in _prefixes(key)}
    best, best_count = ("", ""), -1
    for strip, rests in by_prefix.items():
        for add in additions:
            count = sum(1 for rest, shape in rests if _fits(shape, target.get(add + rest)))
            better = count > best_count or (count == best_count and len(strip + add) < len("".join(best)))
            if better:
                best, best_count = (strip, add), count
    return best


def _prefixes(key: str) -> list[str]:
    parts = key.split(".")[:-1]
    return [""] + [".".join(parts[:depth]) + "." for depth in range(1, min(len(parts), _PREFIX_DEPTH) + 1)]


def adapt_input_channels(tensor: torch.Tensor, target: torch.Size) -> torch.Tensor | None:
    """A convolution filter ``[O, C, k, k]`` remade for ``target``'s other number of input channels, or
    None when the two differ in anything else.

    RGB to grey: the sum of the RGB filters (as timm's ``adapt_input_conv``), so a grey image gets the
    response the RGB filters give it in colour. Grey to RGB: the grey filter split equally over the
    three channels, so an RGB copy of a grey image gets the grey filter's response.
    """
    shape = tensor.shape
    if not (len(shape) == 4 and len(target) == 4 and shape[0] == target[0] and shape[2:] == target[2:]):
        return None
    if (shape[1], target[1]) == (3, 1):
        return tensor.sum(dim=1, keepdim=True)
    if (shape[1], target[1]) == (1, 3):
        return tensor.repeat(1, 3, 1, 1) / 3
    return None


def _fits(shape: torch.Size, target: torch.Tensor | None) -> bool:
    return target is not None and (shape == target.shape or _channels_differ(shape, target.shape))


def _channels_differ(shape: torch.Size, target: torch.Size) -> bool:
    """A 3- and a 1-channel convolution filter otherwise alike (see :func:`adapt_input_channels`)."""
    return len(shape) == 4 and len(target) == 4 and {shape[1], target[1]} == {1, 3} and \
        shape[0] == target[0] and shape[2:] == target[2:]


def _names(names: list[str], limit: int = _LISTED) -> str:
    if not names:
        return "none"
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"
