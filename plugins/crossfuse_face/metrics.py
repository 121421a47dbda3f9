"""Face verification (1:1) and identification (1:N) metrics, as the field reports them.

Scores are similarities (cosine of L2-normalised embeddings): higher means "same person". A pair
is accepted when ``score >= threshold``, the convention of scikit-learn's ``roc_curve``, whose
points every curve-based number here is read from. FAR (false accept rate) is the ROC's FPR,
TAR (true accept rate) its TPR, FRR = 1 - TAR.

:func:`verification` and :func:`rank1` are the registered metrics (``eval.metrics``): their
parameters name what they take, as the core's convention says (the ``embedding`` output of a
split, its ``samples`` and the ``task``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROC_POINTS = 200  # enough for a smooth picture, small enough for a run summary


def _check(scores: Sequence[float], same: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    scores, same = np.asarray(scores, dtype=np.float64), np.asarray(same, dtype=bool)
    if scores.ndim != 1 or scores.shape != same.shape:
        raise ValueError(f"scores and same must be 1-D of one length; got {scores.shape} and {same.shape}")
    if same.all() or not same.any():
        raise ValueError("verification metrics need both genuine (same=True) and impostor (same=False) pairs")
    return scores, same


def _roc(scores: np.ndarray, same: np.ndarray, drop_intermediate: bool = False):
    from sklearn.metrics import roc_curve

    return roc_curve(same, scores, drop_intermediate=drop_intermediate)


def _finite(threshold: float, scores: np.ndarray) -> float:
    """roc_curve's first threshold is +inf (accept nothing); report the next float above the top score
    instead, which decides the same way and survives JSON."""
    return float(np.nextafter(scores.max(), np.inf)) if np.isinf(threshold) else float(threshold)


def tar_at_far(scores: Sequence[float], same: Sequence[bool], far: float) -> tuple[float, float]:
    """The highest TAR among ROC points with FAR <= ``far``, and that point's threshold.

    No interpolation: the answer is a threshold one could actually deploy. With ``n`` impostor
    pairs FAR moves in steps of ``1/n``, so for ``far < 1/n`` only FAR = 0 qualifies and the
    result is the TAR with the threshold just above the highest impostor score (0 if no genuine
    pair scores above every impostor). Among points with the same TAR the strictest threshold
    (lowest FAR) is returned.
    """
    scores, same = _check(scores, same)
    fpr, tpr, thresholds = _roc(scores, same)
    allowed = np.flatnonzero(fpr <= far)  # never empty: the first point has FPR 0
    best = allowed[np.argmax(tpr[allowed])]
    return float(tpr[best]), _finite(thresholds[best], scores)


def equal_error_rate(scores: Sequence[float], same: Sequence[bool]) -> tuple[float, float]:
    """The error rate where FAR = FRR, and the threshold there.

    Linear interpolation on the ROC: between the last point with FAR < FRR and the first with
    FAR >= FRR, the segment is followed to where FAR = 1 - TAR (what ``brentq`` on an
    ``interp1d`` ROC computes in common face code); the threshold is interpolated the same way.
    """
    scores, same = _check(scores, same)
    fpr, tpr, thresholds = _roc(scores, same)
    gap = fpr - (1.0 - tpr)  # rises along the curve: FAR grows, FRR falls
    i = int(np.argmax(gap >= 0))  # the last point (accept everything) has gap 1, so one exists
    if gap[i] == 0 or i == 0:
        return float(fpr[i]), _finite(thresholds[i], scores)
    t = -gap[i - 1] / (gap[i] - gap[i - 1])
    eer = fpr[i - 1] + t * (fpr[i] - fpr[i - 1])
    low, high = thresholds[i], thresholds[i - 1]
    threshold = low if np.isinf(high) else high + t * (low - high)
    return float(eer), float(threshold)


def _accuracy_by_cut(scores: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy and threshold for every distinct way to cut the sorted scores (O(n log n))."""
    order = np.argsort(scores, kind="stable")
    s, y = scores[order], same[order]
    n = len(s)
    rejected_impostors = np.concatenate([[0], np.cumsum(~y)])  # correct below the cut
    accepted_genuine = y.sum() - np.concatenate([[0], np.cumsum(y)])  # correct above it
    accuracy = (rejected_impostors + accepted_genuine) / n
    cut = np.concatenate([[True], s[1:] > s[:-1], [True]])  # a cut between tied scores is impossible
    middle = (s[:-1] + s[1:]) / 2
    thresholds = np.concatenate([[s[0]], middle, [np.nextafter(s[-1], np.inf)]])
    return accuracy[cut], thresholds[cut]


def best_threshold(scores: Sequence[float], same: Sequence[bool]) -> float:
    """The threshold with the highest accuracy on these pairs.

    Candidates are the midpoints between consecutive distinct scores, plus "accept all" and
    "reject all"; ties go to the lowest threshold.
    """
    scores, same = np.asarray(scores, dtype=np.float64), np.asarray(same, dtype=bool)
    accuracy, thresholds = _accuracy_by_cut(scores, same)
    return float(thresholds[int(np.argmax(accuracy))])


def _fold_ids(folds: Sequence[int] | None, n: int) -> np.ndarray:
    folds = np.zeros(n, dtype=int) if folds is None else np.asarray(folds)
    if folds.shape != (n,):
        raise ValueError(f"folds must give one fold per pair; got shape {folds.shape} for {n} pairs")
    if len(np.unique(folds)) > 1:
        return folds
    # One fold (pairsDevTest.txt): interleave into 10 folds. Dev files list all matched pairs and
    # then all mismatched ones, so every tenth pair keeps each fold balanced.
    return np.arange(n) % min(10, n)


def kfold_accuracy(scores: Sequence[float], same: Sequence[bool], folds: Sequence[int] | None) -> dict[str, Any]:
    """LFW's protocol: for each fold, choose the threshold on the other folds, measure accuracy on it.

    With a single fold (the Dev form) or ``folds=None``, pair ``i`` goes to fold ``i % 10``. ``std`` is the
    population standard deviation over folds (``np.std``, as InsightFace reports it); LFW's own
    "standard error" is ``std / sqrt(folds)``.
    """
    scores, same = _check(scores, same)
    fold_ids = _fold_ids(folds, len(scores))
    per_fold, thresholds = [], []
    for fold in np.unique(fold_ids):
        test = fold_ids == fold
        threshold = best_threshold(scores[~test], same[~test])
        per_fold.append(float(np.mean((scores[test] >= threshold) == same[test])))
        thresholds.append(threshold)
    return {"mean": float(np.mean(per_fold)), "std": float(np.std(per_fold)), "per_fold": per_fold,
            "thresholds": thresholds}


def calibrate_threshold(scores: Sequence[float], same: Sequence[bool], far: float) -> dict[str, float]:
    """The operating point to store with a model: the threshold keeping FAR <= ``far`` on these pairs.

    Returns ``threshold``, the FAR and TAR it achieves here (``far`` may be below the target: FAR
    moves in steps of one impostor pair), and ``target_far``.
    """
    scores, same = _check(scores, same)
    tar, threshold = tar_at_far(scores, same, far)
    accepted = scores >= threshold
    return {"threshold": threshold, "far": float(accepted[~same].mean()), "tar": tar, "target_far": float(far)}


def _normalised(embeddings: np.ndarray) -> np.ndarray:
    embeddings = np.asarray(embeddings, dtype=np.float64)
    return embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)


def rank1_identification(gallery_emb: np.ndarray, gallery_ids: Sequence, probe_emb: np.ndarray,
                         probe_ids: Sequence) -> dict[str, Any]:
    """Closed-set identification: is each probe's best-matching gallery identity its own?

    Similarity is the cosine of L2-normalised embeddings (normalised here); an identity with
    several gallery images scores its best one. ``rank5`` is added when the gallery has at least
    five identities. Every probe identity must be in the gallery (else ValueError).
    """
    names, column_id = np.unique(np.asarray(gallery_ids), return_inverse=True)
    probe_ids = np.asarray(probe_ids)
    missing = sorted(set(probe_ids.tolist()) - set(names.tolist()))
    if missing:
        raise ValueError(f"{len(missing)} probe identit(ies) have no gallery image, e.g. {missing[:3]}; "
                         f"closed-set identification needs every probe identity in the gallery")
    similarity = _normalised(probe_emb) @ _normalised(gallery_emb).T
    per_identity = np.full((len(probe_ids), len(names)), -np.inf)
    for k in range(len(names)):
        per_identity[:, k] = similarity[:, column_id == k].max(axis=1)
    truth = np.searchsorted(names, probe_ids)
    # Rank of the truth = how many identities score strictly higher (ties count in the probe's favour).
    rank = (per_identity > per_identity[np.arange(len(truth)), truth][:, None]).sum(axis=1)
    result: dict[str, Any] = {"rank1": float(np.mean(rank < 1)), "n_probes": len(truth),
                              "n_gallery_identities": len(names)}
    if len(names) >= 5:
        result["rank5"] = float(np.mean(rank < 5))
    return result


def gallery_probe_split(ids: Sequence, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a gallery (one image per identity) and the probes (the rest), both sorted.

    With ``seed=None`` the gallery image is each identity's first in ``ids`` order; with an
    integer seed it is chosen at random, reproducibly. Identities with one image are gallery only
    (they act as distractors for the probes).
    """
    ids = np.asarray(ids)
    rng = None if seed is None else np.random.default_rng(seed)
    gallery = []
    for identity in dict.fromkeys(ids.tolist()):  # first-appearance order, deterministic
        members = np.flatnonzero(ids == identity)
        gallery.append(members[0] if rng is None else rng.choice(members))
    gallery = np.sort(np.asarray(gallery, dtype=int))
    probes = np.setdiff1d(np.arange(len(ids)), gallery)
    return gallery, probes


def _downsampled(fpr: np.ndarray, tpr: np.ndarray, limit: int = ROC_POINTS) -> dict[str, list[float]]:
    keep = np.unique(np.round(np.linspace(0, len(fpr) - 1, min(limit, len(fpr)))).astype(int))
    return {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist()}


def far_key(far: float) -> str:
    """The summary key suffix for a FAR: ``far=0.01``, ``far=0.001``."""
    return f"far={far:g}"


def verification_metrics(scores: Sequence[float], same: Sequence[bool], folds: Sequence[int] | None,
                         fars: Sequence[float] = (1e-2, 1e-3)) -> dict[str, Any]:
    """Everything a verification report shows, in one JSON-ready dict.

    ``accuracy`` / ``accuracy_std`` follow :func:`kfold_accuracy`; ``tar@far=X`` and
    ``threshold@far=X`` follow :func:`tar_at_far`. FAR resolution is ``1/n_impostor_pairs``: with
    300 impostor pairs (LFW's Dev form), ``tar@far=0.001`` is the TAR at FAR 0. ``roc`` holds at
    most 200 points of the curve for drawing.
    """
    from sklearn.metrics import roc_auc_score

    scores, same = _check(scores, same)
    kfold = kfold_accuracy(scores, same, folds)
    eer, eer_threshold = equal_error_rate(scores, same)
    metrics: dict[str, Any] = {
        "accuracy": kfold["mean"], "accuracy_std": kfold["std"], "accuracy_per_fold": kfold["per_fold"],
        "roc_auc": float(roc_auc_score(same, scores)), "eer": eer, "eer_threshold": eer_threshold,
    }
    for far in fars:
        metrics[f"tar@{far_key(far)}"], metrics[f"threshold@{far_key(far)}"] = tar_at_far(scores, same, far)
    fpr, tpr, _ = _roc(scores, same, drop_intermediate=True)
    metrics.update({"best_threshold": best_threshold(scores, same), "n_pairs": len(scores),
                    "n_genuine_pairs": int(same.sum()), "n_impostor_pairs": int((~same).sum()),
                    "roc": _downsampled(fpr, tpr)})
    return metrics


# --- registered metrics (crossfuse.metrics convention) -------------------------------------------

def verification(embedding: Any, samples: Any, task: Any) -> dict[str, Any]:
    """:func:`verification_metrics` of an evaluation split: ``samples`` is its ``PairSet``,
    ``embedding`` the L2-normalised embedding of each of its images, the FARs ``task.config.data.fars``."""
    scores = samples.scores(np.asarray(embedding))
    return verification_metrics(scores, samples.same, samples.folds(), tuple(task.config.data.fars))


def rank1(embedding: Any, samples: Any) -> dict[str, Any]:
    """Rank-1 (and rank-5) identification among the distinct images of a split's pairs: each person's
    first image is the gallery, the others are probes; the identity is the image's folder name.
    Empty when there are no probes or fewer than two people."""
    paths = samples.images
    ids = [Path(p).parent.name for p in paths]
    gallery, probes = gallery_probe_split(ids)
    if not len(probes) or len(gallery) < 2:
        return {}
    embedding = np.asarray(embedding)
    result = rank1_identification(embedding[gallery], [ids[i] for i in gallery], embedding[probes],
                                  [ids[i] for i in probes])
    return {f"identification_{k}": v for k, v in result.items()}
