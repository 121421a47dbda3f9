"""The finance task's pictures: one confusion matrix per evaluated split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crossfuse.runs import atomic_write


def draw_confusion_matrices(report: dict[str, Any], run_dir: Path) -> list[str]:
    """Write ``confusion_matrix.png``: counts and row-normalised recall, side by side per split."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never open a window
    import matplotlib.pyplot as plt
    import numpy as np
    from sklearn.metrics import ConfusionMatrixDisplay

    splits = {name: m for name, m in report["splits"].items() if "confusion_matrix" in m}
    if not splits:
        return []
    figure, axes = plt.subplots(1, len(splits), figsize=(4.6 * len(splits), 4.2), squeeze=False)
    for axis, (name, metrics) in zip(axes[0], splits.items()):
        matrix = np.asarray(metrics["confusion_matrix"])
        ConfusionMatrixDisplay(matrix, display_labels=metrics["labels"]).plot(ax=axis, colorbar=False, cmap="Blues")
        axis.set_title(f"{name}: accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}", fontsize=9)
    figure.suptitle(f"{report['task']} - {report['backbone']}", fontsize=10)
    figure.tight_layout()
    name = "confusion_matrix.png"
    atomic_write(run_dir / name, lambda tmp: figure.savefig(tmp, dpi=120, format="png"))
    plt.close(figure)
    return [name]
