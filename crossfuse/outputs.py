"""Moving batches and ``predict_step`` outputs around: to a device, to the CPU, joined over a split."""

from __future__ import annotations

from typing import Any

import torch


def move_to(value: Any, device: torch.device) -> Any:
    """Move every tensor inside dicts, lists and tuples to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, dict):
        return {k: move_to(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(move_to(v, device) for v in value)
    return value


def to_cpu(value: Any) -> Any:
    """Detach every tensor inside dicts, lists and tuples and move it to the CPU; floating tensors
    become float32 (mixed-precision outputs are compared and summed as fp32)."""
    if isinstance(value, torch.Tensor):
        value = value.detach()
        return (value.float() if value.is_floating_point() else value).cpu()
    if isinstance(value, dict):
        return {k: to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_cpu(v) for v in value)
    return value


def concat_outputs(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Join per-batch outputs: tensors are concatenated on dim 0, lists extended."""
    if not parts:
        return {}
    merged: dict[str, Any] = {}
    for key in parts[0]:
        values = [part[key] for part in parts]
        if isinstance(values[0], torch.Tensor):
            merged[key] = torch.cat(values)
        else:
            merged[key] = [item for value in values for item in value]
    return merged


def split_rows(value: Any) -> list[Any]:
    """One output's per-sample items: a tensor's rows, or the list itself."""
    return list(value.unbind(0)) if isinstance(value, torch.Tensor) else list(value)
