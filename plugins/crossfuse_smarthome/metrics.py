"""Keyword-spotting metrics: the core's classification metrics (scikit-learn) plus accuracy per voice.

How well unseen voices are heard is the point of this task, so each split also reports every
speaker's accuracy and the worst of them.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from crossfuse.metrics import classification_metrics


def voice_metrics(y_true: Sequence[int], probabilities: Any, labels: Sequence[str],
                  speakers: Sequence[str | None] | None = None) -> dict[str, Any]:
    """:func:`crossfuse.metrics.classification_metrics` (accuracy, macro-F1, per-class precision and
    recall, the confusion matrix, ``labels``) and, when ``speakers`` names each clip's voice,
    ``accuracy_per_voice`` and ``worst_voice_accuracy`` (clips without a voice, such as silence
    crops, are left out of those)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    metrics = classification_metrics(y_true, probabilities, labels)
    if speakers is not None:
        per_voice = accuracy_per_speaker(y_true, probabilities.argmax(axis=1), speakers)
        metrics["accuracy_per_voice"] = per_voice
        metrics["worst_voice_accuracy"] = min((v["accuracy"] for v in per_voice.values()), default=float("nan"))
    return metrics


def accuracy_per_speaker(y_true: Sequence[int], y_pred: Sequence[int],
                         speakers: Sequence[str | None]) -> dict[str, dict[str, float | int]]:
    """``{speaker: {"accuracy": ..., "clips": ...}}`` sorted by speaker; clips without a speaker skipped."""
    correct: dict[str, list[bool]] = {}
    for truth, guess, speaker in zip(y_true, y_pred, speakers):
        if speaker is not None:
            correct.setdefault(speaker, []).append(bool(truth == guess))
    return {speaker: {"accuracy": float(np.mean(hits)), "clips": len(hits)} for speaker, hits in sorted(correct.items())}


def accuracy_per_voice(probabilities: Any, labels: Any, samples: Sequence[Any]) -> dict[str, dict[str, float | int]]:
    """The registered ``accuracy-per-voice`` metric: :func:`accuracy_per_speaker` of a split whose
    samples carry a ``speaker`` (``eval.metrics: [accuracy-per-voice]`` adds it to any audio task)."""
    predicted = np.asarray(probabilities).argmax(axis=1)
    return accuracy_per_speaker(np.asarray(labels), predicted, [getattr(s, "speaker", None) for s in samples])
