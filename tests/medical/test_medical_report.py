"""The report pictures are written from the metrics dicts, for every kind of task and undefined classes."""

from __future__ import annotations

import numpy as np
from PIL import Image

from crossfuse_medical.metrics import medical_metrics
from crossfuse_medical.report import draw_calibration, draw_confusion, draw_reliability, draw_report, draw_roc


def test_multilabel_pictures_with_an_undefined_finding(tmp_path):
    rng = np.random.default_rng(0)
    labels = (rng.random((40, 3)) < 0.4).astype(int)
    labels[:, 2] = 0  # no positive: AUROC undefined, the ROC legend says so
    probabilities = np.clip(labels * 0.4 + rng.random((40, 3)) * 0.6, 0, 1)
    metrics = medical_metrics(probabilities, labels, ["effusion", "nodule", "opacity"], thresholds=[0.5, 0.6, None])
    assert draw_roc(metrics, tmp_path / "roc.png") == "roc.png"
    assert draw_confusion(metrics, tmp_path / "confusion.png") == "confusion.png"
    assert draw_reliability(metrics, tmp_path / "reliability.png") == "reliability.png"
    for name in ("roc.png", "confusion.png", "reliability.png"):
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG" and image.width > 300
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_draw_report_draws_roc_and_reliability_per_split_and_one_confusion_picture(tmp_path):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 60)
    probabilities = rng.dirichlet(np.ones(4), 60)
    splits = {split: medical_metrics(probabilities, labels, ["a", "b", "c", "d"]) for split in ("validation", "test")}
    written = draw_report({"task": "t", "backbone": "b", "splits": {**splits, "baseline": {"accuracy": 0.5}}}, tmp_path)
    # multi-class: one confusion picture with both splits (crossfuse.pictures.draw_confusion_matrices)
    assert sorted(written) == sorted([f"{kind}_{split}.png" for kind in ("roc", "reliability")
                                      for split in ("validation", "test")] + ["confusion_matrix.png"])
    assert all((tmp_path / name).stat().st_size > 1000 for name in written)


def test_the_reliability_picture_puts_the_curves_before_and_after_scaling_side_by_side(tmp_path):
    import torch

    from crossfuse.calibration import PlattScaling

    rng = np.random.default_rng(2)
    logits = torch.tensor(rng.normal(size=(200, 2)) * 2 + 1.5, dtype=torch.float32)  # shifted up, as pos_weight does
    labels = torch.bernoulli((logits - 1.5).sigmoid(), generator=torch.Generator().manual_seed(0))
    outputs = {"logits": logits, "labels": labels}
    pictures = {}
    for name, scaling in (("scaled", PlattScaling()), ("identity", PlattScaling(enabled=False))):
        scaling.fit(outputs)
        metrics = medical_metrics(scaling.probabilities(outputs), outputs["labels"].numpy(), ["effusion", "nodule"])
        metrics.update(scaling.metrics(outputs, ["effusion", "nodule"], bins=10))
        assert draw_calibration(metrics, tmp_path / f"{name}.png") == f"{name}.png"
        with Image.open(tmp_path / f"{name}.png") as image:
            pictures[name] = image.width
    assert pictures["scaled"] > 1.5 * pictures["identity"]  # two panels; an identity scaling draws one
