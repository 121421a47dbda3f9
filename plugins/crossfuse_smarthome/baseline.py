"""A non-deep reference: logistic regression on pooled log-mel energies (scikit-learn).

Each clip becomes its 40 log-mel bands averaged over 12 steps of 50 ms around the clip's energy
centre (so a word counts the same wherever it sits in the second). What a keyword-spotting
network adds is measured against this on the same splits.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from .metrics import voice_metrics

STEPS, FRAMES_PER_STEP = 12, 5  # 12 x 50 ms around the energy centre, at 10 ms frames


def logmel_summary(waveforms: torch.Tensor, sample_rate: int) -> np.ndarray:
    """``[N, T]`` clips -> ``[N, 40 * 12]``: log-mel bands pooled in 50 ms steps around each clip's
    energy centre (edge-padded when the clip is shorter than the 600 ms this covers)."""
    from .kws import LogMel

    with torch.no_grad():
        features, _ = LogMel(sample_rate)(waveforms)  # [N, 40, frames]
    span = STEPS * FRAMES_PER_STEP
    features = torch.nn.functional.pad(features, (span // 2, span // 2), mode="replicate")
    energy = features.exp().sum(dim=1)
    frames = torch.arange(energy.shape[1], dtype=energy.dtype)
    centres = ((energy * frames).sum(dim=1) / energy.sum(dim=1)).round().long()
    rows = []
    for clip, centre in zip(features, centres):
        start = int(centre.clamp(span // 2, features.shape[-1] - span // 2)) - span // 2
        window = clip[:, start: start + span].reshape(clip.shape[0], STEPS, FRAMES_PER_STEP)
        rows.append(window.mean(dim=-1).flatten())
    return torch.stack(rows).numpy()


def logmel_baseline(train: tuple[np.ndarray, Sequence[int]], splits: dict[str, tuple[np.ndarray, Sequence[int],
                                                                                       Sequence[str | None]]],
                    labels: Sequence[str], seed: int = 0) -> dict[str, Any]:
    """Fit standardised logistic regression on ``train`` (features, label ids) and score each split
    (features, label ids, speakers) with :func:`~crossfuse_smarthome.metrics.voice_metrics`."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # Strong regularisation: the point is how well unseen voices are heard, not the training voices.
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=3000, random_state=seed))
    model.fit(train[0], np.asarray(train[1]))
    results = {}
    for name, (features, targets, speakers) in splits.items():
        probabilities = np.zeros((len(targets), len(labels)))
        probabilities[:, model.classes_] = model.predict_proba(features)
        results[name] = voice_metrics(targets, probabilities, labels, speakers)
    return {"name": "logmel-logreg", "splits": results}


def clip_baseline(splits: dict[str, Sequence[Any]], load: Any, label_ids: dict[str, int], labels: Sequence[str],
                  sample_rate: int, seed: int = 0, batch: int = 256) -> dict[str, Any]:
    """:func:`logmel_baseline` on splits of clips (``train`` plus the evaluated ones): ``load(clip)``
    gives each clip's waveform (unaugmented), ``label_ids`` its class id, ``clip.speaker`` its voice."""
    def features(clips: Sequence[Any]) -> np.ndarray:
        parts = [logmel_summary(torch.stack([load(clip) for clip in clips[i: i + batch]]), sample_rate)
                 for i in range(0, len(clips), batch)]
        return np.concatenate(parts)

    def targets(clips: Sequence[Any]) -> list[int]:
        return [label_ids[clip.label] for clip in clips]

    evaluated = {name: (features(clips), targets(clips), [clip.speaker for clip in clips])
                 for name, clips in splits.items() if name != "train"}
    return logmel_baseline((features(splits["train"]), targets(splits["train"])), evaluated, labels, seed)
