"""The voice-command task's pictures: a confusion matrix per split, and accuracy per voice.

The confusion matrix is drawn here rather than by :func:`crossfuse.pictures.draw_confusion_matrices`:
with 18 classes its fixed 4.6-inch panels print overlapping counts and tick labels. This one sizes
the figure by the number of classes, colours each row by recall (classes differ a lot in size) and
prints only the non-zero counts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from crossfuse.pictures import draw_reliability_diagrams, pyplot, save_figure


def draw_confusion_matrix(metrics: dict[str, Any], path: str | Path, title: str = "") -> str:
    """Write one split's confusion matrix as a PNG: cells coloured by row-normalised recall,
    annotated with counts. ``metrics`` holds ``labels`` and ``confusion_matrix``; returns the file name."""
    from sklearn.metrics import ConfusionMatrixDisplay

    counts = np.asarray(metrics["confusion_matrix"])
    labels = metrics["labels"]
    rows = counts.sum(axis=1, keepdims=True)
    recall = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    side = 2.5 + 0.42 * len(labels)
    figure, axis = pyplot().subplots(figsize=(side, side * 0.9))
    display = ConfusionMatrixDisplay(recall, display_labels=labels)
    display.plot(ax=axis, cmap="Blues", colorbar=False, include_values=False, xticks_rotation="vertical")
    display.im_.set_clim(0, 1)
    for (i, j), count in np.ndenumerate(counts):
        if count:
            axis.text(j, i, str(count), ha="center", va="center", fontsize=7,
                      color="white" if recall[i, j] > 0.5 else "black")
    axis.set_title(title or f"accuracy {metrics.get('accuracy', float('nan')):.3f}", fontsize=9)
    figure.tight_layout()
    return save_figure(figure, path)


def draw_confusion_matrices(report: dict[str, Any], run_dir: str | Path) -> list[str]:
    """``confusion_matrix_<split>.png`` for every split of ``report["splits"]`` with a confusion matrix."""
    written = []
    for split, metrics in report.get("splits", {}).items():
        if "confusion_matrix" in metrics:
            title = f"{split}: accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}"
            written.append(draw_confusion_matrix(metrics, Path(run_dir) / f"confusion_matrix_{split}.png", title))
    return written


def draw_voice_accuracy(report: dict[str, Any], run_dir: str | Path, name: str = "accuracy_per_voice.png") -> list[str]:
    """One bar chart per evaluated split with ``accuracy_per_voice``: each voice's accuracy, worst first
    (the voices of validation and test are never heard in training). Returns ``[name]`` or ``[]``."""
    splits = {split: m["accuracy_per_voice"] for split, m in report.get("splits", {}).items()
              if m.get("accuracy_per_voice")}
    if not splits:
        return []
    plt = pyplot()
    tallest = max(len(voices) for voices in splits.values())
    figure, axes = plt.subplots(1, len(splits), figsize=(5.2 * len(splits), 1.2 + 0.24 * tallest), squeeze=False)
    for axis, (split, voices) in zip(axes[0], splits.items()):
        ranked = sorted(voices.items(), key=lambda item: item[1]["accuracy"])
        axis.barh([voice for voice, _ in ranked], [row["accuracy"] for _, row in ranked], color="tab:blue")
        axis.set_xlim(0, 1)
        axis.tick_params(axis="y", labelsize=7)
        overall = float(report["splits"][split]["accuracy"])
        axis.axvline(overall, color="tab:red", linewidth=1)
        axis.set_title(f"{split}: accuracy per voice (red line: all clips, {overall:.3f})", fontsize=9)
    figure.tight_layout()
    return [save_figure(figure, Path(run_dir) / name)]


def draw_report(report: dict[str, Any], run_dir: str | Path) -> list[str]:
    """Every picture of a run: ``confusion_matrix_<split>.png``, ``accuracy_per_voice.png`` and
    ``reliability_<split>.png`` (clip confidence before and after temperature scaling)."""
    return draw_confusion_matrices(report, run_dir) + draw_voice_accuracy(report, run_dir) + \
        draw_reliability_diagrams(report, run_dir)
