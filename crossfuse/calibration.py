"""Temperature scaling: calibrated confidence for single-label classifiers.

One scalar ``T``, fitted on the validation split's logits by minimising the negative
log-likelihood (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017), turns logits
into probabilities ``softmax(logits / T)``. The arg-max, and so every prediction, accuracy and
F1, stays what it was; only the confidence moves (``T > 1`` softens an over-confident model). A
task keeps ``T`` in its state (``task_state.json``) so ``predict`` prints calibrated probabilities,
and reports the expected calibration error before and after on every split.

>>> logits = torch.tensor([[4.0, 0.0], [4.0, 0.0], [0.0, 4.0], [4.0, 0.0]])
>>> round(fit_temperature(logits, torch.tensor([0, 1, 1, 0])), 2) > 1    # one confident error: soften
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from .metrics import reliability

# T outside this range means the validation split is too small or degenerate to say anything.
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.05, 20.0
BINS = 15  # equal-width confidence bins, as crossfuse.metrics.expected_calibration_error


def fit_temperature(logits: Any, labels: Any) -> float:
    """The temperature minimising the negative log-likelihood of ``labels`` under ``softmax(logits / T)``
    (L-BFGS on log T, in float64); 1.0 for an empty split."""
    logits = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    if not len(labels):
        return 1.0
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp().clamp(MIN_TEMPERATURE, MAX_TEMPERATURE))


def scaled_probabilities(logits: Any, temperature: float) -> torch.Tensor:
    """``softmax(logits / temperature)`` in float32."""
    return (torch.as_tensor(logits).float() / float(temperature)).softmax(-1)


def calibration_metrics(logits: Any, labels: Any, temperature: float) -> dict[str, Any]:
    """Top-label calibration of a split before and after temperature scaling.

    Returns ``ece`` (after), ``ece_before_scaling``, ``temperature``, and ``calibration``: the
    reliability bins of both (``{"kind": "top-label", "ece", "curves": {name: {"ece", "bins"}}}``,
    what :func:`crossfuse.pictures.draw_reliability` draws).
    """
    labels = np.asarray(labels)
    curves = {}
    for name, t in (("before scaling", 1.0), (f"after (T={temperature:.2f})", temperature)):
        p = scaled_probabilities(logits, t).numpy().astype(np.float64)
        curves[name] = reliability(p.max(axis=1), (p.argmax(axis=1) == labels).astype(np.float64), BINS)
    before, after = (curve["ece"] for curve in curves.values())
    return {"ece": after, "ece_before_scaling": before, "temperature": float(temperature),
            "calibration": {"kind": "top-label", "ece": after, "curves": curves}}


class TemperatureScaling:
    """A single-label classifier task's temperature: what the task calls from its contract methods.

    ``outputs(logits)`` in ``predict_step`` (raw logits and calibrated probabilities), ``fit(outputs)``
    in ``calibrate``, ``probabilities(outputs)`` and ``metrics(outputs)`` in ``compute_metrics`` (the
    probabilities are recomputed from the logits: validation outputs are collected before the fit),
    ``value`` in ``state_dict`` / ``load_state_dict``. ``enabled=False`` keeps T at 1.
    """

    def __init__(self, enabled: bool = True, value: float = 1.0):
        self.enabled, self.value = enabled, float(value)

    def outputs(self, logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"logits", "probabilities"}`` of a batch, the probabilities at the current temperature."""
        logits = logits.float()
        return {"logits": logits, "probabilities": scaled_probabilities(logits, self.value)}

    def fit(self, outputs: dict[str, Any]) -> None:
        """Fit the temperature on a split's outputs (the validation split's, after training)."""
        if self.enabled and "labels" in outputs and "logits" in outputs:
            self.value = fit_temperature(outputs["logits"], outputs["labels"])

    def probabilities(self, outputs: dict[str, Any]) -> np.ndarray:
        """The split's probabilities at the current temperature, ``[N, C]``."""
        return scaled_probabilities(outputs["logits"], self.value).numpy()

    def metrics(self, outputs: dict[str, Any]) -> dict[str, Any]:
        """:func:`calibration_metrics` of the split at the current temperature."""
        return calibration_metrics(outputs["logits"], outputs["labels"], self.value)
