"""Temperature scaling: the fitted temperature, unchanged predictions, lower calibration error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crossfuse.calibration import calibration_metrics, fit_temperature, scaled_probabilities


def overconfident(n=4000, true_temperature=2.5, seed=0):
    """Logits whose labels were drawn from softmax(logits / 2.5): a model 2.5 times too sure."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, 4, generator=generator) * 4
    labels = torch.multinomial((logits / true_temperature).softmax(-1), 1, generator=generator).squeeze(1)
    return logits, labels


def test_the_fitted_temperature_recovers_the_one_the_labels_were_drawn_with():
    logits, labels = overconfident()
    assert fit_temperature(logits, labels) == pytest.approx(2.5, rel=0.1)


def test_scaling_changes_confidence_but_no_prediction():
    logits, _ = overconfident(n=200)
    assert torch.equal(scaled_probabilities(logits, 3.0).argmax(-1), logits.argmax(-1))
    assert scaled_probabilities(logits, 3.0).max(-1).values.mean() < scaled_probabilities(logits, 1.0).max(-1).values.mean()


def test_a_temperature_fitted_on_one_split_lowers_the_error_on_another():
    validation, test = overconfident(seed=1), overconfident(seed=2)
    temperature = fit_temperature(*validation)
    metrics = calibration_metrics(*test, temperature)
    assert metrics["ece"] < 0.03 < 0.1 < metrics["ece_before_scaling"]
    assert metrics["calibration"]["curves"]["before scaling"]["ece"] == metrics["ece_before_scaling"]


def test_an_empty_split_leaves_the_temperature_at_one():
    assert fit_temperature(np.zeros((0, 3)), np.zeros(0)) == 1.0


def test_the_reliability_picture_draws_both_curves(tmp_path):
    from crossfuse.pictures import draw_reliability

    metrics = calibration_metrics(*overconfident(n=300), 2.0)
    assert draw_reliability(metrics, tmp_path / "reliability.png") == "reliability.png"
    assert (tmp_path / "reliability.png").read_bytes().startswith(b"\x89PNG")
