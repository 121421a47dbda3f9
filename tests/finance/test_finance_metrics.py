"""Finance metrics against hand-computed values, and the TF-IDF baseline."""

from __future__ import annotations

import numpy as np
import pytest

from crossfuse_finance.metrics import classification_metrics, tfidf_baseline

LABELS = ["negative", "neutral", "positive"]


def one_hot(predictions, classes=3):
    return np.eye(classes)[predictions]


def test_metrics_match_a_hand_computed_case():
    # truth:      neg neg neg neu neu pos
    # prediction: neg neg neu neu pos pos
    metrics = classification_metrics([0, 0, 0, 1, 1, 2], one_hot([0, 0, 1, 1, 2, 2]), LABELS)
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    # negative: P 2/2, R 2/3, F1 0.8; neutral: P 1/2, R 1/2, F1 0.5; positive: P 1/2, R 1/1, F1 2/3
    assert metrics["per_class"]["negative"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8,
                                                             "support": 3})
    assert metrics["per_class"]["neutral"]["f1"] == pytest.approx(0.5)
    assert metrics["per_class"]["positive"]["f1"] == pytest.approx(2 / 3)
    assert metrics["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert metrics["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert "macro_roc_auc" in metrics


def test_roc_auc_is_left_out_when_a_class_is_absent():
    metrics = classification_metrics([0, 0, 1], one_hot([0, 1, 1]), LABELS)
    assert "macro_roc_auc" not in metrics
    assert metrics["per_class"]["positive"]["support"] == 0


def test_baseline_learns_word_cues_and_reports_every_split():
    train = [(f"{w} surged strongly", 2) for w in ("profit", "sales", "orders", "margin", "revenue")] * 3 + \
            [(f"{w} collapsed badly", 0) for w in ("profit", "sales", "orders", "margin", "revenue")] * 3
    test = [("earnings surged strongly", 2), ("earnings collapsed badly", 0)]
    result = tfidf_baseline(train, {"test": test}, ["negative", "neutral", "positive"])
    assert result["name"] == "tfidf-logreg"
    assert result["splits"]["test"]["accuracy"] == 1.0


def test_baseline_character_ngrams_handle_chinese():
    train = [(f"{c}公司股价上涨", 1) for c in "甲乙丙丁戊己庚辛"] + [(f"{c}公司股价下跌", 0) for c in "甲乙丙丁戊己庚辛"]
    test = [("壬公司股价上涨", 1), ("壬公司股价下跌", 0)]
    result = tfidf_baseline(train, {"test": test}, ["negative", "positive"])
    assert result["splits"]["test"]["accuracy"] == 1.0


def test_confident_errors_list_the_surest_mistakes_first():
    from crossfuse_finance.metrics import confident_errors

    samples = [("a", 0), ("b", 1), ("c", 2), ("d", 0)]
    probabilities = np.array([[0.9, 0.05, 0.05], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8], [0.2, 0.0, 0.8]])
    errors = confident_errors(samples, probabilities, LABELS)
    assert [(e["text"], e["label"], e["predicted"], e["confidence"]) for e in errors] == \
        [("d", "negative", "positive", 0.8), ("b", "neutral", "negative", 0.6)]
