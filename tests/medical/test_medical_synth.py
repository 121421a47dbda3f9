"""The synthetic radiograph demo: deterministic, read by the real reader, with labels a model can learn
from the pixels and the notes, but not from global brightness, and notes that never state a finding."""

from __future__ import annotations

import re

import numpy as np
import pytest

from crossfuse_medical.config import DemoConfig
from crossfuse_medical.formats import read_medmnist
from crossfuse_medical.labels import infer_label_space
from crossfuse_medical.synth import FINDINGS, MULTICLASS, demo_path, synthesize, write_medmnist_demo


@pytest.fixture(scope="module")
def films():
    """800 training and 400 held-out films (about 3 s of CPU)."""
    return synthesize(800, seed=0), synthesize(400, seed=0, start=800)


def held_out_auroc(train_features, train_labels, test_features, test_labels, findings=FINDINGS):
    """Test AUROC per finding of a logistic regression fitted on the training features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    scores = {}
    for finding in findings:
        j = FINDINGS.index(finding)
        model = make_pipeline(StandardScaler(with_mean=False), LogisticRegression(C=0.1, max_iter=1000))
        model.fit(train_features, train_labels[:, j])
        scores[finding] = roc_auc_score(test_labels[:, j], model.predict_proba(test_features)[:, 1])
    return scores


def test_same_seed_same_films_and_splits_never_repeat(tmp_path):
    first = np.load(write_medmnist_demo(tmp_path / "a.npz", 3, 2, 2, seed=5, size=32))
    again = np.load(write_medmnist_demo(tmp_path / "b.npz", 3, 2, 2, seed=5, size=32))
    other = np.load(write_medmnist_demo(tmp_path / "c.npz", 3, 2, 2, seed=6, size=32))
    for key in first.files:
        assert np.array_equal(first[key], again[key]), key
    assert not np.array_equal(first["train_images"], other["train_images"])
    images, _, notes = synthesize(2, seed=5, size=32, start=3)  # the validation films
    assert np.array_equal(images, first["val_images"]) and notes == first["val_notes"].tolist()


def test_the_demo_goes_through_the_medmnist_reader(tmp_path):
    splits = read_medmnist(write_medmnist_demo(tmp_path / "demo.npz", 20, 5, 5, size=48))
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (20, 5, 5)
    sample = splits.train[0]
    assert sample.classes == FINDINGS and len(sample.labels) == 4 and sample.channels == 1 and sample.note
    assert sample.source.shape == (48, 48) and sample.source.dtype == np.uint8
    assert infer_label_space(splits.train).kind == "multilabel"


def test_the_demo_is_generated_once_into_the_cache():
    demo = DemoConfig(train=6, validation=3, test=3, size=32, seed=2)
    path = demo_path(demo)
    written = path.stat().st_mtime_ns
    assert path.name == "chest.npz" and "medical-demo" in str(path)
    assert demo_path(demo) == path and path.stat().st_mtime_ns == written
    assert len(read_medmnist(path).validation) == 3


def test_the_multiclass_variant_has_one_class_per_film(tmp_path):
    splits = read_medmnist(write_medmnist_demo(tmp_path / "mc.npz", 60, 5, 5, size=32, variant="multiclass"))
    space = infer_label_space(splits.train)
    assert space.kind == "multiclass" and space.classes == MULTICLASS
    assert set(space.targets(splits.train).tolist()) == set(range(5))


def test_findings_are_common_enough_and_often_come_together(films):
    (_, labels, _), _ = films
    prevalence = labels.mean(axis=0)
    assert np.all(prevalence > 0.05) and np.all(prevalence < 0.35)
    assert (labels.sum(axis=1) >= 2).mean() > 0.08


def test_global_brightness_does_not_separate_the_findings(films):
    (train_images, train_labels, _), (test_images, test_labels, _) = films

    def statistics(images):
        flat = images.reshape(len(images), -1).astype(float)
        return np.stack([flat.mean(1), flat.std(1), *np.percentile(flat, [5, 25, 50, 75, 95], axis=1)], axis=1)

    scores = held_out_auroc(statistics(train_images), train_labels, statistics(test_images), test_labels)
    assert max(scores.values()) < 0.7, scores


def test_the_pixels_carry_the_findings(films):
    (train_images, train_labels, _), (test_images, test_labels, _) = films

    def thumbnails(images):  # 16 x 16 averages: enough for heart size and fluid at the bases
        size = images.shape[1] // 16
        return images.reshape(len(images), 16, size, 16, size).mean(axis=(2, 4)).reshape(len(images), -1)

    scores = held_out_auroc(thumbnails(train_images), train_labels, thumbnails(test_images), test_labels,
                            ("effusion", "cardiomegaly"))
    assert scores["cardiomegaly"] > 0.7 and scores["effusion"] > 0.65, scores


def test_notes_correlate_with_the_findings_without_stating_them(films):
    from sklearn.feature_extraction.text import TfidfVectorizer

    (_, train_labels, train_notes), (_, test_labels, test_notes) = films
    words = TfidfVectorizer(ngram_range=(1, 2), min_df=2).fit(train_notes)
    scores = held_out_auroc(words.transform(train_notes), train_labels, words.transform(test_notes), test_labels)
    assert 0.65 < np.mean(list(scores.values())) < 0.9, scores
    text = " ".join(train_notes).lower()
    assert not re.search(r"\b(opacity|nodule|cardiomegaly)\b", text)
    assert all(re.search(r"\?(left |right )?effusion", note.lower()) for note in train_notes if "effusion" in note.lower())
    assert any(note in ("CXR please.", "As discussed.") for note in train_notes)  # some say nothing useful
