"""The task contract: what a domain plugin implements so the shared trainer can run it.

The core calls, in order:

1. :meth:`Task.load_data` (the default reads ``data.train`` / ``validation`` / ``test`` through the
   dataset registry, or :meth:`Task.demo_data`); then :meth:`Task.state_dict` is saved with the run;
2. :meth:`Task.build_model` with the backbone (or, for a task with several :attr:`Task.inputs`,
   a dict of backbones by input name);
3. per training sample :meth:`Task.preprocess` (``train=True``: augmentation lives here), per batch
   :meth:`Task.collate` and :meth:`Task.training_step`;
4. to evaluate, per sample :meth:`Task.preprocess` (``train=False``), :meth:`Task.collate`,
   :meth:`Task.predict_step`; the outputs of a *whole split* go to :meth:`Task.compute_metrics`
   (so pair-based, ranking and detection metrics work);
5. after training, :meth:`Task.calibrate` on the best model's validation outputs; the state is
   saved again, then every split is evaluated for the report.

Serving a saved run, the core restores :meth:`Task.load_state_dict` before :meth:`Task.build_model`
and calls :meth:`Task.predict` (or :meth:`Task.explain`) with the model on its device, in eval mode.
The trainer knows nothing else about a domain.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterable, Iterator, Literal, Optional, Sequence

from .datasets import Splits
from .errors import ConfigError, CrossfuseError, DataError


@dataclass
class NoOptions:
    """An empty config section, for tasks without ``data`` or ``head`` options."""


@dataclass
class DataSource:
    """The ``data`` keys the core understands. A task's ``DataConfig`` inherits them to get the
    default :meth:`Task.load_data`, ``crossfuse run --data PATH`` and ``crossfuse eval --data PATH``.
    """

    format: str = "auto"  # a registered format, auto (by layout / file extension) or demo
    train: Optional[str] = None  # unset: the task's demo data
    validation: Optional[str] = None  # unset: carved out of train (validation_fraction)
    test: Optional[str] = None
    validation_fraction: float = 0.1
    test_fraction: float = 0.0  # > 0 carves a test split out of train when data.test is unset


@dataclass
class ClassifierHead:
    """The ``head`` keys of a classifier on a backbone's pooled features (:func:`crossfuse.heads.build_head`)
    trained with cross-entropy. A task's ``HeadConfig`` inherits them; it changes a default by
    declaring the field again (``hidden: int = 128``).
    """

    type: Literal["linear", "mlp"] = "linear"
    hidden: int = 256  # mlp only: width of the hidden layer
    dropout: float = 0.1
    label_smoothing: float = 0.0


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
    modality: ClassVar[str] = ""  # "text", "image" or "audio"; a fusion task: e.g. "image+text"
    default_backbone: ClassVar[str] = ""
    # Several backbones (fusion): input name -> modality, and input name -> default backbone.
    inputs: ClassVar[dict[str, str]] = {}
    default_backbones: ClassVar[dict[str, str]] = {}
    main_metric: ClassVar[str] = "accuracy"  # early stopping and "best" checkpoint follow it
    greater_is_better: ClassVar[bool] = True
    DataConfig: ClassVar[type] = NoOptions
    HeadConfig: ClassVar[type] = NoOptions
    PredictOptions: ClassVar[type] = NoOptions  # options of `crossfuse predict` (--score-threshold ...)
    input_extensions: ClassVar[tuple[str, ...]] = ()  # files `predict` takes from a folder (".png", ...)

    def __init__(self, config: Any):
        self.config = config
        self.run_dir: Path | None = None  # the saved run, when the task serves one (predict, eval)
        self.backbones: dict[str, Any] = {}  # set by the core before build_model: input name -> backbone

    # -- data ----------------------------------------------------------------------------------
    def load_data(self) -> DataBundle:
        """The splits named by ``config.data``: the demo data when ``data.train`` is unset, else the
        files read through the dataset registry. A source holding its own splits gives them all;
        a missing validation (or, with ``data.test_fraction``, test) split is carved out of train.
        """
        data = self.config.data
        if getattr(data, "train", None) is None:
            return self.prepare(self._as_bundle(self.demo_data(), "the demo data"))
        read = self.read(data.train, key="data.train")
        train, validation, test = (read.train, read.validation, read.test) if isinstance(read, Splits) else \
            (read, None, None)
        if getattr(data, "validation", None):
            validation = self.read_split(data.validation, "validation")
        if getattr(data, "test", None):
            test = self.read_split(data.test, "test")
        if not train:
            raise DataError(f"data.train {data.train}: no samples found (an empty dataset)")
        carved = 0.0  # fractions are of the whole training source
        if test is None and getattr(data, "test_fraction", 0):
            train, test = self.split_off(list(train), data.test_fraction, "test")
            carved = data.test_fraction
        if validation is None:
            fraction = getattr(data, "validation_fraction", 0.1)
            train, validation = self.split_off(list(train), fraction / (1 - carved) if carved < 1 else 0, "validation")
        return self.prepare(DataBundle(train, validation, test))

    def demo_data(self) -> DataBundle | Splits:
        """The built-in data used when ``data.train`` is unset (generated or shipped, deterministic)."""
        raise ConfigError(f"task {self.name!r} has no demo data: set data.train (or pass --data PATH)")

    def demo_paths(self) -> dict[str, str]:
        """Where the demo data lies on disk, by split (``crossfuse demo TASK`` prints it). Optional."""
        return {}

    def read(self, path: str | Path, format: str | None = None, key: str = "data",
             options: Any = None) -> Sequence[Any] | Splits:
        """Read ``path`` with the registered reader for ``format`` (default ``data.format``; ``auto``
        detects it by layout or extension) and return what the reader returned. ``key`` names the
        config key that gave the path, for error messages; ``options`` (default: the ``data``
        section) is what the reader receives."""
        from .datasets import read

        chosen = format or getattr(self.config.data, "format", "auto")
        return read(self.name, path, "auto" if chosen == "demo" else chosen,
                    self.config.data if options is None else options, key)

    def read_split(self, path: str | Path, split: str) -> Sequence[Any]:
        """Read ``path`` as one split: a source holding several splits gives the one named ``split``."""
        read = self.read(path, key=f"data.{split}")
        if isinstance(read, Splits):
            part = read.get(split)
            if part is None:
                raise DataError(f"{path}: holds no {split} split")
            return part
        return read

    def split_off(self, samples: list[Any], fraction: float, name: str) -> tuple[list[Any], list[Any]]:
        """Move a seeded random ``fraction`` of ``samples`` into split ``name``; returns (rest, carved).

        Override to stratify by label or to keep groups (a patient, a speaker) on one side.
        """
        import random

        count = carve_count(len(samples), fraction, name)
        order = list(range(len(samples)))
        random.Random(self.config.seed).shuffle(order)
        held = set(order[:count])
        return ([s for i, s in enumerate(samples) if i not in held], [s for i, s in enumerate(samples) if i in held])

    def prepare(self, data: DataBundle) -> DataBundle:
        """Check and finish the splits once read (derive labels, class weights ...). Default: as is."""
        return data

    def load_eval_data(self, path: str, split: str | None = None) -> Sequence[Any]:
        """One dataset for ``crossfuse eval --data PATH``: a source holding several splits gives its
        ``split`` (default ``test``); any other is read whole."""
        read = self.read(path, key="--data")
        if isinstance(read, Splits):
            part = read.get(split or "test")
            if not part:
                raise DataError(f"{path}: holds no {split or 'test'} split; choose one with --split")
            return self.prepare_eval(part)
        if split not in (None, "test"):
            raise ConfigError(f"--split {split}: {path} holds a single split")
        if not read:
            raise DataError(f"{path}: no samples found")
        return self.prepare_eval(read)

    def prepare_eval(self, samples: Sequence[Any]) -> Sequence[Any]:
        """Check and finish an evaluation split read by :meth:`load_eval_data`. Default: as is."""
        return samples

    def _as_bundle(self, data: DataBundle | Splits, what: str) -> DataBundle:
        if isinstance(data, DataBundle):
            return data
        if not data.train or not data.validation:
            raise DataError(f"{what} must hold train and validation splits")
        return DataBundle(data.train, data.validation, data.test)

    def preprocess(self, sample: Any, train: bool) -> Any:
        """One sample as the model takes it, in DataLoader workers. ``train`` is True for training
        samples: random augmentation belongs here (and only then). Default: the sample unchanged."""
        return sample

    def collate(self, items: list[Any]) -> dict[str, Any]:
        """Turn preprocessed samples into a batch (tensors the model takes plus targets).

        Runs in DataLoader workers: keep what it needs (a tokenizer, a transform) on the task,
        set in :meth:`build_model`, rather than reaching into the model.
        """
        raise NotImplementedError

    def sample_labels(self, samples: Sequence[Any]) -> list[Any] | None:
        """Each training sample's class (any hashable; a tuple for multi-label), for
        ``train.sampler: balanced``. Default None: the task does not offer balanced sampling."""
        return None

    def sample_weights(self, samples: Sequence[Any]) -> list[float] | None:
        """Per-sample drawing weights for ``train.sampler: weighted``. Default None: not offered."""
        return None

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """What the task derived from its data (labels, class weights, a calibrated threshold ...),
        saved with the run as ``task_state.json``: JSON values only (numbers, strings, lists, dicts)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` when a saved run is served (before :meth:`build_model`)."""

    def calibrate(self, outputs: dict[str, Any], samples: Sequence[Any]) -> None:
        """After training: fit what is chosen on validation (a threshold, a temperature) from the
        best model's ``predict_step`` outputs over the validation split. Default: nothing."""

    # -- model ---------------------------------------------------------------------------------
    def build_model(self, backbone: Any) -> Any:
        """Put the task's head on ``backbone`` and return the module to train.

        ``backbone`` is one module, or for a task with several :attr:`inputs` a dict of modules by
        input name. Keep the preprocessing you need (``backbone.tokenize`` ...) on ``self``.
        """
        raise NotImplementedError

    def fresh_parameters(self, model: Any) -> Iterable[Any]:
        """Parameters that start from scratch (they get ``train.head_lr``). Default: every parameter
        of ``model`` that is not a parameter of a backbone the core built."""
        inherited = {id(p) for backbone in self.backbones.values() for p in backbone.parameters()}
        return [p for p in model.parameters() if id(p) not in inherited]

    def training_step(self, model: Any, batch: dict[str, Any]) -> Any:
        """Return the scalar loss of one batch."""
        raise NotImplementedError

    def distillation_step(self, model: Any, batch: dict[str, Any], teacher: dict[str, Any], distill: Any) -> Any:
        """The scalar loss of one batch when training against a teacher run (``--distill-from``).

        ``teacher`` is the teacher's :meth:`predict_step` outputs for the same samples, prepared by the
        teacher's own preprocessing; ``distill`` holds ``alpha`` (the teacher's share of the loss) and
        ``temperature``. Blend the task's own loss with a soft-target loss from
        :mod:`crossfuse.distill` (``softmax_distillation`` for a single-label classifier, or
        ``soft_cross_entropy``, ``soft_binary_cross_entropy``, ``similarity_matching`` and ``blend``).
        The teacher prepares each training sample with ``preprocess(sample, train=False)``: a task
        that distils accepts its training samples there.
        Default: the task does not support distillation.
        """
        raise CrossfuseError(f"task {self.name!r} does not support distillation (Task.distillation_step)")

    def check_teacher(self, teacher: "Task") -> None:
        """Refuse a distillation teacher (a loaded run of this task, its state restored) whose outputs
        do not mean what this run's do: other labels, other findings. Called once the data is read.
        Default: nothing to check."""

    def predict_step(self, model: Any, batch: dict[str, Any]) -> dict[str, Any]:
        """Per-sample outputs: tensors with the batch as first dimension, or lists with one item
        per sample (nested dicts and lists of tensors are fine: they are moved to the CPU)."""
        raise NotImplementedError

    def compute_metrics(self, outputs: dict[str, Any], samples: Sequence[Any]) -> dict[str, Any]:
        """Metrics of a whole split from its collected ``predict_step`` outputs.

        ``outputs[key]`` is one tensor concatenated over the split (first dimension = samples) for
        tensor outputs, a list with one item per sample otherwise; ``samples`` is the split, in the
        same order. Must contain :attr:`main_metric` (NaN or None when undefined on this split).
        Scalars are logged per epoch; anything else goes to the report.
        """
        raise NotImplementedError

    def model_metrics(self, model: Any, split: str, samples: Sequence[Any]) -> dict[str, Any]:
        """Final-report metrics that must run the model on more than the split's samples (a streaming
        detector over hours of noise, say). Called once per split after training and by ``crossfuse
        eval``, with ``model`` in eval mode on its device and gradients off; merged into that split's
        metrics. Default: none."""
        return {}

    def export_spec(self, model: Any, batch: dict[str, Any]) -> Any:
        """``crossfuse export``: the :class:`crossfuse.export.ExportSpec` of the part of ``model`` (eval
        mode, CPU) that goes into the ONNX / TorchScript file, with ``batch`` (a collated evaluation
        batch) as example. Default: the whole model, called with the tensors ``predict_step`` gives it
        (:func:`crossfuse.export.spec_from_call`). Override to export a part (leave out a training-only
        head, a front end that does not trace) and say in ``left_out`` what the caller does instead."""
        from .export import spec_from_call

        return spec_from_call(self, model, batch)

    # -- use -----------------------------------------------------------------------------------
    def load_input(self, item: str) -> Any:
        """One ``predict`` input (a text, or a file from :attr:`input_extensions`) as a sample for
        :meth:`preprocess`. Default: the item itself."""
        return item

    def format_prediction(self, item: str, outputs: dict[str, Any]) -> dict[str, Any]:
        """One input's ``predict_step`` outputs (its row of each output) as a JSON-friendly dict."""
        raise NotImplementedError(f"task {self.name!r} implements neither predict nor format_prediction")

    def predict(self, model: Any, inputs: list[Any], options: Any) -> list[dict[str, Any]]:
        """Predictions for raw inputs (texts, files, folders): JSON-friendly dicts naming their ``input``.

        The core has put ``model`` on its device in eval mode and turned gradients off. The default
        expands folders (:func:`expand_inputs` with :attr:`input_extensions`), then per batch of
        ``options.batch_size`` (default 32) runs :meth:`load_input`, :meth:`preprocess`,
        :meth:`collate` and :meth:`predict_step`, and turns each row into :meth:`format_prediction`.
        """
        items = [str(p) for p in expand_inputs(inputs, self.input_extensions)] if self.input_extensions else inputs
        results = []
        for chunk in batched(items, getattr(options, "batch_size", 32)):
            outputs = self.run_batch(model, [self.load_input(item) for item in chunk])
            results += [self.format_prediction(item, row) for item, row in zip(chunk, rows(outputs, len(chunk)))]
        return results

    def inputs_per_prediction(self, options: Any) -> int:
        """How many of :meth:`predict`'s inputs make one prediction with these (typed) ``options``:
        2 for images matched in pairs, say. ``crossfuse serve`` runs concurrent requests through one
        ``predict`` call and splits the predictions back by it; a request whose input count is not a
        multiple of it is run alone. Default 1: one prediction per input file or text."""
        return 1

    def run_batch(self, model: Any, samples: list[Any]) -> dict[str, Any]:
        """:meth:`predict_step` outputs for ``samples`` (preprocessed for evaluation), on the CPU."""
        from .outputs import move_to, to_cpu

        device = _device_of(model)
        batch = self.collate([self.preprocess(sample, train=False) for sample in samples])
        return to_cpu(self.predict_step(model, move_to(batch, device)))

    def explain(self, model: Any, inputs: list[Any], options: Any, output_dir: Path) -> list[dict[str, Any]]:
        """``crossfuse predict --explain``: predictions with what drove them (a Grad-CAM heat map over
        an image written into ``output_dir``, token attributions for a text ...). Gradients are
        enabled and ``model`` is in eval mode. See :mod:`crossfuse.explain` for the helpers."""
        raise CrossfuseError(f"task {self.name!r} has no explanations (its plugin does not implement Task.explain)")

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


def carve_count(total: int, fraction: float, name: str) -> int:
    """How many of ``total`` training samples ``data.{name}_fraction`` moves into split ``name``.

    Refuses a fraction outside (0, 1), or one that leaves either side empty, naming the key; for
    :meth:`Task.split_off` overrides that stratify or keep groups together.
    """
    if not 0 < fraction < 1:
        raise ConfigError(f"data.{name}_fraction must be in (0, 1) to carve a {name} split out of the "
                          f"training data, got {fraction}; or give data.{name}")
    count = round(fraction * total)
    if count < 1 or count >= total:
        raise DataError(f"{total} training samples leave no {name} split at data.{name}_fraction={fraction}; "
                        f"give data.{name} or more data")
    return count


def check_task_class(cls: type) -> None:
    """Refuse a task class whose methods clash with the contract, saying what to change.

    Catches plugins written before a contract method existed under a name they already used
    (a ``preprocess(path, augment)`` helper, say), and tasks without their core methods.
    """
    import inspect

    problems = []
    signature = inspect.signature(cls.preprocess)
    if "train" not in signature.parameters:
        problems.append(f"its preprocess{signature} lacks the contract's `train` argument: Task.preprocess(sample, "
                        f"train) is called for every sample; rename the task's own helper")
    for method in ("collate", "training_step", "predict_step", "compute_metrics", "build_model"):
        if getattr(cls, method) is getattr(Task, method):
            problems.append(f"it does not implement {method}")
    if problems:
        raise CrossfuseError(f"task {cls.name!r} ({cls.__module__}.{cls.__qualname__}) does not fit the task contract: "
                             + "; ".join(problems) + " (see docs/plugins.md, 'The task contract')")


def expand_inputs(inputs: Sequence[str], extensions: Sequence[str], recursive: bool = True) -> list[Path]:
    """The files ``predict`` was given: files named directly, plus those with ``extensions`` in the
    folders named (sorted; subfolders too unless ``recursive=False``). Extensions may be given with
    or without the dot. A missing path or a folder without any such file is a :class:`DataError`.
    """
    wanted = {"." + e.lower().lstrip(".") for e in extensions}
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in (path.rglob("*") if recursive else path.iterdir())
                           if p.is_file() and p.suffix.lower() in wanted and not p.name.startswith("."))
            if not found:
                where = "this folder or its subfolders" if recursive else "this folder"
                raise DataError(f"{path}: no {', '.join(sorted(wanted))} files in {where}")
            paths += found
        elif path.is_file():
            paths.append(path)
        else:
            raise DataError(f"{item}: no such file or folder")
    return paths


def batched(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Consecutive chunks of ``items`` of at most ``size`` (the last may be shorter)."""
    if size < 1:
        raise ConfigError(f"batch size must be at least 1, got {size}")
    for start in range(0, len(items), size):
        yield items[start:start + size]


def rows(outputs: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """Split batched outputs (tensors on their first dimension, lists by item) into one dict per sample."""
    return [{key: value[i] for key, value in outputs.items()} for i in range(count)]


def _device_of(model: Any) -> Any:
    import torch

    parameter = next(iter(model.parameters()), None)
    return parameter.device if parameter is not None else torch.device("cpu")
