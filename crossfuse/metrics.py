"""Metrics every classification task can add by name, and how registered metrics are computed.

A metric registered through ``register_metrics`` is a function computing one value (or a dict)
on a *whole split*. Its parameters say what it needs, by name:

- the name of a ``predict_step`` output (``probabilities``, ``labels``, ``embedding`` ...): that
  output over the split, as a NumPy array (tensors) or a list;
- ``samples``: the split itself; ``task``: the task instance (for its config).

``eval.metrics: [ece, brier]`` in a run config adds such metrics to a task's own; they are
computed on every split and land in the report under their names.

>>> round(expected_calibration_error([[0.9, 0.1], [0.2, 0.8]], [0, 0], bins=2), 2)   # both in one bin
0.35
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable, Sequence

import numpy as np

from .errors import ConfigError, CrossfuseError

SPECIAL_ARGUMENTS = ("samples", "task")


# -- metrics the core registers ------------------------------------------------------------------


def _probabilities_and_labels(probabilities: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels)
    if probabilities.ndim == 1:  # a binary task giving P(positive) only
        probabilities = np.stack([1 - probabilities, probabilities], axis=1)
    return probabilities, labels


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> list[dict[str, float]]:
    """Equal-width confidence bins: each with its count, mean confidence and accuracy (empty bins left out)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    table = []
    for b in range(bins):
        inside = index == b
        if inside.any():
            table.append({"low": float(edges[b]), "high": float(edges[b + 1]), "count": int(inside.sum()),
                          "confidence": float(confidence[inside].mean()), "accuracy": float(correct[inside].mean())})
    return table


def reliability(confidence: np.ndarray, outcome: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Expected calibration error and reliability-diagram bins for one set of (confidence, 0/1 outcome).

    The bins are :func:`reliability_bins` (equal width on [0, 1], a value
    on an inner edge in the lower bin, as scikit-learn's ``calibration_curve``; empty bins left out):
    ``low``, ``high``, ``count``, mean ``confidence`` and observed frequency ``accuracy``.
    ``ece`` = sum over bins of count / N * |accuracy - confidence| (None for no data).
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    table = reliability_bins(confidence, np.asarray(outcome, dtype=np.float64), bins)
    if not len(confidence):
        return {"ece": None, "bins": table}
    ece = sum(row["count"] * abs(row["accuracy"] - row["confidence"]) for row in table) / len(confidence)
    return {"ece": float(ece), "bins": table}


def expected_calibration_error(probabilities: Any, labels: Any, bins: int = 15) -> float:
    """ECE: the count-weighted gap between confidence and accuracy over equal-width bins.

    ``labels`` of shape ``[N]`` (class ids): top-label ECE of ``probabilities`` ``[N, C]``.
    ``labels`` of shape ``[N, C]`` (0/1, multi-label): each column is a binary problem; the mean ECE.
    """
    probabilities, labels = _probabilities_and_labels(probabilities, labels)
    if len(labels) == 0:
        return math.nan
    if labels.ndim == 2:
        return float(np.mean([expected_calibration_error(probabilities[:, c], labels[:, c], bins)
                              for c in range(labels.shape[1])]))
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == labels).astype(np.float64)
    table = reliability_bins(confidence, correct, bins)
    return float(sum(row["count"] * abs(row["confidence"] - row["accuracy"]) for row in table) / len(labels))


def ece(probabilities: Any, labels: Any) -> float:
    """Expected calibration error, 15 equal-width bins (lower is better)."""
    return expected_calibration_error(probabilities, labels)


def brier(probabilities: Any, labels: Any) -> float:
    """Brier score: mean squared distance between the probabilities and the one-hot truth (lower is better)."""
    probabilities, labels = _probabilities_and_labels(probabilities, labels)
    truth = labels.astype(np.float64) if labels.ndim == 2 else np.eye(probabilities.shape[1])[labels.astype(int)]
    return float(np.mean(np.sum((probabilities - truth) ** 2, axis=1)))


def log_loss(probabilities: Any, labels: Any) -> float:
    """Cross-entropy of the probabilities (scikit-learn ``log_loss``; lower is better)."""
    from sklearn.metrics import log_loss as sk_log_loss

    probabilities, labels = _probabilities_and_labels(probabilities, labels)
    if labels.ndim == 2:
        return float(np.mean([sk_log_loss(labels[:, c], probabilities[:, c], labels=[0, 1])
                              for c in range(labels.shape[1])]))
    return float(sk_log_loss(labels, probabilities, labels=list(range(probabilities.shape[1]))))


def balanced_accuracy(probabilities: Any, labels: Any) -> float:
    """Mean recall over the classes present (scikit-learn ``balanced_accuracy_score``)."""
    from sklearn.metrics import balanced_accuracy_score

    probabilities, labels = _probabilities_and_labels(probabilities, labels)
    return float(balanced_accuracy_score(labels, probabilities.argmax(axis=1)))


def classification_metrics(y_true: Sequence[int], probabilities: Any, labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro/weighted F1, per-class precision/recall/F1/support and the confusion matrix
    of a single-label classifier (scikit-learn).

    ``probabilities`` is ``[N, C]``; the prediction is its arg-max. Macro ROC AUC (one-vs-rest)
    is added for three or more labels when every class occurs in ``y_true``.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support, roc_auc_score

    y_true = np.asarray(y_true)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    y_pred = probabilities.argmax(axis=1)
    ids = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=ids, zero_division=0)
    metrics: dict[str, Any] = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=ids, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y_true, y_pred, labels=ids, average="weighted", zero_division=0)),
    }
    if len(set(y_true.tolist())) == len(labels) and len(labels) > 2:
        metrics["macro_roc_auc"] = float(roc_auc_score(y_true, probabilities, multi_class="ovr", labels=ids))
    metrics["per_class"] = {
        label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(n)}
        for label, p, r, f, n in zip(labels, precision, recall, f1, support)
    }
    metrics["labels"] = list(labels)
    metrics["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=ids).tolist()
    return metrics


def classification(probabilities: Any, labels: Any, task: Any) -> dict[str, Any]:
    """:func:`classification_metrics` as a registered metric; class names from ``task.label_names``."""
    probabilities = np.asarray(probabilities)
    names = getattr(task, "label_names", None) or [str(i) for i in range(probabilities.shape[1])]
    return classification_metrics(labels, probabilities, names)


# -- computing a split's metrics ------------------------------------------------------------------


def metric_arguments(function: Callable[..., Any]) -> list[str]:
    """The names a metric function asks for (its parameters without defaults)."""
    return [name for name, p in inspect.signature(function).parameters.items()
            if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def check_metric_names(names: Sequence[str]) -> None:
    """Raise a :class:`ConfigError` naming ``eval.metrics`` for any name no plugin registered."""
    from .plugins import get_plugin_manager

    registry = get_plugin_manager().metrics
    for name in names:
        if name not in registry:
            raise ConfigError(f"eval.metrics: {registry.unknown_message(name)}")


def registered_metric(name: str, outputs: dict[str, Any], samples: Sequence[Any], task: Any) -> Any:
    """Compute the registered metric ``name`` on one split's outputs (see the module docstring)."""
    from .plugins import get_plugin_manager

    entry = get_plugin_manager().metrics.get(name)
    function = entry.load()
    available = {"samples": samples, "task": task, **{k: _as_array(v) for k, v in outputs.items()}}
    wanted = metric_arguments(function)
    missing = [arg for arg in wanted if arg not in available]
    if missing:
        raise CrossfuseError(f"eval.metrics: metric {name!r} (plugin {entry.owner!r}) needs the output(s) "
                             f"{', '.join(map(repr, missing))}, but task {task.name!r} gives "
                             f"{', '.join(map(repr, outputs)) or 'none'}; remove it from eval.metrics")
    return function(**{arg: available[arg] for arg in wanted})


def split_metrics(task: Any, outputs: dict[str, Any], samples: Sequence[Any]) -> dict[str, Any]:
    """The task's metrics of a split plus the registered ones its config adds (``eval.metrics``).

    The main metric must be present; ``None`` or NaN means "undefined on this split".
    """
    metrics = dict(task.compute_metrics(outputs, samples))
    evaluation = getattr(task.config, "eval", None)
    for name in getattr(evaluation, "metrics", None) or ():
        metrics[name] = registered_metric(name, outputs, samples, task)
    if task.main_metric not in metrics:
        raise CrossfuseError(f"task {task.name!r}: compute_metrics did not return its main metric "
                             f"{task.main_metric!r} (it returned {', '.join(sorted(metrics))})")
    return metrics


def is_defined(value: Any) -> bool:
    """Whether a metric value is a real number (not None, NaN or infinite)."""
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _as_array(value: Any) -> Any:
    if hasattr(value, "numpy") and hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return value
