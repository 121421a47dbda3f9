"""Pictures for run reports: matplotlib without a window, files written whole or not at all.

>>> plt = pyplot()                                              # doctest: +SKIP
>>> figure, axis = plt.subplots()                               # doctest: +SKIP
>>> save_figure(figure, run_dir / "roc_test.png")               # doctest: +SKIP
'roc_test.png'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .runs import atomic_write


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the file-only Agg backend (never opens a window, works on servers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: str | Path, dpi: int = 120) -> str:
    """Write a matplotlib ``figure`` as PNG atomically, close it, and return the file name."""
    path = Path(path)
    atomic_write(path, lambda tmp: figure.savefig(tmp, dpi=dpi, format="png"))
    pyplot().close(figure)
    return path.name


def save_image(image: Any, path: str | Path) -> str:
    """Write a ``PIL.Image`` as PNG atomically and return the file name."""
    path = Path(path)
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))
    return path.name


def draw_confusion_matrices(report: dict[str, Any], run_dir: str | Path, name: str = "confusion_matrix.png") -> list[str]:
    """Write one confusion matrix per evaluated split that has one (``confusion_matrix`` and
    ``labels`` in its metrics, as :func:`crossfuse.metrics.classification_metrics` gives) side by
    side; returns ``[name]``, or ``[]`` when no split has one."""
    import numpy as np
    from sklearn.metrics import ConfusionMatrixDisplay

    splits = {split: m for split, m in report["splits"].items() if "confusion_matrix" in m}
    if not splits:
        return []
    plt = pyplot()
    figure, axes = plt.subplots(1, len(splits), figsize=(4.6 * len(splits), 4.2), squeeze=False)
    for axis, (split, metrics) in zip(axes[0], splits.items()):
        matrix = np.asarray(metrics["confusion_matrix"])
        ConfusionMatrixDisplay(matrix, display_labels=metrics["labels"]).plot(ax=axis, colorbar=False, cmap="Blues")
        scores = ", ".join(f"{key} {metrics[key]:.3f}" for key in ("accuracy", "macro_f1") if key in metrics)
        axis.set_title(f"{split}: {scores}", fontsize=9)
        axis.tick_params(axis="x", labelrotation=45 if len(metrics["labels"]) > 6 else 0)
    figure.suptitle(f"{report['task']} - {report['backbone']}", fontsize=10)
    figure.tight_layout()
    return [save_figure(figure, Path(run_dir) / name)]


def draw_reliability(metrics: dict[str, Any], path: str | Path, title: str = "reliability") -> str:
    """Reliability diagram of ``metrics["calibration"]`` (``{"kind", "ece", "curves": {name: {"ece",
    "bins"}}}``, bins from :func:`crossfuse.metrics.reliability`): observed frequency against mean
    confidence per bin (the diagonal is perfect calibration), one line per curve, and the number of
    samples per bin underneath. Returns the file name."""
    plt = pyplot()
    calibration = metrics["calibration"]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(5.2, 5.6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], ls="--", lw=0.8, color="grey")
    curves = calibration["curves"]
    for index, (name, curve) in enumerate(curves.items()):
        filled = curve["bins"]  # the core's reliability_bins: empty bins are left out
        (line,) = top.plot([b["confidence"] for b in filled], [b["accuracy"] for b in filled], "o-", ms=3, lw=1.2,
                           label=f"{name}: ECE {_score(curve['ece'])}")
        width = [(b["high"] - b["low"]) / len(curves) for b in filled]
        left = [b["low"] + index * w for b, w in zip(filled, width)]
        bottom.bar(left, [b["count"] for b in filled], width=width, align="edge", color=line.get_color(), alpha=0.7)
    what = "confidence (top label)" if calibration["kind"] == "top-label" else "predicted probability"
    top.set(xlim=(0, 1), ylim=(0, 1.01), ylabel="observed frequency",
            title=f"{title} (ECE {_score(calibration.get('ece'))})")
    top.legend(loc="upper left", fontsize=7)
    top.grid(alpha=0.3)
    bottom.set(xlabel=what, ylabel="samples", ylim=(0, None))
    figure.tight_layout()
    return save_figure(figure, path)


def draw_reliability_diagrams(report: dict[str, Any], run_dir: str | Path) -> list[str]:
    """``reliability_SPLIT.png`` (:func:`draw_reliability`) for every evaluated split whose metrics hold
    ``calibration``; returns the file names written."""
    return [draw_reliability(metrics, Path(run_dir) / f"reliability_{split}.png", f"reliability, {split}")
            for split, metrics in report.get("splits", {}).items()
            if isinstance(metrics, dict) and "calibration" in metrics]


def _score(value: Any) -> str:
    return "undefined" if value is None else f"{value:.3f}"
