"""Pictures for a face-verification report: the ROC with its operating points, and the worst false matches.

Drawn with :mod:`crossfuse.pictures` (matplotlib without a window, files written atomically).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from crossfuse.errors import DataError
from crossfuse.media import load_image
from crossfuse.pictures import pyplot, save_figure

MAX_PAIRS = 8


def draw_roc(roc: dict, path: str | Path, title: str, far_marks: tuple[float, ...] = (1e-2, 1e-3)) -> Path:
    """ROC with a logarithmic FAR axis (where security operating points live), marking TAR at each FAR.

    ``roc`` is ``{"fpr": [...], "tpr": [...]}`` as in :func:`crossfuse_face.metrics.verification_metrics`.
    A log axis cannot show FAR 0, so those points are drawn at the smallest FAR plotted.
    """
    plt = pyplot()
    fpr, tpr = np.asarray(roc["fpr"], dtype=float), np.asarray(roc["tpr"], dtype=float)
    floor = min([f for f in fpr if f > 0] + [min(far_marks, default=1e-3)]) / 2
    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    ax.plot(np.maximum(fpr, floor), tpr, lw=1.5)
    for far in far_marks:
        # Same rule as tar_at_far: the best TAR among points with FAR <= far.
        reachable = tpr[fpr <= far]
        tar = float(reachable.max()) if reachable.size else 0.0
        ax.plot([far], [tar], "o", ms=5)
        ax.annotate(f"TAR {tar:.3f} @ FAR {far:g}", (far, tar), textcoords="offset points", xytext=(6, -12), fontsize=8)
    ax.set(xscale="log", xlim=(floor, 1.0), ylim=(0.0, 1.02), xlabel="false accept rate (FAR)",
           ylabel="true accept rate (TAR)", title=title)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    return Path(path)


def _show(ax: Any, image_file: str) -> None:
    try:
        ax.imshow(load_image(image_file))
    except DataError:  # a report should still be drawn when one image has gone missing
        ax.text(0.5, 0.5, "unreadable", ha="center", va="center", fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])


def draw_hardest_false_matches(pairs: list[tuple[str, str, float]], path: str | Path, threshold: float) -> Path:
    """A grid of the highest-scoring impostor pairs (at most 8): the look-alikes a system confuses first.

    ``pairs`` are ``(image_a, image_b, score)`` for impostor pairs; the titles say whether each
    score passes ``threshold`` (a false match) or not.
    """
    plt = pyplot()
    worst = sorted(pairs, key=lambda p: -p[2])[:MAX_PAIRS]
    columns = min(2, max(1, len(worst)))  # two pairs (four images) per row
    rows = max(1, -(-len(worst) // columns))
    fig, axes = plt.subplots(rows, 2 * columns, figsize=(2.2 * columns * 2, 2.4 * rows), dpi=100, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for k, (a, b, score) in enumerate(worst):
        left, right = axes[k // columns, 2 * (k % columns)], axes[k // columns, 2 * (k % columns) + 1]
        for ax, image_file in ((left, a), (right, b)):
            ax.axis("on")
            _show(ax, image_file)
        verdict = "false match" if score >= threshold else "rejected"
        left.set_title(f"{score:.3f} ({verdict})", fontsize=8, loc="left")
    if not worst:
        axes[0, 0].text(0.5, 0.5, "no impostor pairs", ha="center", va="center")
    fig.suptitle(f"Hardest impostor pairs (threshold {threshold:.3f})", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    return Path(path)
