"""Classification metrics (scikit-learn) and the TF-IDF + logistic-regression baseline."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def classification_metrics(y_true: Sequence[int], probabilities: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro/weighted F1, per-class precision/recall/F1/support and the confusion matrix.

    ``probabilities`` is ``[N, C]``; the prediction is its arg-max. Macro ROC AUC (one-vs-rest)
    is added for three or more labels when every class occurs in ``y_true``.
    """
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
        roc_auc_score,
    )

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
        label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for label, p, r, f, s in zip(labels, precision, recall, f1, support)
    }
    metrics["labels"] = list(labels)
    metrics["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=ids).tolist()
    return metrics


def confident_errors(samples: Sequence[tuple[str, int]], probabilities: np.ndarray, labels: Sequence[str],
                     limit: int = 10) -> list[dict[str, Any]]:
    """The ``limit`` misclassified texts the model was surest about: where to look first."""
    probabilities = np.asarray(probabilities)
    predicted = probabilities.argmax(axis=1)
    wrong = [i for i, (_, truth) in enumerate(samples) if predicted[i] != truth]
    wrong.sort(key=lambda i: -probabilities[i, predicted[i]])
    return [{"text": samples[i][0], "label": labels[samples[i][1]], "predicted": labels[predicted[i]],
             "confidence": round(float(probabilities[i, predicted[i]]), 4)} for i in wrong[:limit]]


def tfidf_baseline(train: Sequence[tuple[str, int]], splits: dict[str, Sequence[tuple[str, int]]],
                   labels: Sequence[str], seed: int = 0) -> dict[str, Any]:
    """Fit TF-IDF (word 1-2-grams + character 2-5-grams, so it also works for Chinese) + logistic regression.

    ``train`` and each split are ``(text, label_id)`` pairs. Returns the same metrics per split.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    features = make_union(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                          TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True))
    model = make_pipeline(features, LogisticRegression(max_iter=2000, C=10.0, random_state=seed))
    texts, targets = zip(*train)
    model.fit(list(texts), list(targets))
    # predict_proba columns follow model.classes_; map them onto all label ids.
    results = {}
    for name, samples in splits.items():
        split_texts, split_targets = zip(*samples)
        probabilities = np.zeros((len(samples), len(labels)))
        probabilities[:, model.classes_] = model.predict_proba(list(split_texts))
        results[name] = classification_metrics(split_targets, probabilities, labels)
    return {"name": "tfidf-logreg", "splits": results}
