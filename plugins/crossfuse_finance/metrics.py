"""Where a finance model errs (its most confident mistakes), and the TF-IDF + logistic-regression baseline."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from crossfuse.metrics import classification_metrics


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
