"""The label space of a medical task: binary, multi-class or multi-label, and the names of its outputs.

The readers name what they read (:attr:`MedicalImage.classes`); :func:`infer_label_space` turns the
training split into a :class:`LabelSpace`:

- one label per image and two classes: **binary** (one output, the positive class's probability;
  BCE with ``pos_weight``). The positive class is ``data.positive_class``, else the class whose
  name does not sound negative ("normal", "negative", "healthy", "benign", "0" ...), else the second;
- one label per image and more classes (or two with ``data.problem: multiclass``): **multi-class**
  (one output per class, softmax and cross-entropy);
- several 0/1 labels per image: **multi-label** (one output per finding, sigmoid and BCE).

The space is saved with the run (:meth:`LabelSpace.to_dict`). :meth:`LabelSpace.targets` encodes
any split by class *name*, so a validation file that lists its classes in another order, or lacks
one, still lines up with training; a class training never named is a :class:`DataError`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from crossfuse.errors import ConfigError, DataError, DataWarning

from .images import MedicalImage

KINDS = ("binary", "multiclass", "multilabel")
NEGATIVE_NAMES = {"0", "normal", "negative", "healthy", "benign", "no finding", "no_finding", "nofinding", "none",
                  "absent", "false", "no", "control", "no disease"}


@dataclass(frozen=True)
class LabelSpace:
    """What the model predicts. ``classes``: binary ``(negative, positive)``; multi-class the classes in
    output order; multi-label the findings in output order."""

    kind: str
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "binary" and len(self.classes) != 2:
            raise ValueError(f"a binary label space has two classes, got {self.classes}")

    @property
    def outputs(self) -> tuple[str, ...]:
        """One name per model output (probability column): binary has one, the positive class."""
        return self.classes[1:] if self.kind == "binary" else self.classes

    @property
    def uses_sigmoid(self) -> bool:
        """True when each output is an independent probability (binary, multi-label): sigmoid and BCE."""
        return self.kind != "multiclass"

    def targets(self, samples: Sequence[MedicalImage], split: str = "data") -> np.ndarray:
        """Labels as :mod:`crossfuse_medical.metrics` takes them: ``[N]`` class ids for multi-class,
        ``[N, C]`` 0/1 for binary (C = 1) and multi-label. ``split`` names the samples in errors."""
        mappings: dict[tuple[str, ...], np.ndarray] = {}
        width = 1 if self.kind == "multiclass" else len(self.outputs)
        encoded = np.zeros((len(samples), width), dtype=np.int64)
        for row, sample in enumerate(samples):
            if sample.classes not in mappings:
                mappings[sample.classes] = self._mapping(sample, split)
            encoded[row] = self._encode(sample, mappings[sample.classes], split)
        return encoded[:, 0] if self.kind == "multiclass" else encoded

    def _mapping(self, sample: MedicalImage, split: str) -> np.ndarray:
        """Source index -> output index (-1: the source's name is not in this space)."""
        known = {name: index for index, name in enumerate(self.classes)}
        mapping = np.array([known.get(name, -1) for name in sample.classes], dtype=np.int64)
        if self.kind == "multilabel":
            missing = [name for name in self.classes if name not in sample.classes]
            if missing:
                raise DataError(f"{sample.where} ({split}): the source does not list the finding(s) "
                                f"{', '.join(missing)} that training has; set data.labels to the full list of "
                                f"findings so every split is read against it")
        return mapping

    def _encode(self, sample: MedicalImage, mapping: np.ndarray, split: str) -> np.ndarray:
        labels = sample.labels
        if self.kind == "multilabel":
            if len(labels) != len(sample.classes) or len(labels) < 2:
                raise DataError(f"{sample.where} ({split}): expected one 0/1 value per finding "
                                f"({', '.join(self.classes)}), found {labels}")
            row = np.zeros(len(self.classes), dtype=np.int64)
            row[mapping[mapping >= 0]] = np.asarray(labels)[mapping >= 0]
            return row
        if len(labels) != 1 or not 0 <= labels[0] < len(mapping):
            raise DataError(f"{sample.where} ({split}): expected one class id (0 to {len(mapping) - 1}), found "
                            f"{labels}; a {self.kind} task reads one label per image")
        index = int(mapping[labels[0]])
        if index < 0:
            raise DataError(f"{sample.where} ({split}): class {sample.classes[labels[0]]!r} does not occur in "
                            f"training (classes: {', '.join(self.classes)}); add it to the training data, or "
                            f"set data.labels")
        return np.array([index]) if self.kind == "multiclass" else np.array([int(index == 1)])

    def sampling_keys(self, samples: Sequence[MedicalImage]) -> list[Any]:
        """Each sample's class for class-balanced sampling: the class id, or for multi-label the tuple
        of its findings (so rare combinations are drawn as often as common ones)."""
        encoded = self.targets(samples, "train")
        if self.kind == "multilabel":
            return [tuple(np.flatnonzero(row).tolist()) for row in encoded]
        return [int(v) for v in encoded.reshape(len(samples), -1)[:, 0]]

    def positive_weights(self, samples: Sequence[MedicalImage]) -> Optional[list[float]]:
        """BCE ``pos_weight`` per output: negatives / positives in ``samples`` (1.0 where an output has
        no positive or no negative). None for multi-class, whose loss is cross-entropy."""
        if self.kind == "multiclass":
            return None
        encoded = self.targets(samples, "train")
        positives = encoded.sum(axis=0)
        negatives = len(encoded) - positives
        return [float(n / p) if p and n else 1.0 for p, n in zip(positives, negatives)]

    def counts(self, samples: Sequence[MedicalImage], split: str = "data") -> dict[str, int]:
        """Images per class (binary, multi-class) or positives per finding (multi-label)."""
        encoded = self.targets(samples, split)
        if self.kind == "multilabel":
            return {name: int(n) for name, n in zip(self.classes, encoded.sum(axis=0))}
        ids = encoded.reshape(len(samples), -1)[:, 0]
        return {name: int((ids == i).sum()) for i, name in enumerate(self.classes)}

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form, saved with the run."""
        return {"kind": self.kind, "classes": list(self.classes)}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> "LabelSpace":
        """The space :meth:`to_dict` wrote."""
        return cls(str(state["kind"]), tuple(str(c) for c in state["classes"]))


def infer_label_space(samples: Sequence[MedicalImage], problem: str = "auto",
                      positive_class: Optional[str] = None) -> LabelSpace:
    """The label space of the training ``samples`` (see the module docstring).

    ``problem`` (``auto``, ``binary``, ``multiclass`` or ``multilabel``) must agree with the labels;
    ``positive_class`` picks the positive class of a binary task. A class or finding without any
    training example is kept (the source named it) but warned about: nothing can be learnt for it.
    """
    if not samples:
        raise DataError("no training samples: cannot tell the classes")
    width, classes = _shape_of(samples)
    if width > 1:
        if problem not in ("auto", "multilabel"):
            raise ConfigError(f"data.problem is {problem!r} but the labels are 0/1 per finding ({width} findings: "
                              f"{', '.join(classes)}): a multi-label task; set data.problem to auto or multilabel")
        space = LabelSpace("multilabel", classes)
    else:
        space = _single_label_space(classes, problem, positive_class)
    _warn_empty(space, space.counts(samples, "train"))
    return space


def _shape_of(samples: Sequence[MedicalImage]) -> tuple[int, tuple[str, ...]]:
    """The label width of every sample (they must agree) and the class names of the first."""
    first = samples[0]
    for sample in samples:
        if not sample.labels:
            raise DataError(f"{sample.where}: the training image has no label")
        if len(sample.labels) != len(first.labels):
            raise DataError(f"{sample.where}: {len(sample.labels)} label value(s), but {first.where} has "
                            f"{len(first.labels)}; every image needs the same labels")
    return len(first.labels), tuple(_merged_names(s.classes for s in samples))


def _merged_names(groups: Iterable[tuple[str, ...]]) -> list[str]:
    """Names in order of first appearance over the (usually one) sources of a split."""
    names: list[str] = []
    for group in dict.fromkeys(groups):
        names += [name for name in group if name not in names]
    return names


def _single_label_space(classes: tuple[str, ...], problem: str, positive_class: Optional[str]) -> LabelSpace:
    if len(classes) < 2:
        raise DataError(f"the training labels name a single class ({', '.join(classes) or 'none'}): nothing to "
                        f"tell apart; a classifier needs at least two classes")
    if problem == "multilabel":
        raise ConfigError(f"data.problem is 'multilabel' but each image has one class ({', '.join(classes)}); "
                          f"multi-label data has one 0/1 value per finding; set data.problem to auto")
    if problem == "binary" and len(classes) > 2:
        raise ConfigError(f"data.problem is 'binary' but the labels name {len(classes)} classes "
                          f"({', '.join(classes)}); set data.problem to auto or multiclass")
    if len(classes) > 2 or problem == "multiclass":
        return LabelSpace("multiclass", classes)
    return LabelSpace("binary", _binary_order(classes, positive_class))


def _binary_order(classes: tuple[str, ...], positive_class: Optional[str]) -> tuple[str, str]:
    """(negative, positive)."""
    if positive_class is not None:
        if positive_class not in classes:
            raise ConfigError(f"data.positive_class {positive_class!r} is not one of the classes "
                              f"{', '.join(classes)}")
        positive = positive_class
    else:
        negative_sounding = [c for c in classes if c.strip().lower() in NEGATIVE_NAMES]
        positive = classes[1] if len(negative_sounding) != 1 else next(c for c in classes if c not in negative_sounding)
    negative = next(c for c in classes if c != positive)
    return negative, positive


def _warn_empty(space: LabelSpace, counts: dict[str, int]) -> None:
    empty = [name for name, n in counts.items() if n == 0]
    if empty:
        what = "finding(s)" if space.kind == "multilabel" else "class(es)"
        warnings.warn(DataWarning(f"the training split has no example of the {what} {', '.join(empty)}: the model "
                                  f"cannot learn them, and their AUROC will be undefined"), stacklevel=3)
