"""Pictures of a medical run, drawn from the dicts :func:`crossfuse_medical.metrics.medical_metrics`
returns: ROC curves with their operating points, confusion matrices, reliability diagrams before and
after the post-hoc scaling, and for the fusion task the image-alone / note-alone / fused AUROC side
by side.

Each function writes one PNG through :mod:`crossfuse.pictures` (atomic, no window) and returns its
file name; :func:`draw_report` draws them for every split of a run's report.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from crossfuse.pictures import draw_reliability, pyplot, save_figure


def _label(value: Any) -> str:
    return "undefined" if value is None else f"{value:.3f}"


def draw_roc(metrics: dict[str, Any], path: str | Path, title: str = "ROC") -> str:
    """One ROC curve per class with its AUROC; the operating point (sensitivity, 1 - specificity) as a dot.

    Classes whose AUROC is undefined in this split are named in the legend without a curve.
    """
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(5.2, 4.6))
    axis.plot([0, 1], [0, 1], ls="--", lw=0.8, color="grey")
    for name in metrics["classes"]:
        curve = metrics["roc"].get(name)
        details = metrics["per_class"].get(name, {})
        if curve is None:
            axis.plot([], [], lw=0, label=f"{name}: AUROC undefined (one class only)")
            continue
        (line,) = axis.plot(curve["fpr"], curve["tpr"], lw=1.5, label=f"{name}: AUROC {_label(details.get('auroc'))}")
        if details.get("sensitivity") is not None and details.get("specificity") is not None \
                and not metrics.get("multiclass"):
            axis.plot([1 - details["specificity"]], [details["sensitivity"]], "o", color=line.get_color(), ms=5)
    axis.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="1 - specificity (false positive rate)",
             ylabel="sensitivity (true positive rate)", title=f"{title} (macro AUROC {_label(metrics.get('auroc'))})")
    axis.legend(loc="lower right", fontsize=7)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    return save_figure(figure, path)


def draw_confusion(metrics: dict[str, Any], path: str | Path, title: str = "confusion") -> str:
    """Binary and multi-label: one 2 x 2 matrix per output at its operating threshold (what the core's
    :func:`~crossfuse.pictures.draw_confusion_matrices` cannot show: it draws one arg-max matrix per
    split, which :func:`draw_report` uses for multi-class). A multi-class matrix is drawn alone here
    (true rows, predicted columns, shaded by row share)."""
    matrices = metrics["confusion_matrix"]
    if isinstance(matrices, dict):
        return _draw_per_output(metrics, path, title)
    plt = pyplot()
    classes = metrics["classes"]
    side = max(4.0, 0.55 * len(classes) + 2.5)
    figure, axis = plt.subplots(figsize=(side, side * 0.9))
    _matrix(axis, matrices, classes, classes)
    axis.set(xlabel="predicted", ylabel="true", title=title)
    figure.tight_layout()
    return save_figure(figure, path)


def _draw_per_output(metrics: dict[str, Any], path: str | Path, title: str) -> str:
    plt = pyplot()
    names = metrics["classes"]
    columns = min(4, len(names))
    rows = math.ceil(len(names) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.5 * rows + 0.4), squeeze=False)
    for axis in axes.flat[len(names):]:
        axis.axis("off")
    for axis, name in zip(axes.flat, names):
        _matrix(axis, metrics["confusion_matrix"][name], ["neg", "pos"], ["neg", "pos"])
        threshold = metrics["per_class"].get(name, {}).get("threshold")
        axis.set_title(name + (f" (t={threshold:.2f})" if threshold is not None else ""), fontsize=9)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return save_figure(figure, path)


def _matrix(axis: Any, matrix: list[list[int]], rows: list[str], columns: list[str]) -> None:
    import numpy as np

    counts = np.asarray(matrix, dtype=float)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    axis.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (i, j), value in np.ndenumerate(counts):
        axis.text(j, i, f"{int(value)}", ha="center", va="center", fontsize=8,
                  color="white" if share[i, j] > 0.5 else "black")
    axis.set_xticks(range(len(columns)), columns, fontsize=8, rotation=45 if len(columns) > 4 else 0)
    axis.set_yticks(range(len(rows)), rows, fontsize=8)


def draw_calibration(metrics: dict[str, Any], path: str | Path, title: str = "reliability") -> str:
    """Reliability diagrams before and after the post-hoc scaling, side by side (``calibration`` holds
    the calibrated curves and ``before_scaling`` the raw ones, :mod:`.scaling`): observed frequency
    against predicted probability per bin, one line per finding (multi-class: the top label) in the
    same colour in both panels, the samples per bin underneath. A split without ``before_scaling``,
    or whose scaling is the identity (``head.calibration: false``), gets the core's single diagram."""
    calibration = metrics["calibration"]
    before = calibration.get("before_scaling")
    if not before or before["curves"] == calibration["curves"]:
        return draw_reliability(metrics, path, title)
    plt = pyplot()
    figure, axes = plt.subplots(2, 2, figsize=(10.0, 5.6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    after = _scaling_name(metrics)
    for column, (name, part) in enumerate((("before scaling", before), (after, calibration))):
        _reliability_panel(axes[0, column], axes[1, column], part["curves"], f"{name}: ECE {_label(part['ece'])}")
    what = "confidence (top label)" if calibration.get("kind") == "top-label" else "predicted probability"
    for axis in axes[1]:
        axis.set(xlabel=what)
    axes[0, 0].set(ylabel="observed frequency")
    axes[1, 0].set(ylabel="samples")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return save_figure(figure, path)


def _scaling_name(metrics: dict[str, Any]) -> str:
    """``after Platt scaling`` or ``after temperature scaling (T=1.23)``."""
    if metrics["calibration"].get("method") == "temperature" and metrics.get("temperature") is not None:
        return f"after temperature scaling (T={metrics['temperature']:.2f})"
    return "after Platt scaling" if metrics["calibration"].get("method") == "platt" else "after scaling"


def _reliability_panel(top: Any, bottom: Any, curves: dict[str, Any], title: str) -> None:
    """One reliability diagram (as :func:`crossfuse.pictures.draw_reliability` draws it) on two axes."""
    top.plot([0, 1], [0, 1], ls="--", lw=0.8, color="grey")
    for index, (name, curve) in enumerate(curves.items()):
        filled = curve["bins"]  # empty bins are left out
        (line,) = top.plot([b["confidence"] for b in filled], [b["accuracy"] for b in filled], "o-", ms=3, lw=1.2,
                           label=f"{name}: ECE {_label(curve['ece'])}")
        width = [(b["high"] - b["low"]) / len(curves) for b in filled]
        left = [b["low"] + index * w for b, w in zip(filled, width)]
        bottom.bar(left, [b["count"] for b in filled], width=width, align="edge", color=line.get_color(), alpha=0.7)
    top.set(xlim=(0, 1), ylim=(0, 1.01), title=title)
    top.legend(loc="upper left", fontsize=7)
    top.grid(alpha=0.3)
    bottom.set(ylim=(0, None))


def draw_modalities(report: dict[str, Any], path: str | Path) -> str | None:
    """Fusion runs: AUROC per finding and macro of the image alone, the note alone and both together,
    side by side for each evaluated split (from each split's ``modalities`` table); None without one."""
    import numpy as np

    splits = {name: m["modalities"] for name, m in report.get("splits", {}).items()
              if isinstance(m, dict) and isinstance(m.get("modalities"), dict)}
    if not splits:
        return None
    plt = pyplot()
    figure, axes = plt.subplots(1, len(splits), figsize=(5.4 * len(splits), 4.0), squeeze=False)
    for axis, (split, table) in zip(axes[0], splits.items()):
        kinds = [k for k in ("image", "text", "fused") if k in table["auroc"]]
        names = ["macro", *table["auroc"][kinds[0]]["per_class"]]
        positions = np.arange(len(names))
        for offset, kind in enumerate(kinds):
            values = [table["auroc"][kind]["macro"], *table["auroc"][kind]["per_class"].values()]
            heights = [np.nan if v is None else v for v in values]
            bars = axis.bar(positions + (offset - (len(kinds) - 1) / 2) * 0.27, heights, width=0.27, label=kind)
            axis.bar_label(bars, labels=[_label(v) for v in values], fontsize=6, rotation=90, padding=2)
        axis.axhline(0.5, ls="--", lw=0.8, color="grey")
        axis.set_xticks(positions, names, fontsize=8, rotation=30 if len(names) > 5 else 0)
        defined = [v for kind in kinds for v in [table["auroc"][kind]["macro"], *table["auroc"][kind]["per_class"].values()]
                   if v is not None]
        low = min([0.4, *defined]) - 0.05
        axis.set(ylim=(max(0.0, low), 1.15), ylabel="AUROC", title=f"{split}: image alone, note alone, fused")
        axis.legend(loc="upper left", fontsize=7, ncol=len(kinds))
    figure.tight_layout()
    return save_figure(figure, path)


def draw_report(report: dict[str, Any], run_dir: str | Path) -> list[str]:
    """``roc_SPLIT.png`` and ``reliability_SPLIT.png`` (before and after scaling) for every split in
    ``report["splits"]`` that holds medical metrics, confusion matrices (multi-class: the core's
    ``confusion_matrix.png`` with every split side by side; sigmoid outputs: ``confusion_SPLIT.png``,
    one 2 x 2 matrix per output at its threshold) and, for fusion runs, ``modalities.png``. Returns the
    file names written."""
    from crossfuse.pictures import draw_confusion_matrices

    run_dir = Path(run_dir)
    medical = {split: m for split, m in report.get("splits", {}).items() if isinstance(m, dict) and "roc" in m}
    written = []
    for split, metrics in medical.items():
        written.append(draw_roc(metrics, run_dir / f"roc_{split}.png", f"ROC, {split}"))
        if not metrics.get("multiclass"):
            written.append(draw_confusion(metrics, run_dir / f"confusion_{split}.png", f"confusion, {split}"))
        written.append(draw_calibration(metrics, run_dir / f"reliability_{split}.png", f"reliability, {split}"))
    multiclass = {split: m for split, m in medical.items() if m.get("multiclass")}
    if multiclass:
        title = {"task": report.get("task", ""), "backbone": report.get("backbone", "")}
        written += draw_confusion_matrices({**title, "splits": multiclass}, run_dir)
    modalities = draw_modalities(report, run_dir / "modalities.png")
    return written + ([modalities] if modalities else [])
