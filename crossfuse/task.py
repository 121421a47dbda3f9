"""The task contract: what a domain plugin implements so the shared trainer can run it.

The trainer calls, in order: :meth:`Task.load_data`, :meth:`Task.build_model`, then for each
batch :meth:`Task.collate` and :meth:`Task.training_step`; to evaluate it collects
:meth:`Task.predict_step` outputs over a *whole split* and passes them to
:meth:`Task.compute_metrics` (so pair-based, ranking and detection metrics work). The trainer
knows nothing else about a domain.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Sequence


@dataclass
class NoOptions:
    """An empty config section, for tasks without ``data`` or ``head`` options."""


@dataclass
class DataBundle:
    """The splits a task trains and evaluates on. ``test`` may be ``None``."""

    train: Sequence[Any]
    validation: Sequence[Any]
    test: Sequence[Any] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def splits(self) -> dict[str, Sequence[Any]]:
        """The non-empty evaluation splits by name."""
        return {name: split for name, split in (("validation", self.validation), ("test", self.test)) if split}


class Task:
    """Base class of every task. Subclasses set the class attributes and implement the methods.

    ``config`` is the resolved :class:`crossfuse.config.RunConfig`; ``config.data`` and
    ``config.head`` are instances of the subclass's ``DataConfig`` and ``HeadConfig``.
    """

    name: ClassVar[str] = ""
    modality: ClassVar[str] = ""  # "text", "image" or "audio"
    default_backbone: ClassVar[str] = ""
    main_metric: ClassVar[str] = "accuracy"  # early stopping and "best" checkpoint follow it
    greater_is_better: ClassVar[bool] = True
    DataConfig: ClassVar[type] = NoOptions
    HeadConfig: ClassVar[type] = NoOptions
    PredictOptions: ClassVar[type] = NoOptions  # options of `crossfuse predict` (--score-threshold ...)

    def __init__(self, config: Any):
        self.config = config
        self.run_dir: Path | None = None  # the saved run, when the task serves one (predict, eval)

    # -- data ----------------------------------------------------------------------------------
    def load_data(self) -> DataBundle:
        """Read (or generate) the splits named by ``config.data``."""
        raise NotImplementedError

    def load_eval_data(self, path: str) -> Sequence[Any]:
        """Read one dataset file or folder for ``crossfuse eval --data PATH``."""
        raise NotImplementedError

    def collate(self, samples: list[Any]) -> dict[str, Any]:
        """Turn samples into a batch (tensors the model takes plus targets).

        Runs in DataLoader workers: keep what it needs (a tokenizer, a transform) on the task,
        set in :meth:`build_model`, rather than reaching into the model.
        """
        raise NotImplementedError

    # -- model ---------------------------------------------------------------------------------
    def build_model(self, backbone: Any) -> Any:
        """Put the task's head on ``backbone`` and return the module to train."""
        raise NotImplementedError

    def training_step(self, model: Any, batch: dict[str, Any]) -> Any:
        """Return the scalar loss of one batch."""
        raise NotImplementedError

    def predict_step(self, model: Any, batch: dict[str, Any]) -> dict[str, Any]:
        """Return per-sample outputs (tensors with the batch as first dimension, or lists)."""
        raise NotImplementedError

    def compute_metrics(self, outputs: dict[str, Any], samples: Sequence[Any]) -> dict[str, Any]:
        """Metrics of a whole split from the collected ``predict_step`` outputs.

        Must contain :attr:`main_metric`. Scalars are logged; anything else goes to the report.
        """
        raise NotImplementedError

    # -- use -------------------------------------------------------------------------------
    def predict(self, model: Any, inputs: list[Any], options: Any) -> list[dict[str, Any]]:
        """Predictions for raw inputs (texts, image paths, folders ...): JSON-friendly dicts.

        ``options`` is a :attr:`PredictOptions` instance. Each result names what it is about
        under ``"input"`` (a folder expands to one result per file; a pair to one result).
        """
        raise NotImplementedError

    def describe_prediction(self, prediction: dict[str, Any]) -> str:
        """One line of terminal output for a prediction (``--json`` prints the dict instead)."""
        extras = {k: v for k, v in prediction.items() if k not in ("label", "input")}
        return f"{prediction.get('label', '')}\t{json.dumps(extras, ensure_ascii=False)}\t{prediction.get('input', '')}"

    def baseline(self, data: DataBundle) -> dict[str, Any] | None:
        """Optional: metrics of a simple non-deep baseline on the same splits."""
        return None

    def draw_report(self, report: dict[str, Any], run_dir: Path) -> list[str]:
        """Optional: write the task's pictures into ``run_dir``; return their file names."""
        return []


def expand_inputs(inputs: Sequence[str], extensions: Sequence[str], recursive: bool = False) -> list[Path]:
    """The files ``predict`` was given: files named directly, plus those with ``extensions`` in the
    folders named (sorted; ``recursive`` descends into subfolders). A missing path or a folder
    without any such file is a :class:`~crossfuse.errors.DataError`.
    """
    from .errors import DataError

    wanted = {e.lower() for e in extensions}
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in (path.rglob("*") if recursive else path.iterdir())
                           if p.is_file() and p.suffix.lower() in wanted)
            if not found:
                raise DataError(f"{path}: no {', '.join(sorted(wanted))} files in this folder")
            paths += found
        elif path.is_file():
            paths.append(path)
        else:
            raise DataError(f"{item}: no such file or folder")
    return paths
