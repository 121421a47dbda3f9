"""The metrics a clinician or a MedMNIST paper reports, with scikit-learn doing the maths.

Inputs are numpy arrays: ``probabilities [N, C]`` and ``labels``, either ``[N]`` class ids
(multi-class: softmax outputs, the prediction is the arg-max) or ``[N, C]`` 0/1 (binary with
C = 1, multi-label: one sigmoid output per finding, a prediction is ``p >= threshold``).

- AUROC per class (one-vs-rest for multi-class) and their macro mean, the main metric. A class
  without positives or without negatives in the split has an undefined AUROC: ``None``, left out
  of the macro mean (``None`` when no class is defined).
- Operating thresholds for sigmoid outputs are *chosen* on validation by :func:`choose_thresholds`
  (Youden's J, or the highest threshold reaching a target sensitivity), saved with the run, and
  *applied* on any split by :func:`apply_thresholds` / :func:`medical_metrics`.
- Accuracy: arg-max accuracy (multi-class, with macro F1, from the core's
  :func:`~crossfuse.metrics.classification_metrics`); the mean over outputs of per-output accuracy
  at the thresholds (binary, multi-label: MedMNIST's ACC), plus exact-match ``subset_accuracy``.
- Sensitivity, specificity, PPV and NPV per class at the operating point, macro over defined ones.
- Confusion matrices: ``C x C`` (multi-class); ``[[TN, FP], [FN, TP]]`` per output otherwise.
- Calibration: expected calibration error over equal-width bins and the reliability-diagram bins
  (the core's :func:`~crossfuse.metrics.reliability_bins`), top-label for multi-class (the core's
  ECE), per output for binary and multi-label (``ece`` is then their mean; see :func:`calibration`).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from crossfuse.metrics import classification_metrics, expected_calibration_error, reliability

DEFAULT_THRESHOLD = 0.5  # for an output whose threshold could not be chosen on validation
ROUND = 6  # digits kept for the curve points written to report.json


def _arrays(probabilities: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """``probabilities`` as ``[N, C]`` floats and ``labels`` as ``[N]`` or ``[N, C]`` ints, checked."""
    p = np.asarray(probabilities, dtype=np.float64)
    p = p[:, None] if p.ndim == 1 else p
    y = np.asarray(labels)
    if y.ndim == 1 and p.shape[1] == 1:
        y = y[:, None]  # binary labels given as [N]
    if p.ndim != 2 or len(y) != len(p) or (y.ndim == 2 and y.shape != p.shape) or y.ndim not in (1, 2):
        raise ValueError(f"probabilities {p.shape} and labels {y.shape} do not match: expected [N, C] with [N] class "
                         f"ids or [N, C] 0/1 labels")
    if not np.all(np.isfinite(p)) or p.min(initial=0) < 0 or p.max(initial=0) > 1:
        raise ValueError("probabilities must be finite and in [0, 1]")
    if y.ndim == 1 and len(y) and (y.min() < 0 or y.max() >= p.shape[1]):
        raise ValueError(f"class ids must be in [0, {p.shape[1] - 1}], got {y.min()} to {y.max()}")
    return p, y.astype(np.int64)


def _one_vs_rest(p: np.ndarray, y: np.ndarray, c: int) -> tuple[np.ndarray, np.ndarray]:
    """(0/1 truth, score) of output ``c``."""
    truth = (y == c).astype(np.int64) if y.ndim == 1 else y[:, c]
    return truth, p[:, c]


def _defined(truth: np.ndarray) -> bool:
    return 0 < truth.sum() < len(truth)


def _mean(values: Sequence[Optional[float]]) -> Optional[float]:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def _ratio(numerator: float, denominator: float) -> Optional[float]:
    return float(numerator / denominator) if denominator else None


def auroc(probabilities: Any, labels: Any, names: Sequence[str]) -> dict[str, Any]:
    """``{"auroc": macro, "auroc_per_class": {name: value or None}}`` (one-vs-rest for multi-class)."""
    from sklearn.metrics import roc_auc_score

    p, y = _arrays(probabilities, labels)
    per_class = {}
    for c, name in enumerate(names):
        truth, score = _one_vs_rest(p, y, c)
        per_class[name] = float(roc_auc_score(truth, score)) if _defined(truth) else None
    return {"auroc": _mean(list(per_class.values())), "auroc_per_class": per_class}


def roc_curves(probabilities: Any, labels: Any, names: Sequence[str]) -> dict[str, dict[str, list[float]]]:
    """ROC points per class whose AUROC is defined: ``{name: {"fpr": [...], "tpr": [...]}}``."""
    from sklearn.metrics import roc_curve

    p, y = _arrays(probabilities, labels)
    curves = {}
    for c, name in enumerate(names):
        truth, score = _one_vs_rest(p, y, c)
        if _defined(truth):
            fpr, tpr, _ = roc_curve(truth, score)
            curves[name] = {"fpr": np.round(fpr, ROUND).tolist(), "tpr": np.round(tpr, ROUND).tolist()}
    return curves


def choose_thresholds(probabilities: Any, labels: Any, rule: str = "youden",
                      target_sensitivity: float = 0.9) -> list[Optional[float]]:
    """One operating threshold per sigmoid output, chosen on these (validation) predictions.

    ``youden``: the threshold maximising sensitivity + specificity - 1 (on ties the highest, which
    flags fewer images). ``sensitivity``: the highest threshold whose sensitivity reaches
    ``target_sensitivity`` (so specificity is as high as that allows). Thresholds are predicted
    scores; an image is positive when its probability is ``>=`` the threshold. An output without
    positives or without negatives gets ``None`` (:func:`apply_thresholds` then uses 0.5).
    """
    from sklearn.metrics import roc_curve

    p, y = _arrays(probabilities, labels)
    if y.ndim == 1:
        raise ValueError("thresholds apply to binary and multi-label outputs; a multi-class prediction is the arg-max")
    if rule not in ("youden", "sensitivity"):
        raise ValueError(f"rule must be 'youden' or 'sensitivity', got {rule!r}")
    chosen: list[Optional[float]] = []
    for c in range(p.shape[1]):
        truth, score = _one_vs_rest(p, y, c)
        if not _defined(truth):
            chosen.append(None)
            continue
        fpr, tpr, thresholds = roc_curve(truth, score, drop_intermediate=False)
        # Index 0 is sklearn's "nothing is positive" point at +inf: not a usable threshold.
        fpr, tpr, thresholds = fpr[1:], tpr[1:], thresholds[1:]
        if rule == "youden":
            youden = tpr - fpr
            index = int(np.flatnonzero(youden >= youden.max() - 1e-12)[0])  # ties up to rounding: the highest
        else:
            index = int(np.argmax(tpr >= target_sensitivity - 1e-12))
        chosen.append(float(thresholds[index]))
    return chosen


def apply_thresholds(probabilities: Any, thresholds: Optional[Sequence[Optional[float]]] = None) -> np.ndarray:
    """0/1 predictions ``[N, C]``: ``p >= threshold`` per output (0.5 where a threshold is None or not given)."""
    p = np.asarray(probabilities, dtype=np.float64)
    p = p[:, None] if p.ndim == 1 else p
    if thresholds is not None and len(thresholds) != p.shape[1]:
        raise ValueError(f"{len(thresholds)} thresholds for {p.shape[1]} outputs")
    cut = np.array([DEFAULT_THRESHOLD if t is None else t for t in (thresholds or [None] * p.shape[1])])
    return (p >= cut).astype(np.int64)


def calibration(probabilities: Any, labels: Any, names: Sequence[str], bins: int = 10) -> dict[str, Any]:
    """Top-label calibration for multi-class (the core's :func:`~crossfuse.metrics.expected_calibration_error`:
    confidence = the largest probability, outcome = the arg-max is right); per-output calibration
    for sigmoid outputs, ``ece`` being the mean over outputs.

    Per output differs from the core's treatment of 0/1 label columns, which scores each column
    top-label (folding P = 0.2 onto confidence 0.8): a finding's reliability diagram plots
    P(finding) against how often the finding is there, so that is what is measured here.

    Returns ``{"ece", "kind": "top-label" | "per-class", "curves": {name: reliability(...)}}``.
    """
    p, y = _arrays(probabilities, labels)
    if y.ndim == 1:
        top = reliability(p.max(axis=1), (p.argmax(axis=1) == y).astype(np.int64), bins)
        ece = expected_calibration_error(p, y, bins) if len(y) else None
        return {"ece": ece, "kind": "top-label", "curves": {"top label": top}}
    curves = {name: reliability(p[:, c], y[:, c], bins) for c, name in enumerate(names)}
    return {"ece": _mean([curve["ece"] for curve in curves.values()]), "kind": "per-class", "curves": curves}


def _rates(matrix: np.ndarray) -> dict[str, Optional[float]]:
    """Sensitivity, specificity, PPV, NPV and accuracy of one ``[[TN, FP], [FN, TP]]`` matrix."""
    (tn, fp), (fn, tp) = matrix
    return {"sensitivity": _ratio(tp, tp + fn), "specificity": _ratio(tn, tn + fp), "ppv": _ratio(tp, tp + fp),
            "npv": _ratio(tn, tn + fn), "accuracy": _ratio(tp + tn, matrix.sum())}


def operating_point(probabilities: Any, labels: Any, names: Sequence[str],
                    thresholds: Optional[Sequence[Optional[float]]] = None) -> dict[str, Any]:
    """Accuracy, confusion matrices and per-class sensitivity / specificity / PPV / NPV at the operating
    point: the arg-max (multi-class) or ``thresholds`` (binary, multi-label; 0.5 where not given)."""
    p, y = _arrays(probabilities, labels)
    if y.ndim == 1:
        return _multiclass_point(p, y, names)
    from sklearn.metrics import accuracy_score, multilabel_confusion_matrix

    predicted = apply_thresholds(p, thresholds)
    per_output = multilabel_confusion_matrix(y, predicted, labels=list(range(p.shape[1])))
    result: dict[str, Any] = {"confusion_matrix": {name: m.tolist() for name, m in zip(names, per_output)}}
    result["accuracy"] = float(np.mean([_rates(m)["accuracy"] for m in per_output])) if len(y) else None
    if p.shape[1] > 1:
        result["subset_accuracy"] = float(accuracy_score(y, predicted))  # every finding right
    per_class = {}
    for c, (name, matrix) in enumerate(zip(names, per_output)):
        rates = _rates(matrix)
        per_class[name] = {key: rates[key] for key in ("sensitivity", "specificity", "ppv", "npv")}
        per_class[name] |= {"positives": int(matrix[1].sum()), "negatives": int(matrix[0].sum())}
        per_class[name]["threshold"] = DEFAULT_THRESHOLD if not thresholds or thresholds[c] is None \
            else float(thresholds[c])
    return _with_means(result, per_class)


def _multiclass_point(p: np.ndarray, y: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """The core's :func:`~crossfuse.metrics.classification_metrics` (accuracy, macro F1, confusion
    matrix, per-class precision = PPV, recall = sensitivity), plus specificity and NPV one-vs-rest."""
    core = classification_metrics(y, p, list(names))
    matrix = np.asarray(core["confusion_matrix"])
    total = matrix.sum()
    per_class = {}
    for c, name in enumerate(names):
        tp, predicted, actual = matrix[c, c], matrix[:, c].sum(), matrix[c].sum()
        tn = total - predicted - actual + tp
        scores = core["per_class"][name]
        per_class[name] = {"sensitivity": scores["recall"] if actual else None,
                           "specificity": _ratio(tn, total - actual), "ppv": scores["precision"] if predicted else None,
                           "npv": _ratio(tn, total - predicted), "f1": scores["f1"],
                           "positives": int(actual), "negatives": int(total - actual)}
    result = {"accuracy": core["accuracy"], "macro_f1": core["macro_f1"], "confusion_matrix": core["confusion_matrix"],
              "labels": core["labels"]}
    return _with_means(result, per_class)


def _with_means(result: dict[str, Any], per_class: dict[str, dict[str, Any]]) -> dict[str, Any]:
    result["sensitivity"] = _mean([v["sensitivity"] for v in per_class.values()])
    result["specificity"] = _mean([v["specificity"] for v in per_class.values()])
    result["per_class"] = per_class
    return result


def medical_metrics(probabilities: Any, labels: Any, names: Sequence[str],
                    thresholds: Optional[Sequence[Optional[float]]] = None, bins: int = 10) -> dict[str, Any]:
    """Everything above for one split, JSON-friendly. Scalars: ``auroc`` (main), ``accuracy``,
    ``sensitivity``, ``specificity``, ``ece`` (and ``subset_accuracy`` for multi-label); tables:
    ``auroc_per_class``, ``per_class``, ``confusion_matrix``, ``roc``, ``calibration``, ``classes``.

    >>> medical_metrics([[0.9], [0.2], [0.6]], [[1], [0], [0]], ["pneumonia"], thresholds=[0.5])["auroc"]
    1.0
    """
    p, y = _arrays(probabilities, labels)
    if len(names) != p.shape[1]:
        raise ValueError(f"{len(names)} names for {p.shape[1]} outputs")
    result = auroc(p, y, names)
    point = operating_point(p, y, names, thresholds)
    for name, value in result.pop("auroc_per_class").items():
        point["per_class"][name] = {"auroc": value, **point["per_class"][name]}
    calibrated = calibration(p, y, names, bins)
    result |= {key: point[key] for key in ("accuracy", "subset_accuracy", "macro_f1", "sensitivity", "specificity")
               if key in point}
    result["ece"] = calibrated["ece"]
    result["auroc_per_class"] = {name: values["auroc"] for name, values in point["per_class"].items()}
    result |= {"per_class": point["per_class"], "confusion_matrix": point["confusion_matrix"],
               "roc": roc_curves(p, y, names), "calibration": calibrated, "classes": list(names),
               "multiclass": bool(y.ndim == 1)}
    if "labels" in point:  # multi-class: what crossfuse.pictures.draw_confusion_matrices reads
        result["labels"] = point["labels"]
    return result


# -- registered metrics (crossfuse.metrics convention: parameters named after predict_step outputs) ---


def _names(probabilities: np.ndarray, task: Any) -> list[str]:
    names = getattr(task, "output_names", None) or getattr(task, "label_names", None)
    width = probabilities.shape[1] if probabilities.ndim == 2 else 1
    return list(names) if names and len(names) == width else [str(i) for i in range(width)]


def macro_auroc(probabilities: Any, labels: Any, task: Any = None) -> Optional[float]:
    """Registered as ``auroc``: the macro AUROC of :func:`auroc` (None when no class is defined)."""
    p = np.asarray(probabilities, dtype=np.float64)
    return auroc(p, labels, _names(p if p.ndim == 2 else p[:, None], task))["auroc"]


def classwise_ece(probabilities: Any, labels: Any, task: Any = None) -> Optional[float]:
    """Registered as ``classwise-ece``: the ECE of :func:`calibration` with 10 bins."""
    p = np.asarray(probabilities, dtype=np.float64)
    return calibration(p, labels, _names(p if p.ndim == 2 else p[:, None], task))["ece"]
