"""Post-hoc calibration: temperature scaling for single-label classifiers, Platt scaling for sigmoid outputs.

One scalar ``T``, fitted on the validation split's logits by minimising the negative
log-likelihood (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017), turns logits
into probabilities ``softmax(logits / T)``. The arg-max, and so every prediction, accuracy and
F1, stays what it was; only the confidence moves (``T > 1`` softens an over-confident model). A
task keeps ``T`` in its state (``task_state.json``) so ``predict`` prints calibrated probabilities,
and reports the expected calibration error before and after on every split.

>>> logits = torch.tensor([[4.0, 0.0], [4.0, 0.0], [0.0, 4.0], [4.0, 0.0]])
>>> round(fit_temperature(logits, torch.tensor([0, 1, 1, 0])), 2) > 1    # one confident error: soften
True

Sigmoid outputs (binary and multi-label tasks) are calibrated one output at a time by
:class:`PlattScaling`: ``sigmoid(a_c * z_c + b_c)``, a slope and a bias per output fitted on
validation by binary cross-entropy. The bias is what a temperature lacks: it undoes the upward
shift that BCE ``pos_weight`` gives every probability.
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


# -- Platt scaling: per-output sigmoid calibration -------------------------------------------------
#
# Top-label temperature scaling above suits softmax classifiers. A sigmoid output is its own
# binary problem, and a model trained with BCE ``pos_weight`` (positives up-weighted by
# negatives / positives) has logits shifted *upward* by about log(pos_weight): every probability
# too high, on either side of 0.5. A temperature only rescales ``z`` around 0, so it cannot move
# that offset; Platt scaling (Platt 1999; the binary case of the vector scaling in Guo et al. 2017)
# fits a slope AND a bias per output, ``p_c = sigmoid(a_c * z_c + b_c)``. With ``a_c > 0`` it is
# monotone per output: every ranking (AUROC) and every operating point stays what it was, only the
# probability attached to it moves.

MIN_SLOPE, MAX_SLOPE = 0.05, 20.0  # as for T: outside this range the validation split says too little


def fit_platt(logits: Any, labels: Any) -> tuple[list[float], list[float]]:
    """Per-output ``(slopes, biases)`` minimising the binary cross-entropy of ``labels`` (0/1, ``[N, C]``)
    under ``sigmoid(a_c * logits[:, c] + b_c)``; L-BFGS in float64, ``a_c`` kept in [0.05, 20]. An output
    without positives or without negatives (and any output of an empty split) keeps ``a = 1, b = 0``.

    >>> z = torch.tensor([[-1.0], [0.0], [1.0], [2.0], [3.0], [4.0]])    # every logit 2 too high
    >>> slopes, biases = fit_platt(z, torch.tensor([[0.0], [0.0], [1.0], [0.0], [1.0], [1.0]]))
    >>> biases[0] < -1                                                     # the bias pulls them back down
    True
    """
    z, y = _columns(logits), _columns(labels)
    if z.shape != y.shape:
        raise ValueError(f"logits {tuple(z.shape)} and labels {tuple(y.shape)} do not match: expected [N, C] each")
    fitted = [_fit_column(z[:, c], y[:, c]) for c in range(z.shape[1])]
    return [a for a, _ in fitted], [b for _, b in fitted]


def _columns(values: Any) -> torch.Tensor:
    """``values`` as a float64 ``[N, C]`` tensor (a binary problem's ``[N]`` becomes ``[N, 1]``)."""
    tensor = torch.as_tensor(np.asarray(values, dtype=np.float64))
    return tensor[:, None] if tensor.ndim == 1 else tensor


def _fit_column(z: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """``(a, b)`` of one output; identity where both classes are not present."""
    positives = float(y.sum())
    if not 0 < positives < len(y):
        return 1.0, 0.0
    # a = MIN + (MAX - MIN) * sigmoid(u): bounded without a clamp that would leave b fitted for another a;
    # u starts where a = 1, b at 0: the uncalibrated sigmoid.
    u = torch.logit(torch.tensor((1.0 - MIN_SLOPE) / (MAX_SLOPE - MIN_SLOPE), dtype=torch.float64))
    u = u.clone().requires_grad_(True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([u, b], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(_slope(u) * z + b, y)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(_slope(u.detach())), float(b.detach())


def _slope(u: torch.Tensor) -> torch.Tensor:
    return MIN_SLOPE + (MAX_SLOPE - MIN_SLOPE) * torch.sigmoid(u)


def platt_probabilities(logits: Any, slopes: Any = None, biases: Any = None) -> torch.Tensor:
    """``sigmoid(slopes * logits + biases)`` per output (``None``: the plain sigmoid), in float64.

    Float64 because a small slope compresses the logits: in float32, logits that differ in their last
    digits would map to one probability, and such ties change AUROC; float64 keeps every order."""
    z = torch.as_tensor(logits).double()
    if slopes is None:
        return z.sigmoid()
    width = z.shape[-1] if z.ndim > 1 else 1
    if len(slopes) != width or len(biases) != width:
        raise ValueError(f"Platt scaling holds {len(slopes)} slopes and {len(biases)} biases for {width} outputs")
    a = torch.tensor(slopes, dtype=torch.float64, device=z.device)
    b = torch.tensor(biases, dtype=torch.float64, device=z.device)
    return (z * a + b).sigmoid() if z.ndim > 1 else (z * a[0] + b[0]).sigmoid()


def _per_output_curves(probabilities: np.ndarray, labels: np.ndarray, names: list[str], bins: int) -> dict[str, Any]:
    """``{"ece": mean over outputs with data, "curves": {name: reliability(...)}}``: P(finding) against
    how often it is there, one curve per output."""
    curves = {name: reliability(probabilities[:, c], labels[:, c], bins) for c, name in enumerate(names)}
    defined = [curve["ece"] for curve in curves.values() if curve["ece"] is not None]
    return {"ece": float(np.mean(defined)) if defined else None, "curves": curves}


class PlattScaling:
    """A sigmoid task's per-output Platt scaling, used like :class:`TemperatureScaling`.

    ``outputs(logits)`` in ``predict_step`` (raw logits and calibrated probabilities), ``fit(outputs)``
    in ``calibrate`` (``outputs["logits"]`` and 0/1 ``outputs["labels"]``, ``[N, C]``),
    ``probabilities(outputs)`` and ``metrics(outputs)`` in ``compute_metrics`` (recomputed from the
    logits: validation outputs are collected before the fit), ``state_dict`` / ``load_state_dict``
    for ``task_state.json``. Until fitted, and with ``enabled=False``, it is the identity (the plain
    sigmoid), whatever the number of outputs.

    >>> scaling = PlattScaling()
    >>> scaling.fit({"logits": torch.tensor([[2.0], [3.0], [4.0], [1.0]]), "labels": torch.tensor([[0.], [1.], [1.], [0.]])})
    >>> scaling.state_dict()["method"], scaling.identity
    ('platt', False)
    """

    def __init__(self, enabled: bool = True, slopes: list[float] | None = None, biases: list[float] | None = None):
        if (slopes is None) != (biases is None):
            raise ValueError("Platt scaling needs both slopes and biases, or neither (the identity)")
        self.enabled, self.slopes, self.biases = enabled, slopes, biases

    @property
    def identity(self) -> bool:
        """Whether the scaling leaves every probability as the plain sigmoid."""
        return self.slopes is None or all(a == 1.0 and b == 0.0 for a, b in zip(self.slopes, self.biases))

    def outputs(self, logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"logits"}`` (float32) and calibrated ``{"probabilities"}`` (float64) of a batch."""
        logits = logits.float()
        return {"logits": logits, "probabilities": platt_probabilities(logits, self.slopes, self.biases)}

    def fit(self, outputs: dict[str, Any]) -> None:
        """Fit slopes and biases on a split's outputs (the validation split's, after training)."""
        if self.enabled and "labels" in outputs and "logits" in outputs:
            self.slopes, self.biases = fit_platt(outputs["logits"], outputs["labels"])

    def probabilities(self, outputs: dict[str, Any]) -> np.ndarray:
        """The split's calibrated probabilities, ``[N, C]`` float64."""
        return _columns(platt_probabilities(outputs["logits"], self.slopes, self.biases)).numpy()

    def metrics(self, outputs: dict[str, Any], names: Any = None, bins: int = BINS) -> dict[str, Any]:
        """Per-output calibration of a split before and after the scaling.

        Returns ``ece`` (after: the mean over outputs of each output's ECE), ``ece_before_scaling``,
        ``platt`` (``{name: {"slope", "bias"}}``) and ``calibration``: ``{"kind": "per-class", "ece",
        "curves": {name: {"ece", "bins"}}}`` after scaling (what :func:`crossfuse.pictures.draw_reliability`
        draws) with ``"before_scaling": {"ece", "curves"}`` beside it.
        """
        labels = _columns(outputs["labels"]).numpy()
        names = list(names) if names is not None else [str(c) for c in range(labels.shape[1])]
        before = _per_output_curves(_columns(platt_probabilities(outputs["logits"])).numpy(), labels, names, bins)
        after = _per_output_curves(self.probabilities(outputs), labels, names, bins)
        slopes, biases = self.slopes or [1.0] * len(names), self.biases or [0.0] * len(names)
        return {"ece": after["ece"], "ece_before_scaling": before["ece"],
                "platt": {name: {"slope": a, "bias": b} for name, a, b in zip(names, slopes, biases)},
                "calibration": {"kind": "per-class", **after, "method": "platt", "before_scaling": before}}

    def state_dict(self) -> dict[str, Any]:
        """``{"method": "platt", "slopes", "biases"}`` (JSON; ``None`` lists: the identity)."""
        return {"method": "platt", "slopes": self.slopes, "biases": self.biases}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Restore :meth:`state_dict`; ``None`` (a run saved before Platt scaling) is the identity."""
        state = state or {}
        if state.get("method", "platt") != "platt":
            raise ValueError(f"a {state['method']!r} scaling is not a Platt scaling")
        slopes, biases = state.get("slopes"), state.get("biases")
        if (slopes is None) != (biases is None) or (slopes is not None and len(slopes) != len(biases)):
            raise ValueError(f"Platt scaling state needs as many slopes as biases, got {slopes} and {biases}")
        self.slopes = None if slopes is None else [float(a) for a in slopes]
        self.biases = None if biases is None else [float(b) for b in biases]
