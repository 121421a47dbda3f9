"""Temperature scaling (softmax) and Platt scaling (sigmoid outputs): the fitted parameters, unchanged
predictions and rankings, lower calibration error."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from crossfuse.calibration import (
    MAX_SLOPE,
    MIN_SLOPE,
    PlattScaling,
    calibration_metrics,
    fit_platt,
    fit_temperature,
    platt_probabilities,
    scaled_probabilities,
)


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


# -- Platt scaling ---------------------------------------------------------------------------------


def shifted(n=3000, shift=2.0, scale=1.5, seed=0):
    """Three sigmoid outputs whose labels were drawn from sigmoid(z), reported as scale * z + shift: the
    upward shift BCE pos_weight leaves, and a model 1.5 times too sure."""
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 3, generator=generator) * torch.tensor([1.0, 2.0, 3.0])
    labels = torch.bernoulli(z.sigmoid(), generator=generator)
    return z * scale + shift, labels


def test_platt_scaling_recovers_the_slope_and_bias_the_logits_were_shifted_by():
    logits, labels = shifted()
    slopes, biases = fit_platt(logits, labels)
    assert slopes == pytest.approx([1 / 1.5] * 3, rel=0.15)
    assert biases == pytest.approx([-2.0 / 1.5] * 3, abs=0.25)


def test_platt_scaling_fitted_on_validation_lowers_the_test_error_and_keeps_every_ranking():
    from sklearn.metrics import roc_auc_score

    scaling = PlattScaling()
    logits, labels = shifted(seed=1)
    scaling.fit({"logits": logits, "labels": labels})
    test_logits, test_labels = shifted(seed=2)
    test = {"logits": test_logits, "labels": test_labels}
    metrics = scaling.metrics(test, ["a", "b", "c"])
    assert metrics["ece_before_scaling"] > 0.15 and metrics["ece"] < 0.03
    calibrated = scaling.probabilities(test)
    for c in range(3):  # the ranking of the logits themselves (a float32 sigmoid would tie saturated ones)
        assert roc_auc_score(test_labels[:, c], calibrated[:, c]) == roc_auc_score(test_labels[:, c], test_logits[:, c])
    assert set(metrics["calibration"]["curves"]) == {"a", "b", "c"} and metrics["calibration"]["kind"] == "per-class"
    assert metrics["calibration"]["before_scaling"]["ece"] == metrics["ece_before_scaling"]
    assert metrics["platt"]["a"] == {"slope": scaling.slopes[0], "bias": scaling.biases[0]}


def test_a_temperature_alone_cannot_undo_the_shift():
    logits, labels = shifted(seed=3)
    best = min(np.linspace(0.5, 3, 26), key=lambda t: torch.nn.functional.binary_cross_entropy_with_logits(
        logits / t, labels).item())
    scaled = {"logits": logits / best, "labels": labels}
    assert PlattScaling().metrics(scaled)["ece_before_scaling"] > 0.1  # the best temperature: still off by 0.1+


def test_a_column_without_positives_or_without_negatives_keeps_the_identity():
    logits, labels = shifted(n=200, seed=4)
    labels[:, 0], labels[:, 2] = 0.0, 1.0
    slopes, biases = fit_platt(logits, labels)
    assert (slopes[0], biases[0]) == (1.0, 0.0) and (slopes[2], biases[2]) == (1.0, 0.0)
    assert (slopes[1], biases[1]) != (1.0, 0.0)
    assert fit_platt(np.zeros((0, 2)), np.zeros((0, 2))) == ([1.0, 1.0], [0.0, 0.0])  # an empty split


def test_the_slope_stays_in_its_range_on_separable_and_on_uninformative_outputs():
    z = torch.linspace(-3, 3, 40)[:, None]
    separable, noise = (z > 0).float(), torch.tensor([[float(i % 2)] for i in range(40)])
    assert fit_platt(z, separable)[0][0] <= MAX_SLOPE
    assert MIN_SLOPE <= fit_platt(z, noise)[0][0] < 0.2


def test_platt_state_round_trips_and_a_missing_one_is_the_identity():
    scaling = PlattScaling()
    scaling.fit(dict(zip(("logits", "labels"), shifted(n=500, seed=5))))
    restored = PlattScaling()
    restored.load_state_dict(json.loads(json.dumps(scaling.state_dict())))
    assert (restored.slopes, restored.biases) == (scaling.slopes, scaling.biases) and not restored.identity
    old = PlattScaling()
    old.load_state_dict(None)
    logits = torch.randn(5, 3)
    assert old.identity and torch.equal(old.outputs(logits)["probabilities"], logits.double().sigmoid())
    with pytest.raises(ValueError, match="2 slopes and 2 biases for 3 outputs"):
        platt_probabilities(logits, [1.0, 1.0], [0.0, 0.0])


def test_disabled_platt_scaling_fits_nothing():
    scaling = PlattScaling(enabled=False)
    scaling.fit(dict(zip(("logits", "labels"), shifted(n=200))))
    assert scaling.identity and scaling.state_dict() == {"method": "platt", "slopes": None, "biases": None}


def test_binary_logits_given_as_one_column_vector_are_one_output():
    logits, labels = shifted(n=400, seed=6)
    slopes, _ = fit_platt(logits[:, 0], labels[:, 0])
    assert len(slopes) == 1 and slopes == pytest.approx(fit_platt(logits[:, :1], labels[:, :1])[0])


def test_the_module_examples_hold():
    import doctest

    import crossfuse.calibration

    assert doctest.testmod(crossfuse.calibration).failed == 0
