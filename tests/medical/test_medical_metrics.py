"""Medical metrics against values computed by hand (and, where scikit-learn has the metric, against it)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from crossfuse_medical.metrics import (
    apply_thresholds,
    auroc,
    calibration,
    choose_thresholds,
    medical_metrics,
    reliability,
)

# Two findings, six images. A: positives score 0.9, 0.8, 0.35 against negatives 0.4, 0.3, 0.1 -> 8 of 9
# pairs ordered. B: positives 0.6, 0.7 against 0.2, 0.1, 0.65, 0.3 -> 7 of 8.
P = np.array([[0.9, 0.2], [0.8, 0.6], [0.4, 0.7], [0.3, 0.1], [0.35, 0.65], [0.1, 0.3]])
Y = np.array([[1, 0], [1, 1], [0, 1], [0, 0], [1, 0], [0, 0]])
NAMES = ["A", "B"]

# Three classes, five images; image 3 (class 1) is predicted class 0.
PM = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.3, 0.6], [0.5, 0.3, 0.2], [0.2, 0.35, 0.45]])
YM = np.array([0, 1, 2, 1, 2])
CLASSES = ["x", "y", "z"]


def test_auroc_per_finding_and_macro():
    result = auroc(P, Y, NAMES)
    assert result["auroc_per_class"] == pytest.approx({"A": 8 / 9, "B": 7 / 8})
    assert result["auroc"] == pytest.approx((8 / 9 + 7 / 8) / 2)


def test_multiclass_auroc_is_one_vs_rest_and_matches_sklearns_macro():
    from sklearn.metrics import roc_auc_score

    result = auroc(PM, YM, CLASSES)
    # class y: 0.5 beats all three negatives; 0.3 beats 0.2, ties 0.3 (half), loses to 0.35 -> 4.5 / 6
    assert result["auroc_per_class"] == pytest.approx({"x": 1.0, "y": 0.75, "z": 1.0})
    assert result["auroc"] == pytest.approx(roc_auc_score(YM, PM, multi_class="ovr", average="macro"))


def test_a_class_without_positives_or_negatives_is_undefined_and_left_out_of_the_macro():
    labels = Y.copy()
    labels[:, 1] = 0
    result = medical_metrics(P, labels, NAMES)
    assert result["auroc_per_class"] == {"A": pytest.approx(8 / 9), "B": None}
    assert result["auroc"] == pytest.approx(8 / 9)
    assert result["per_class"]["B"]["sensitivity"] is None and "B" not in result["roc"]
    only_classes_0_and_1 = auroc(PM[:2], YM[:2], CLASSES)
    assert only_classes_0_and_1["auroc_per_class"]["z"] is None
    assert auroc(P[:1], Y[:1], NAMES)["auroc"] is None  # one image: nothing is defined


def test_youden_threshold_prefers_the_highest_of_tied_thresholds():
    # A: J = 2/3 at 0.8 (tpr 2/3, fpr 0) and at 0.35 (tpr 1, fpr 1/3); B: J = 3/4 at 0.6
    assert choose_thresholds(P, Y, "youden") == [0.8, 0.6]


def test_target_sensitivity_takes_the_highest_threshold_reaching_it():
    assert choose_thresholds(P, Y, "sensitivity", target_sensitivity=0.9) == [0.35, 0.6]
    assert choose_thresholds(P, Y, "sensitivity", target_sensitivity=0.5) == [0.8, 0.7]


def test_thresholds_are_none_where_undefined_and_refused_for_multiclass():
    labels = Y.copy()
    labels[:, 0] = 1
    assert choose_thresholds(P, labels)[0] is None
    assert apply_thresholds(P, [None, 0.6]).tolist() == [[1, 0], [1, 1], [0, 1], [0, 0], [0, 1], [0, 0]]
    with pytest.raises(ValueError, match="arg-max"):
        choose_thresholds(PM, YM)


def test_operating_point_metrics_at_saved_thresholds():
    result = medical_metrics(P, Y, NAMES, thresholds=[0.8, 0.6], bins=2)
    # A: predicted 1 1 0 0 0 0 -> TP 2, FN 1, TN 3; B: predicted 0 1 1 0 1 0 -> TP 2, FP 1, TN 3
    assert result["confusion_matrix"] == {"A": [[3, 0], [1, 2]], "B": [[3, 1], [0, 2]]}
    a, b = result["per_class"]["A"], result["per_class"]["B"]
    assert (a["sensitivity"], a["specificity"], a["ppv"], a["npv"]) == pytest.approx((2 / 3, 1, 1, 3 / 4))
    assert (b["sensitivity"], b["specificity"], b["ppv"], b["npv"]) == pytest.approx((1, 3 / 4, 2 / 3, 1))
    assert (a["threshold"], a["positives"], a["negatives"]) == (0.8, 3, 3)
    assert result["sensitivity"] == pytest.approx(5 / 6) and result["specificity"] == pytest.approx(7 / 8)
    assert result["accuracy"] == pytest.approx(5 / 6) and result["subset_accuracy"] == pytest.approx(5 / 6)


def test_multiclass_accuracy_confusion_and_per_class_rates():
    result = medical_metrics(PM, YM, CLASSES)
    assert result["accuracy"] == pytest.approx(0.8) and result["multiclass"]
    assert result["confusion_matrix"] == [[1, 0, 0], [1, 1, 0], [0, 0, 2]]
    assert [result["per_class"][c]["sensitivity"] for c in CLASSES] == pytest.approx([1, 0.5, 1])
    assert [result["per_class"][c]["specificity"] for c in CLASSES] == pytest.approx([0.75, 1, 1])
    assert "threshold" not in result["per_class"]["x"] and "subset_accuracy" not in result


def test_binary_labels_may_be_given_flat():
    result = medical_metrics(P[:, :1], Y[:, 0], ["A"], thresholds=[0.8])
    assert result["auroc"] == pytest.approx(8 / 9) and result["accuracy"] == pytest.approx(5 / 6)
    assert "subset_accuracy" not in result


def test_calibration_per_finding_by_hand():
    # bins [0, 0.5] and (0.5, 1]. A: low bin 0.4 0.3 0.35 0.1 (one positive): |0.25 - 0.2875|; high bin
    # 0.9 0.8 (both positive): |1 - 0.85|. ECE_A = 4/6 * 0.0375 + 2/6 * 0.15 = 0.075.
    # B: low bin 0.2 0.1 0.3 (none positive): 0.2; high 0.6 0.7 0.65 (two positive): 1/60. ECE_B = 0.108333.
    result = calibration(P, Y, NAMES, bins=2)
    assert result["kind"] == "per-class"
    assert result["curves"]["A"]["ece"] == pytest.approx(0.075)
    assert result["curves"]["B"]["ece"] == pytest.approx(0.1 + 1 / 120)
    assert result["ece"] == pytest.approx((0.075 + 0.1 + 1 / 120) / 2)
    low = result["curves"]["A"]["bins"][0]
    assert low == {"low": 0.0, "high": 0.5, "count": 4, "confidence": pytest.approx(0.2875), "accuracy": 0.25}


def test_multiclass_calibration_is_top_label():
    # confidences 0.7 0.5 0.6 0.5 0.45, right 1 1 1 0 1: low bin |2/3 - 0.48333| * 3/5, high bin |1 - 0.65| * 2/5
    result = calibration(PM, YM, CLASSES, bins=2)
    assert result["kind"] == "top-label" and list(result["curves"]) == ["top label"]
    assert result["ece"] == pytest.approx(0.25)


def test_reliability_bins_agree_with_sklearns_calibration_curve():
    from sklearn.calibration import calibration_curve

    rng = np.random.default_rng(1)
    confidence = rng.random(500)
    outcome = (rng.random(500) < confidence ** 1.5).astype(int)
    bins = reliability(confidence, outcome, 10)["bins"]
    truth, predicted = calibration_curve(outcome, confidence, n_bins=10)
    filled = [b for b in bins if b["count"]]
    assert [b["accuracy"] for b in filled] == pytest.approx(truth.tolist())
    assert [b["confidence"] for b in filled] == pytest.approx(predicted.tolist())
    assert sum(b["count"] for b in bins) == 500


def test_the_result_is_json_and_carries_roc_points():
    result = medical_metrics(P, Y, NAMES, thresholds=[0.8, 0.6])
    assert json.loads(json.dumps(result)) == result
    assert result["roc"]["A"]["fpr"][0] == 0.0 and result["roc"]["A"]["tpr"][-1] == 1.0


def test_mismatched_inputs_are_refused():
    with pytest.raises(ValueError, match="do not match"):
        medical_metrics(P, Y[:, :1], NAMES)
    with pytest.raises(ValueError, match="class ids must be in"):
        medical_metrics(PM, np.array([0, 1, 2, 3, 0]), CLASSES)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        medical_metrics(P * 2, Y, NAMES)


def test_registered_metrics_follow_the_core_convention():
    import torch

    from crossfuse.metrics import registered_metric

    class Task:
        name, output_names = "any", NAMES

    outputs = {"probabilities": torch.tensor(P), "labels": torch.tensor(Y)}
    assert registered_metric("auroc", outputs, [None] * 6, Task()) == pytest.approx((8 / 9 + 7 / 8) / 2)
    assert registered_metric("classwise-ece", outputs, [None] * 6, Task()) == pytest.approx(
        calibration(P, Y, NAMES)["ece"])
    softmax = {"probabilities": torch.tensor(PM), "labels": torch.tensor(YM)}  # e.g. finance-sentiment's outputs
    assert registered_metric("auroc", softmax, [None] * 5, Task()) == pytest.approx(auroc(PM, YM, CLASSES)["auroc"])
