"""``crossfuse predict RUN clip.wav --explain``: which parts of the log-mel spectrogram decided the command.

Saliency (Captum, through :func:`crossfuse.explain.saliency`) is the gradient magnitude of the
predicted class's score with respect to each log-mel cell. The picture shows the spectrogram and,
below it, the same spectrogram in grey with the saliency over it: a model that listens to the word
lights up the word, one that listens to the background lights up the silence around it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from crossfuse.errors import CrossfuseError
from crossfuse.explain import saliency
from crossfuse.pictures import pyplot, save_figure


def spectrogram_saliency(model: Any, waveforms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For clips ``[B, T]`` (on the model's device): their log-mel features ``[B, n_mels, frames]``,
    the saliency of the predicted class over them (same shape, each clip scaled to a peak of 1) and
    the predicted class ids ``[B]``. The model must be in eval mode with gradients enabled."""
    if getattr(model.backbone, "features_kind", "") != "spectrogram":
        raise CrossfuseError(f"--explain draws saliency over a spectrogram, but backbone "
                             f"{type(model.backbone).__name__} takes waveforms; explain a run on a spectrogram "
                             f"backbone (bc-resnet-*, mel-cnn)")
    with torch.no_grad():
        features, lengths = model.features(waveforms)
        target = model.classify(features, lengths).argmax(dim=-1)
    heat = saliency(lambda x: model.classify(x, lengths), features.detach().clone().requires_grad_(True),
                    target.tolist())
    peak = heat.flatten(1).amax(dim=1).clamp(min=1e-12)[:, None, None]
    return features.detach(), (heat / peak).clamp(0, 1), target


def draw_saliency(features: np.ndarray, heat: np.ndarray, path: str | Path, title: str, hop_s: float) -> str:
    """Write the spectrogram and its saliency as a PNG; returns the file name."""
    plt = pyplot()
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 4.8), sharex=True)
    extent = (0.0, features.shape[1] * hop_s, 0, features.shape[0])
    top.imshow(features, origin="lower", aspect="auto", cmap="magma", extent=extent)
    top.set_ylabel("mel bin")
    top.set_title(title, fontsize=9)
    bottom.imshow(features, origin="lower", aspect="auto", cmap="gray", extent=extent)
    bottom.imshow(heat, origin="lower", aspect="auto", cmap="jet", alpha=0.55, extent=extent, vmin=0, vmax=1)
    bottom.set_ylabel("mel bin")
    bottom.set_xlabel("seconds")
    bottom.set_title("saliency of the predicted command", fontsize=9)
    figure.tight_layout()
    return save_figure(figure, path)


def peak_time(heat: np.ndarray, hop_s: float) -> float:
    """The time (seconds) of the frame with the most saliency summed over the mel bins."""
    return round(float(heat.sum(axis=0).argmax()) * hop_s, 3)


def picture_name(item: str, index: int) -> str:
    """A file name for an input's picture that two inputs of the same name cannot share."""
    return f"{index:03d}-{Path(item).stem}-saliency.png"


def explain_batch(model: Any, waveforms: torch.Tensor, items: Sequence[str], labels: Sequence[str],
                  output_dir: Path, first_index: int, clip_seconds: float) -> list[dict[str, Any]]:
    """Saliency pictures of a batch of ``clip_seconds``-long clips written into ``output_dir``: per
    clip its file name and the time the model listened to most."""
    features, heat, target = spectrogram_saliency(model, waveforms)
    hop_s = clip_seconds / features.shape[-1]
    results = []
    for offset, item in enumerate(items):
        name = picture_name(item, first_index + offset)
        cell = heat[offset].cpu().numpy()
        draw_saliency(features[offset].cpu().numpy(), cell, output_dir / name,
                      f"{Path(item).name}: {labels[int(target[offset])]}", hop_s)
        results.append({"saliency": name, "saliency_peak_s": peak_time(cell, hop_s)})
    return results
