"""Verification and identification metrics on cases worked out by hand or by brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from crossfuse_face.metrics import (
    best_threshold,
    calibrate_threshold,
    equal_error_rate,
    gallery_probe_split,
    kfold_accuracy,
    rank1_identification,
    tar_at_far,
    verification_metrics,
)


def test_eer_at_an_roc_point():
    # genuine 0.9 0.8 0.7 0.4, impostor 0.6 0.5 0.3 0.2. Accepting >= 0.6 takes 3 of 4 genuine
    # (FRR 1/4) and 1 of 4 impostors (FAR 1/4): FAR = FRR = 0.25 exactly, at threshold 0.6.
    scores = [0.9, 0.8, 0.7, 0.4, 0.6, 0.5, 0.3, 0.2]
    same = [True] * 4 + [False] * 4
    assert equal_error_rate(scores, same) == pytest.approx((0.25, 0.6))


def test_eer_interpolates_between_roc_points():
    # genuine 0.9 0.5, impostor 0.5 0.1. ROC points (FAR, TAR): >=0.9 -> (0, 0.5); >=0.5 -> (0.5, 1).
    # On that segment TAR = 0.5 + FAR, so FAR = 1 - TAR gives FAR = 0.25; halfway, threshold 0.7.
    assert equal_error_rate([0.9, 0.5, 0.5, 0.1], [True, True, False, False]) == pytest.approx((0.25, 0.7))


def _hundred_impostors():
    # Impostors score 0.00, 0.01, ..., 0.99; ten genuine pairs, three above every impostor but one.
    genuine = [0.995, 0.985, 0.975, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.01]
    scores = np.array(genuine + [i / 100 for i in range(100)])
    return scores, np.array([True] * 10 + [False] * 100)


def test_tar_at_far_with_a_hundred_impostors():
    scores, same = _hundred_impostors()
    # FAR <= 1 %: one impostor (0.99) may pass; the lowest threshold doing that is 0.985 -> 2 of 10 genuine.
    assert tar_at_far(scores, same, 0.01) == pytest.approx((0.2, 0.985))
    # FAR <= 0.1 % is below one impostor in a hundred: only FAR 0, i.e. accept above 0.99 -> 1 genuine.
    assert tar_at_far(scores, same, 1e-3) == pytest.approx((0.1, 0.995))
    # FAR <= 5 %: still 3 genuine; the strictest threshold reaching that TAR is reported (0.975, FAR 2 %).
    assert tar_at_far(scores, same, 0.05) == pytest.approx((0.3, 0.975))


def test_tar_at_far_matches_brute_force():
    rng = np.random.default_rng(3)
    scores = np.concatenate([rng.normal(0.6, 0.2, 80), rng.normal(0.2, 0.2, 300)])
    same = np.arange(380) < 80
    for far in (0.0, 0.003, 0.01, 0.1, 0.5):
        candidates = [*scores, np.inf]
        best = max(same[scores >= t].sum() / 80 for t in candidates if (scores[~same] >= t).mean() <= far)
        tar, threshold = tar_at_far(scores, same, far)
        assert tar == pytest.approx(best)
        assert (scores[~same] >= threshold).mean() <= far


def test_far_zero_with_no_separable_genuine_gives_a_finite_threshold():
    tar, threshold = tar_at_far([0.1, 0.9], [True, False], 0.0)
    assert tar == 0.0 and 0.9 < threshold < 0.9 + 1e-9


def test_calibrated_threshold_reports_what_it_achieves():
    scores, same = _hundred_impostors()
    point = calibrate_threshold(scores, same, 0.01)
    assert point == pytest.approx({"threshold": 0.985, "far": 0.01, "tar": 0.2, "target_far": 0.01})


def test_best_threshold_is_a_midpoint():
    assert best_threshold([0.1, 0.2, 0.3, 0.4], [False, False, True, True]) == pytest.approx(0.25)
    # Genuine pairs score lowest: every cut gets 0 or 1 of 4 right, accepting all or rejecting all gets 2.
    # Of those two ties the lowest threshold (accept all, 0.1) wins.
    assert best_threshold([0.1, 0.2, 0.3, 0.4], [True, True, False, False]) == pytest.approx(0.1)


def _brute_force_kfold(scores, same, folds):
    """LFW's protocol written the slow, obvious way."""
    per_fold, thresholds = [], []
    for k in sorted(set(folds)):
        train, test = folds != k, folds == k
        values = np.unique(scores[train])
        candidates = [values[0]] + [(a + b) / 2 for a, b in itertools.pairwise(values)] + [values[-1] + 1e-9]
        accuracy = [np.mean((scores[train] >= t) == same[train]) for t in candidates]
        threshold = candidates[int(np.argmax(accuracy))]
        thresholds.append(threshold)
        per_fold.append(np.mean((scores[test] >= threshold) == same[test]))
    return per_fold, thresholds


def test_kfold_accuracy_matches_brute_force_with_fold_dependent_shift():
    rng = np.random.default_rng(0)
    folds = np.repeat(np.arange(10), 20)
    same = np.tile(np.arange(20) < 10, 10)
    # Every fold is shifted, so the threshold learnt on the other nine folds misses its own fold.
    scores = np.where(same, 0.6, 0.3) + rng.normal(0, 0.1, 200) + 0.05 * (folds - 4.5)
    result = kfold_accuracy(scores, same, folds)
    per_fold, thresholds = _brute_force_kfold(scores, same, folds)
    assert result["per_fold"] == pytest.approx(per_fold)
    assert result["thresholds"] == pytest.approx(thresholds)
    assert result["mean"] == pytest.approx(np.mean(per_fold)) and result["std"] == pytest.approx(np.std(per_fold))
    assert len(set(np.round(thresholds, 6))) > 1  # the per-fold threshold really varies


def test_a_single_fold_is_split_ten_ways_interleaved():
    rng = np.random.default_rng(1)
    same = np.arange(100) < 50  # Dev form: matched first, then mismatched
    scores = np.where(same, 0.5, 0.2) + rng.normal(0, 0.2, 100)
    one_fold = kfold_accuracy(scores, same, np.zeros(100, dtype=int))
    assert len(one_fold["per_fold"]) == 10
    assert one_fold == kfold_accuracy(scores, same, np.arange(100) % 10)


def test_rank1_uses_the_best_gallery_image_of_each_identity():
    gallery = np.array([[1.0, 0.0], [0.7, 0.7], [0.0, 1.0], [-1.0, 0.0]])
    gallery_ids = ["a", "a", "b", "c"]
    probes = np.array([[0.6, 0.8],    # a: best of its two images (cos 0.99) beats b (0.8) -> right
                       [0.1, 0.9],    # truly a, but closest to b -> wrong
                       [-2.0, 0.1]])  # c, and the scale does not matter -> right
    result = rank1_identification(gallery, gallery_ids, probes, ["a", "a", "c"])
    assert result["rank1"] == pytest.approx(2 / 3) and result["n_probes"] == 3 and "rank5" not in result


def test_rank5_with_five_identities():
    gallery = np.eye(6)[:, :6]
    probes = np.array([[0.1, 1.0, 0.9, 0.8, 0.7, 0.6]])  # truth "a" (axis 0) ranks 6th of 6
    result = rank1_identification(gallery, list("abcdef"), probes, ["a"])
    assert result["rank1"] == 0.0 and result["rank5"] == 0.0
    result = rank1_identification(gallery, list("abcdef"), probes, ["e"])  # 4th
    assert result["rank1"] == 0.0 and result["rank5"] == 1.0


def test_a_probe_identity_missing_from_the_gallery_is_an_error():
    with pytest.raises(ValueError, match="no gallery image"):
        rank1_identification(np.eye(2), ["a", "b"], np.eye(2), ["a", "z"])


def test_gallery_probe_split_takes_each_identity_first_image():
    gallery, probes = gallery_probe_split(["a", "b", "a", "c", "b", "a"])
    assert gallery.tolist() == [0, 1, 3] and probes.tolist() == [2, 4, 5]
    seeded = gallery_probe_split(["a", "b", "a", "c", "b", "a"], seed=5)
    assert [x.tolist() for x in seeded] == [x.tolist() for x in gallery_probe_split(list("abacba"), seed=5)]
    assert sorted(np.array(list("abacba"))[seeded[0]].tolist()) == ["a", "b", "c"]


def test_verification_metrics_summary():
    rng = np.random.default_rng(2)
    same = np.arange(1200) < 600
    scores = np.where(same, 0.5, 0.1) + rng.normal(0, 0.15, 1200)
    folds = np.arange(1200) // 120
    metrics = verification_metrics(scores, same, folds)
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(same, scores))
    assert metrics["accuracy"] == pytest.approx(kfold_accuracy(scores, same, folds)["mean"])
    assert (metrics["tar@far=0.01"], metrics["threshold@far=0.01"]) == tar_at_far(scores, same, 0.01)
    assert (metrics["eer"], metrics["eer_threshold"]) == equal_error_rate(scores, same)
    assert metrics["n_pairs"] == 1200 and metrics["n_impostor_pairs"] == 600 and metrics["n_genuine_pairs"] == 600
    # With 600 impostors FAR 0.1 % is below one impostor: it is the TAR at FAR 0.
    assert metrics["tar@far=0.001"] == tar_at_far(scores, same, 0.0)[0]
    assert 2 <= len(metrics["roc"]["fpr"]) == len(metrics["roc"]["tpr"]) <= 200
    assert metrics["roc"]["fpr"][0] == 0.0 and metrics["roc"]["tpr"][-1] == 1.0
    assert 0.2 < metrics["eer_threshold"] < 0.4 and 0.85 < metrics["accuracy"] < 0.99


def test_one_class_only_is_an_error():
    with pytest.raises(ValueError, match="both genuine"):
        verification_metrics([0.1, 0.2], [True, True], [0, 0])
