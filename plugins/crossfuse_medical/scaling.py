"""Calibrated probabilities for the medical tasks: which post-hoc scaling a problem gets, how it is
saved in ``task_state.json``, and its calibration error before and after.

Sigmoid outputs (binary, multi-label) get per-output Platt scaling
(:class:`crossfuse.calibration.PlattScaling`, ``sigmoid(a_c * z_c + b_c)``): BCE ``pos_weight``
shifts every logit of a rare finding upward, which a bias per output undoes and a temperature
cannot. Multi-class outputs get temperature scaling (:class:`crossfuse.calibration.TemperatureScaling`),
which keeps the arg-max. Both are fitted on the validation split by the task's ``calibrate``
when ``head.calibration`` is true (false: the identity, raw probabilities) and both are monotone
per output, so AUROC and the operating points keep their sensitivity and specificity.

>>> from crossfuse_medical.labels import LabelSpace
>>> scaling = new_scaling(LabelSpace("multilabel", ("opacity", "nodule")), enabled=True)
>>> scaling_state(scaling)
{'method': 'platt', 'slopes': None, 'biases': None}
"""

from __future__ import annotations

from typing import Any, Sequence, Union

import numpy as np

from crossfuse.calibration import PlattScaling, TemperatureScaling, scaled_probabilities
from crossfuse.errors import CrossfuseError

from .labels import LabelSpace
from .metrics import calibration

Scaling = Union[PlattScaling, TemperatureScaling]

# What an exported file's outputs are, and what a caller does with them (preprocessing.json).
LOGITS_MEANING = ("[batch, outputs] raw logits: one per finding (sigmoid) or per class (softmax), before the "
                  "task state's calibration")
SCALING_NOTE = ("Probabilities are the task state's calibration applied to the logits: platt: sigmoid(slopes[c] * "
                "logit[c] + biases[c]) per output (null slopes: plain sigmoid), then the thresholds; temperature: "
                "softmax(logits / temperature)")


def new_scaling(space: LabelSpace, enabled: bool) -> Scaling:
    """The identity scaling for ``space``'s outputs: Platt for sigmoid outputs, a temperature for softmax."""
    return PlattScaling(enabled) if space.uses_sigmoid else TemperatureScaling(enabled)


def scaling_state(scaling: Scaling) -> dict[str, Any]:
    """What ``task_state.json`` keeps of ``scaling`` (its ``calibration`` entry)."""
    if isinstance(scaling, PlattScaling):
        return scaling.state_dict()
    return {"method": "temperature", "temperature": scaling.value}


def load_scaling(space: LabelSpace, enabled: bool, state: dict[str, Any] | None, where: str) -> Scaling:
    """The scaling saved as ``state`` (``None``: a run from before calibration was saved, the identity).

    ``where`` names the file and key in errors (``RUN/task_state.json: calibration``).
    """
    scaling = new_scaling(space, enabled)
    if not state:
        return scaling
    expected = "platt" if space.uses_sigmoid else "temperature"
    if state.get("method") != expected:
        raise CrossfuseError(f"{where}: method {state.get('method')!r}, but the run's {space.kind} outputs take a "
                             f"{expected!r} scaling; the run folder is edited or from another task")
    if isinstance(scaling, TemperatureScaling):
        scaling.value = float(state.get("temperature", 1.0))
        return scaling
    try:
        scaling.load_state_dict(state)
    except ValueError as error:
        raise CrossfuseError(f"{where}: {error}") from None
    if scaling.slopes is not None and len(scaling.slopes) != len(space.outputs):
        raise CrossfuseError(f"{where}: {len(scaling.slopes)} slopes for the {len(space.outputs)} outputs "
                             f"{list(space.outputs)}; the run folder is edited or from another run")
    return scaling


def calibration_metrics(scaling: Scaling, outputs: dict[str, Any], names: Sequence[str], bins: int) -> dict[str, Any]:
    """``ece`` (after scaling), ``ece_before_scaling`` and ``calibration`` (the after-scaling curves, as
    :func:`crossfuse_medical.metrics.calibration` gives them, with ``method`` and ``before_scaling``:
    ``{"ece", "curves"}`` of the raw probabilities); ``platt`` slopes and biases per output, or the
    ``temperature``."""
    if isinstance(scaling, PlattScaling):
        return scaling.metrics(outputs, names, bins)
    labels = np.asarray(outputs["labels"])
    before = calibration(scaled_probabilities(outputs["logits"], 1.0).numpy(), labels, names, bins)
    after = calibration(scaling.probabilities(outputs), labels, names, bins)
    return {"ece": after["ece"], "ece_before_scaling": before["ece"], "temperature": scaling.value,
            "calibration": {**after, "method": "temperature",
                            "before_scaling": {"ece": before["ece"], "curves": before["curves"]}}}


def with_calibration(metrics: dict[str, Any], calibrated: dict[str, Any]) -> dict[str, Any]:
    """``metrics`` updated with :func:`calibration_metrics`, ``ece_before_scaling`` placed right after
    ``ece`` so the report, ``crossfuse eval`` and the run summary show the two side by side."""
    merged: dict[str, Any] = {}
    for key, value in {**metrics, **calibrated}.items():
        if key != "ece_before_scaling":
            merged[key] = value
        if key == "ece":
            merged["ece_before_scaling"] = calibrated["ece_before_scaling"]
    return merged
