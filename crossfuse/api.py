"""The Python API: run a task, load a trained run, evaluate it, list what is registered.

>>> import crossfuse
>>> result = crossfuse.run("finance-sentiment", epochs=1)             # doctest: +SKIP
>>> crossfuse.load(result.run_dir).predict(["Profit rose 20%"])       # doctest: +SKIP
[{'input': 'Profit rose 20%', 'label': 'positive', 'probabilities': {...}}]
"""

from __future__ import annotations

import importlib.resources
import inspect
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .config import RunConfig, build, merge, parse_overrides, read_yaml, set_dotted
from .errors import ConfigError, CrossfuseError, RunInterrupted
from .html_report import write_html_report
from .plugins import get_plugin_manager
from .runs import RunDir, default_output

RUN_SECTIONS = ("task", "seed", "output", "backbone", "backbones", "data", "head", "train", "eval", "distill", "serve")
# Keyword options of run() / flags of `crossfuse run`, and the config key each sets.
SHORTCUTS = {"backbone": "backbone.name", "init_from": "backbone.init_from", "epochs": "train.epochs",
             "device": "train.device", "output": "output", "seed": "seed", "data": "data.train",
             "distill_from": "distill.teacher"}


# -- configuration ---------------------------------------------------------------------------


def task_class(name: str) -> type:
    """The :class:`~crossfuse.task.Task` subclass registered as ``name`` (checked against its
    registration: same name and modality, and against the contract)."""
    from .plugins import check_task_registration
    from .task import check_task_class

    entry = get_plugin_manager().tasks.get(name)
    cls = entry.load()
    check_task_registration(entry, cls)
    check_task_class(cls)
    return cls


def default_config(name: str) -> dict[str, Any]:
    """The task's default YAML (``config="package:file.yaml"`` or a path at registration), as a dict."""
    entry = get_plugin_manager().tasks.get(name)
    location = entry.meta.get("config")
    if not location:
        return {}
    if ":" in location and not Path(location).exists():
        package, _, filename = location.partition(":")
        try:
            resource = importlib.resources.files(package) / filename
        except ModuleNotFoundError:
            raise ConfigError(f"task {name!r} (plugin {entry.owner!r}): its default config {location!r} names a "
                              f"package that is not installed") from None
        if not resource.is_file():
            raise ConfigError(f"task {name!r} (plugin {entry.owner!r}): its default config {location!r} is not in "
                              f"the installed package; ship the YAML as package data "
                              f"([tool.setuptools.package-data] in the plugin's pyproject.toml)")
        with importlib.resources.as_file(resource) as path:
            return read_yaml(path)[0]
    return read_yaml(location)[0]


def typed_config(raw: dict[str, Any], cls: type, *, source: str = "config",
                 lines: dict[str, int] | None = None) -> RunConfig:
    """Check ``raw`` against the core sections and the task's ``DataConfig``/``HeadConfig``."""
    lines = lines or {}
    for key in raw:
        if key not in RUN_SECTIONS:
            line = f", line {lines[key]}" if key in lines else ""
            raise ConfigError(f"{source}{line}: unknown key {key!r}. Valid top-level keys: {', '.join(RUN_SECTIONS)}")
    core = {k: v for k, v in raw.items() if k not in ("data", "head")}
    config = build(RunConfig, {"task": "", **core}, source=source, lines=lines)
    config.data = build(cls.DataConfig, raw.get("data"), prefix="data.", source=source, lines=lines)
    config.head = build(cls.HeadConfig, raw.get("head"), prefix="head.", source=source, lines=lines)
    return config


def resolve_config(task: str, config: str | Path | None = None, overrides: Sequence[str] = (),
                   **options: Any) -> RunConfig:
    """Defaults of ``task`` <- YAML file ``config`` <- ``--set`` overrides <- keyword options.

    ``options`` are the CLI shortcuts: ``backbone``, ``init_from``, ``epochs``, ``device``,
    ``output``, ``seed``, ``data`` (a dataset path: ``data.train``), ``distill_from`` (a teacher run:
    ``distill.teacher``). Each layer is checked on its own
    so an error points at the file, line or flag at fault; then the whole is checked for sense.
    """
    cls = task_class(task)
    layers: list[tuple[dict[str, Any], str, dict[str, int]]] = [(default_config(task), f"defaults of {task}", {})]
    if config is not None:
        data, lines = read_yaml(config)
        if data.get("task", task) != task:
            raise ConfigError(f"{config}: this config is for task {data['task']!r}, not {task!r}")
        layers.append((data, str(config), lines))
    layers.append((parse_overrides(list(overrides)), "--set", {}))
    layers.append((_shortcut_layer(cls, options), "options", {}))
    merged: dict[str, Any] = {"task": task}
    for data, source, lines in layers:
        typed_config(data, cls, source=source, lines=lines)  # raises with the right location
        merged = merge(merged, data)
    resolved = typed_config(merged, cls)
    resolved.task = task
    _fill_backbones(cls, resolved, merged)
    check_config(cls, resolved)
    return resolved


def _shortcut_layer(cls: type, options: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(SHORTCUTS))
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(unknown)}; expected {', '.join(SHORTCUTS)}")
    layer: dict[str, Any] = {}
    for key, value in options.items():
        if value is None:
            continue
        if cls.inputs and key in ("backbone", "init_from"):
            names = ", ".join(cls.inputs)
            raise ConfigError(f"task {cls.name!r} has several backbones ({names}): instead of --{key.replace('_', '-')}"
                              f" use --set backbones.{next(iter(cls.inputs))}.{SHORTCUTS[key].split('.')[1]}=...")
        set_dotted(layer, SHORTCUTS[key], str(value) if key in ("data", "distill_from") else value)
    return layer


def _fill_backbones(cls: type, config: RunConfig, merged: dict[str, Any]) -> None:
    """Default backbone names, and the right section (backbone or backbones) for the task."""
    if not cls.inputs:
        if config.backbones:
            raise ConfigError(f"backbones: task {cls.name!r} has one backbone; configure it under backbone: "
                              f"(e.g. --set backbone.name=...)")
        config.backbone.name = config.backbone.name or cls.default_backbone
        return
    if "backbone" in merged:
        raise ConfigError(f"backbone: task {cls.name!r} has several backbones ({', '.join(cls.inputs)}); configure "
                          f"each under backbones.<input> (e.g. --set backbones.{next(iter(cls.inputs))}.name=...)")
    extra = sorted(set(config.backbones) - set(cls.inputs))
    if extra:
        raise ConfigError(f"backbones.{extra[0]}: task {cls.name!r} has no input {extra[0]!r}; its inputs: "
                          f"{', '.join(cls.inputs)}")
    from .config import BackboneConfig

    for name in cls.inputs:
        section = config.backbones.setdefault(name, BackboneConfig())
        section.name = section.name or cls.default_backbones.get(name, "")
        if not section.name:
            raise ConfigError(f"backbones.{name}.name: task {cls.name!r} names no default backbone for input "
                              f"{name!r}; set one")


def check_config(cls: type, config: RunConfig) -> None:
    """Values that are well-typed but make no sense together, found before anything runs."""
    from .datasets import check_format
    from .distill import check_distill_config
    from .metrics import check_metric_names

    train = config.train
    for key, value, low in (("epochs", train.epochs, 1), ("batch_size", train.batch_size, 1),
                            ("grad_accum", train.grad_accum, 1), ("log_every", train.log_every, 1),
                            ("eval_every", train.eval_every, 1)):
        if value < low:
            raise ConfigError(f"train.{key} must be at least {low}, got {value}")
    if train.lr <= 0 or (train.head_lr is not None and train.head_lr <= 0):
        raise ConfigError(f"train.lr and train.head_lr must be positive, got {train.lr} and {train.head_lr}")
    if train.layer_decay is not None and not 0 < train.layer_decay <= 1:
        raise ConfigError(f"train.layer_decay must be in (0, 1] (e.g. 0.8), got {train.layer_decay}")
    if train.prefetch_factor is not None and train.num_workers == 0:
        raise ConfigError(f"train.prefetch_factor={train.prefetch_factor} needs DataLoader workers: set "
                          f"train.num_workers (e.g. 2) or drop train.prefetch_factor")
    if not 0 <= train.warmup_ratio < 1:
        raise ConfigError(f"train.warmup_ratio must be in [0, 1), got {train.warmup_ratio}")
    data_format = getattr(config.data, "format", None)
    if data_format is not None:
        check_format(cls.name, data_format)
        if data_format == "demo" and getattr(config.data, "train", None):
            raise ConfigError(f"data.format=demo uses the built-in data, but data.train is {config.data.train!r}: "
                              f"set data.format to auto (or a registered format) to read it")
    check_metric_names(config.eval.metrics)
    check_distill_config(cls, config.distill)


# -- running ---------------------------------------------------------------------------------


@dataclass
class RunResult:
    """What :func:`run` returns: where the run lives and its final report."""

    run_dir: Path
    report: dict[str, Any]

    def __repr__(self) -> str:
        return f"RunResult(run_dir={str(self.run_dir)!r}, main metric={self.report.get('main_metric')})"


def run(task: str, *, config: str | Path | None = None, overrides: Sequence[str] = (), resume: bool = False,
        overwrite: bool = False, callbacks: Sequence[Any] = (), progress: bool | None = None,
        **options: Any) -> RunResult:
    """Train and evaluate ``task``; return the run directory and its report.

    Keyword ``options``: ``backbone``, ``init_from``, ``epochs``, ``device``, ``output``, ``seed``,
    ``data``, ``distill_from`` (as on the CLI). With ``resume=True`` the saved config of the run in ``output``
    (default: the latest run of ``task``) is used unchanged, and training continues exactly where
    it stopped. Nothing is written until the data, the backbones and the device have been checked.
    """
    started = time.time()
    if resume and overwrite:
        raise ConfigError("--resume continues the run in --output and --overwrite replaces it: choose one")
    if resume:
        run_dir, resolved = _resume_target(task, config, overrides, options)
    else:
        resolved = resolve_config(task, config, overrides, **options)
        run_dir = Path(resolved.output) if resolved.output else None
    if progress is not None:
        resolved.train.progress = progress
    return _execute(resolved, run_dir, resume=resume, overwrite=overwrite, callbacks=callbacks, started=started)


def _resume_target(task: str, config: Any, overrides: Sequence[str], options: dict[str, Any]) -> tuple[Path, RunConfig]:
    extra = [k for k, v in options.items() if v is not None and k != "output"]
    if config is not None or overrides or extra:
        raise ConfigError("--resume continues a run with its saved config; drop --config, --set and "
                          f"{', '.join('--' + k for k in extra) or 'other options'} (start a new run to change them)")
    if options.get("output"):
        run_dir = Path(options["output"])
    else:
        candidates = sorted(p for p in (Path("runs") / task).glob("*") if (p / "config.yaml").is_file())
        if not candidates:
            raise CrossfuseError(f"--resume: no run of {task!r} under runs/{task}; pass --output RUN_DIR")
        run_dir = candidates[-1]
    saved = RunDir.open(run_dir).read_config()
    if saved.get("task") != task:
        raise CrossfuseError(f"--resume: {run_dir} is a run of {saved.get('task')!r}, not {task!r}")
    return run_dir, typed_config(saved, task_class(task), source=str(run_dir / "config.yaml"))


def _execute(config: RunConfig, run_dir: Path | None, *, resume: bool, overwrite: bool, callbacks: Sequence[Any],
             started: float) -> RunResult:
    from .run_backbones import SINGLE, build_backbones, save_adapters, save_snapshots
    from .trainer import Trainer, seed_everything

    cls = task_class(config.task)
    tracking = _tracking(config)  # a missing tracking package or server fails here, before anything is written
    task = cls(config)
    data = task.load_data()  # bad data fails here, before anything is written
    seed_everything(config.seed)
    backbones, origins = build_backbones(cls, config)  # unknown or unreachable backbones fail here, too
    task.backbones = backbones
    model = task.build_model(backbones if cls.inputs else backbones[SINGLE])
    teacher = _teacher(task, config)
    trainer = Trainer(task, model, data, config.train, seed=config.seed, callbacks=callbacks,
                      teacher=teacher)  # device, sampler
    run_dir = trainer.agree(run_dir or default_output(config.task))  # every rank writes to rank 0's choice
    if trainer.dist.is_main:  # every check has passed: only now does the run directory appear
        trainer.run = RunDir.create(run_dir, resume=resume, overwrite=overwrite)
        config.output = str(run_dir)
        trainer.run.write_config(config.to_dict())
        save_snapshots(trainer.run, model, backbones)
        trainer.run.write_task_state(task.state_dict())
        tracking.attach(trainer.run, resume=resume)  # TensorBoard / MLflow receive what metrics.jsonl does
    else:
        trainer.run = RunDir(run_dir)
    try:
        state = trainer.fit(resume=resume)
    except KeyboardInterrupt as interrupt:  # the trainer saved a checkpoint: say how to continue
        tracking.close("KILLED")
        raise RunInterrupted(config.task, run_dir) from interrupt
    except BaseException:
        tracking.close("FAILED")
        raise
    report = _final_report(task, trainer, data, config, state, started)  # collective: every rank evaluates
    if teacher is not None and (trainer.dist.is_main or trainer.strategy == "fsdp"):
        _report_distillation(report, task, trainer, data, config, teacher)
    if trainer.dist.is_main:
        if origins:
            report["init_from"] = origins
        weights = {name: b.weights_report.summary() for name, b in backbones.items() if hasattr(b, "weights_report")}
        if weights:  # what backbone.weights loaded and what it left out
            report["backbone_weights"] = weights
        report["pictures"] = task.draw_report(report, trainer.run.path)
        save_adapters(trainer.run, backbones)  # a LoRA run's adapters, also in peft's own format
        trainer.run.write_report(report)
        write_html_report(trainer.run.path)
        tracking.finish(report, trainer.run)
        if not config.train.keep_resume_state:
            trainer.run.drop_resume_state()
    trainer.close()
    return RunResult(trainer.run.path, report if trainer.dist.is_main else {})


def _tracking(config: RunConfig) -> Any:
    """The run's TensorBoard / MLflow trackers (:mod:`crossfuse.tracking`), checked, not started; only
    the main rank tracks."""
    from .distributed import Distributed
    from .tracking import start_tracking

    return start_tracking(config, is_main=Distributed().is_main)


def _final_report(task: Any, trainer: Any, data: Any, config: RunConfig, state: Any, started: float) -> dict[str, Any]:
    from .metrics import split_metrics

    trainer.barrier()  # the main rank has written the best checkpoint
    best = trainer.run.best_weights()
    trainer.load_weights(best)
    splits = {}
    if data.validation:  # what is chosen on validation (thresholds, temperatures) is fixed before any report
        outputs = trainer.predict(data.validation)
        task.calibrate(outputs, data.validation)
        if trainer.dist.is_main:
            trainer.run.write_task_state(task.state_dict())
        splits["validation"] = split_metrics(task, outputs, data.validation)
    splits.update({name: trainer.evaluate(samples) for name, samples in data.splits().items() if name not in splits})
    # A sharded model runs only with every rank taking part; a whole one only on the main rank.
    if trainer.dist.is_main or trainer.strategy == "fsdp":
        for name, samples in data.splits().items():
            with trainer.autocast():
                splits[name].update(_model_metrics(task, trainer.model, name, samples))
    if not trainer.dist.is_main:
        return {}
    report = {
        "task": config.task, "backbone": _backbone_names(config), "seed": config.seed,
        "main_metric": task.main_metric, "best_epoch": state.best_epoch, "steps": state.step,
        "checkpoint": str(best.relative_to(trainer.run.path)),
        "sizes": {"train": len(data.train), **{name: len(s) for name, s in data.splits().items()}},
        "splits": splits,
    }
    if data.info:  # what the task says about its data (sources, counts per class ...)
        report["data"] = data.info
    baseline = task.baseline(data)
    if baseline:
        report["baseline"] = baseline
    report["wall_time_s"] = round(time.time() - started, 1)
    return report


def _teacher(task: Any, config: RunConfig) -> Any:
    """The distillation teacher (``distill.teacher``), checked against the student's data, or None."""
    if not config.distill.teacher:
        return None
    from .distill import Teacher

    teacher = Teacher(config.distill.teacher, config.distill)
    teacher.check_student(task)
    return teacher


def _report_distillation(report: dict[str, Any], task: Any, trainer: Any, data: Any, config: RunConfig,
                        teacher: Any) -> None:
    """Add teacher and student side by side (size, speed, main metric per split) to ``report``."""
    from .distill import side_by_side

    student = {"task": task, "model": trainer.model, "device": trainer.device, "amp_dtype": trainer.amp_dtype,
               "run_dir": trainer.run.path, "config": config}
    comparison = side_by_side(student, teacher, data.splits(), report.get("splits", {}), task.main_metric,
                              config.train.eval_batch_size or config.train.batch_size)
    if report:  # the main rank's
        report["distillation"] = comparison


def _model_metrics(task: Any, model: Any, split: str, samples: Any) -> dict[str, Any]:
    """The task's :meth:`~crossfuse.task.Task.model_metrics` of a split, the model in eval mode, no gradients."""
    import torch

    model.eval()
    with torch.no_grad():
        return task.model_metrics(model, split, samples)


def _backbone_names(config: RunConfig) -> Any:
    if config.backbones:
        return {name: section.name for name, section in config.backbones.items()}
    return config.backbone.name


# -- using a trained run ---------------------------------------------------------------------


class Predictor:
    """A trained run, ready to predict, explain and evaluate. Build it with :func:`load`."""

    def __init__(self, run_dir: str | Path, device: str = "cpu", batch_size: int | None = None):
        from safetensors.torch import load_file

        from .distributed import Distributed, autocast_dtype, load_model_state, select_device
        from .run_backbones import SINGLE, rebuild_backbones

        self.run = RunDir.open(run_dir)
        saved = self.run.read_config()
        cls = task_class(saved.get("task", ""))
        self.config = typed_config(saved, cls, source=str(self.run.path / "config.yaml"))
        self.task = cls(self.config)
        self.task.run_dir = self.run.path
        state = self.run.read_task_state()
        if state is not None:
            self.task.load_state_dict(state)
        backbones = rebuild_backbones(self.run, cls, self.config)
        self.task.backbones = backbones
        self.model = self.task.build_model(backbones if cls.inputs else backbones[SINGLE])
        best = self.run.best_weights()
        load_model_state(self.model, load_file(str(best)), "none", where=str(best), inference=True)
        self.device = select_device(device, Distributed(rank=0, world_size=1, local_rank=0))
        # The precision the run trained and calibrated with: thresholds chosen on validation then mean the same.
        self.amp_dtype = autocast_dtype(self.config.train.precision, self.device)
        self.batch_size = batch_size
        self.model.to(self.device).eval()

    def _autocast(self) -> Any:
        from .distributed import autocast

        return autocast(self.device, self.amp_dtype)

    def _options(self, options: dict[str, Any]) -> Any:
        options_class = type(self.task).PredictOptions
        if self.batch_size and "batch_size" in getattr(options_class, "__dataclass_fields__", {}):
            options.setdefault("batch_size", self.batch_size)
        return build(options_class, options, source="predict options")

    def predict(self, inputs: Sequence[Any], **options: Any) -> list[dict[str, Any]]:
        """The task's predictions for raw inputs (texts, files or folders ...).

        ``options`` are the task's ``PredictOptions`` (``score_threshold=0.5``, ``gallery="faces/"``).
        """
        import torch

        typed = self._options(options)
        self.model.eval()
        with torch.no_grad(), self._autocast():
            return self.task.predict(self.model, list(inputs), typed)

    def explain(self, inputs: Sequence[Any], output: str | Path | None = None, **options: Any) -> list[dict[str, Any]]:
        """Predictions with explanations (heat maps written into ``output``, default a new folder
        ``RUN_DIR/explanations/TIMESTAMP``; an existing folder is refused rather than written over)."""
        import torch

        typed = self._options(options)
        folder = Path(output) if output else self.run.path / "explanations" / time.strftime("%Y%m%d-%H%M%S")
        if folder.exists() and any(folder.iterdir()):
            raise CrossfuseError(f"{folder} already holds files; choose another output folder for the explanations")
        folder.mkdir(parents=True, exist_ok=True)
        self.model.eval()
        with torch.enable_grad(), self._autocast():
            return self.task.explain(self.model, list(inputs), typed, folder)

    def describe(self, prediction: dict[str, Any]) -> str:
        """The task's one-line summary of a prediction, for the terminal."""
        return self.task.describe_prediction(prediction)

    def evaluate(self, data: str | Path, batch_size: int | None = None, split: str | None = None) -> dict[str, Any]:
        """The task's metrics on the dataset at ``data`` (any format the task reads; a source holding
        several splits is evaluated on ``split``, default test)."""
        import torch

        from .metrics import split_metrics
        from .trainer import Preprocessed, collect_outputs

        samples = self._eval_samples(str(data), split)
        dataset = Preprocessed(samples, list(range(len(samples))), self.task, train=False)
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size or self.batch_size or 64,
                                             collate_fn=self.task.collate)
        outputs = collect_outputs(self.task, self.model, loader, self.device, self.amp_dtype)
        with self._autocast():
            model_metrics = _model_metrics(self.task, self.model, split or "test", samples)
        return {**split_metrics(self.task, outputs, samples), **model_metrics}

    def _eval_samples(self, path: str, split: str | None) -> Any:
        accepts_split = "split" in inspect.signature(self.task.load_eval_data).parameters
        if accepts_split:
            return self.task.load_eval_data(path, split)
        if split is not None:
            raise CrossfuseError(f"--split: task {self.task.name!r} reads evaluation data with load_eval_data(path); "
                                 f"its plugin must accept load_eval_data(path, split=None) for --split")
        return self.task.load_eval_data(path)


def run_task(run_dir: str | Path) -> str:
    """The name of the task that trained ``run_dir``."""
    return RunDir.open(run_dir).read_config().get("task", "")


def predict_options(run_dir: str | Path) -> type:
    """The ``PredictOptions`` dataclass of the task that trained ``run_dir`` (nothing is loaded)."""
    return task_class(run_task(run_dir)).PredictOptions


def load(run_dir: str | Path, device: str = "cpu", batch_size: int | None = None) -> Predictor:
    """Load a trained run for prediction and evaluation (``device``: cpu, cuda, mps or auto)."""
    return Predictor(run_dir, device=device, batch_size=batch_size)


def evaluate(run_dir: str | Path, data: str | Path, overrides: Sequence[str] = (), *, device: str = "cpu",
             batch_size: int | None = None, split: str | None = None) -> dict[str, Any]:
    """Metrics of the run in ``run_dir`` on the dataset ``data``.

    ``overrides`` (``"data.text_column=sentence"``) change how the file is read; ``split`` picks
    a split of a source that holds several (default: its test split).
    """
    predictor = load(run_dir, device=device)
    if overrides:
        changes = parse_overrides(list(overrides))
        merged = merge(predictor.config.to_dict(), changes)
        typed_config(changes, type(predictor.task), source="--set")
        predictor.task.config = typed_config(merged, type(predictor.task))
    return predictor.evaluate(data, batch_size=batch_size, split=split)



def export(run_dir: str | Path, format: str, *, quantize: str | None = None, output: str | Path | None = None,
           overwrite: bool = False, batch_size: int = 32, log: Any = None) -> Any:
    """Export the run in ``run_dir`` to ``format`` (``onnx`` or ``torchscript``; ``quantize="int8"`` for
    dynamic int8 weights) and check it against PyTorch on the run's test split; returns a
    :class:`crossfuse.export.ExportResult` (folder, model file, descriptor, parity figures).

    >>> crossfuse.api.export("runs/fin", "onnx").parity["results"]["fp32"]["max_abs_diff"]  # doctest: +SKIP
    1.6e-07
    """
    from .export import export_run

    return export_run(run_dir, format, quantize=quantize, output=output, overwrite=overwrite,
                      batch_size=batch_size, log=log or (lambda _: None))

# -- registries ------------------------------------------------------------------------------


def list_tasks() -> list[dict[str, Any]]:
    """Registered tasks with their plugin, modality and description."""
    return [get_plugin_manager().tasks.info(name) for name in get_plugin_manager().tasks.names()]


def list_backbones(modality: str | None = None) -> list[dict[str, Any]]:
    """Registered backbones, optionally only one modality."""
    registry = get_plugin_manager().backbones
    return [registry.info(n) for n in registry.names() if modality in (None, registry.get(n).meta.get("modality"))]


def list_datasets() -> list[dict[str, Any]]:
    """Dataset formats: ``auto`` and ``demo``, then every registered one with the tasks it feeds."""
    from .datasets import listing

    return listing()


def get_backbone(name: str, **options: Any) -> Any:
    """Build a backbone by registry name, ``hf:ORG/NAME``, ``timm:NAME`` or local path
    (options: ``pretrained``, ``weights``, ``image_size`` ...)."""
    from .backbones import build_backbone
    from .config import BackboneConfig

    return build_backbone(build(BackboneConfig, {"name": name, **options}, prefix="backbone."))


def demo_paths(task: str) -> dict[str, str]:
    """Where ``task``'s demo data lies on disk (written into the cache on first use), by split."""
    resolved = resolve_config(task)
    instance = task_class(task)(resolved)
    paths = instance.demo_paths()
    if not paths:
        raise CrossfuseError(f"task {task!r} keeps no demo files on disk (Task.demo_paths is empty)")
    return paths
