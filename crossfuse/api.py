"""The Python API: run a task, load a trained run, evaluate it, list what is registered.

>>> import crossfuse
>>> result = crossfuse.run("finance-sentiment", epochs=1)             # doctest: +SKIP
>>> crossfuse.load(result.run_dir).predict(["Profit rose 20%"])       # doctest: +SKIP
[{'label': 'positive', 'probabilities': {...}}]
"""

from __future__ import annotations

import importlib.resources
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .config import RunConfig, build, merge, parse_overrides, read_yaml, set_dotted
from .errors import ConfigError, CrossfuseError
from .plugins import get_plugin_manager
from .runs import RunDir, default_output

RUN_SECTIONS = ("task", "seed", "output", "backbone", "data", "head", "train")


# -- configuration ---------------------------------------------------------------------------


def task_class(name: str) -> type:
    """The :class:`~crossfuse.task.Task` subclass registered as ``name``."""
    return get_plugin_manager().tasks.get(name).load()


def default_config(name: str) -> dict[str, Any]:
    """The task's default YAML (``config="package:file.yaml"`` or a path at registration), as a dict."""
    entry = get_plugin_manager().tasks.get(name)
    location = entry.meta.get("config")
    if not location:
        return {}
    if ":" in location and not Path(location).exists():
        package, _, filename = location.partition(":")
        with importlib.resources.as_file(importlib.resources.files(package) / filename) as path:
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

    ``options`` are the CLI shortcuts: ``backbone``, ``epochs``, ``device``, ``output``, ``seed``.
    Each layer is checked on its own so an error points at the file, line or flag at fault.
    """
    cls = task_class(task)
    layers: list[tuple[dict[str, Any], str, dict[str, int]]] = [(default_config(task), f"defaults of {task}", {})]
    if config is not None:
        data, lines = read_yaml(config)
        if data.get("task", task) != task:
            raise ConfigError(f"{config}: this config is for task {data['task']!r}, not {task!r}")
        layers.append((data, str(config), lines))
    layers.append((parse_overrides(list(overrides)), "--set", {}))
    shortcuts: dict[str, Any] = {}
    for key, dotted in (("backbone", "backbone.name"), ("epochs", "train.epochs"), ("device", "train.device"),
                        ("output", "output"), ("seed", "seed")):
        if options.get(key) is not None:
            set_dotted(shortcuts, dotted, options[key])
    layers.append((shortcuts, "options", {}))
    merged: dict[str, Any] = {"task": task}
    for data, source, lines in layers:
        typed_config(data, cls, source=source, lines=lines)  # raises with the right location
        merged = merge(merged, data)
    resolved = typed_config(merged, cls)
    resolved.task = task
    resolved.backbone.name = resolved.backbone.name or cls.default_backbone
    return resolved


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

    Keyword ``options``: ``backbone``, ``epochs``, ``device``, ``output``, ``seed`` (as on the CLI).
    With ``resume=True`` the saved config of the run in ``output`` (default: the latest run of
    ``task``) is used unchanged, and training continues exactly where it stopped.
    """
    started = time.time()
    if resume:
        run_dir, resolved = _resume_target(task, config, overrides, options)
    else:
        resolved = resolve_config(task, config, overrides, **options)
        run_dir = Path(resolved.output) if resolved.output else default_output(task)
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


def _execute(config: RunConfig, run_dir: Path, *, resume: bool, overwrite: bool, callbacks: Sequence[Any],
             started: float) -> RunResult:
    from .backbones import build_backbone
    from .trainer import Distributed, Trainer, seed_everything

    task = task_class(config.task)(config)
    data = task.load_data()  # bad data fails here, before anything is written
    _check_modality(task, config.backbone.name)
    seed_everything(config.seed)
    backbone = build_backbone(config.backbone)  # unknown or unreachable backbones fail here, too
    model = task.build_model(backbone)
    dist = Distributed()
    run = RunDir.create(run_dir, resume=resume, overwrite=overwrite) if dist.is_main else RunDir(run_dir)
    config.output = str(run_dir)
    if dist.is_main:
        run.write_config(config.to_dict())
        if hasattr(backbone, "save_architecture"):
            backbone.save_architecture(run.backbone_dir)
    trainer = Trainer(task, model, data, config.train, seed=config.seed, run=run, callbacks=callbacks)
    state = trainer.fit(resume=resume)
    report = _final_report(task, trainer, data, config, state, started)  # collective: every rank evaluates
    if dist.is_main:
        report["pictures"] = task.draw_report(report, run.path)
        run.write_report(report)
    trainer.close()
    return RunResult(run.path, report if dist.is_main else {})


def _check_modality(task: Any, name: str) -> None:
    from .backbones import resolve_source

    kind, _ = resolve_source(name)
    modality = get_plugin_manager().backbones.get(name).meta.get("modality") if kind == "registry" else "text"
    if modality != task.modality:
        raise ConfigError(f"backbone {name!r} has modality {modality!r} but task {task.name!r} needs "
                          f"{task.modality!r}; see `crossfuse list backbones`")


def _final_report(task: Any, trainer: Any, data: Any, config: RunConfig, state: Any, started: float) -> dict[str, Any]:
    from safetensors.torch import load_file

    trainer.barrier()  # the main rank has written the best checkpoint
    best = trainer.run.best_weights()
    trainer.model.load_state_dict(load_file(str(best)), strict=False)
    splits = {name: trainer.evaluate(samples) for name, samples in data.splits().items()}
    if not trainer.dist.is_main:
        return {}
    report = {
        "task": config.task, "backbone": config.backbone.name, "seed": config.seed,
        "main_metric": task.main_metric, "best_epoch": state.best_epoch, "steps": state.step,
        "checkpoint": str(best.relative_to(trainer.run.path)),
        "sizes": {"train": len(data.train), **{name: len(s) for name, s in data.splits().items()}},
        "splits": splits,
    }
    baseline = task.baseline(data)
    if baseline:
        report["baseline"] = baseline
    report["wall_time_s"] = round(time.time() - started, 1)
    return report


# -- using a trained run ---------------------------------------------------------------------


class Predictor:
    """A trained run, ready to predict. Build it with :func:`load`."""

    def __init__(self, run_dir: str | Path, device: str = "cpu"):
        import torch
        from safetensors.torch import load_file

        from .backbones import build_backbone

        self.run = RunDir.open(run_dir)
        saved = self.run.read_config()
        cls = task_class(saved.get("task", ""))
        self.config = typed_config(saved, cls, source=str(self.run.path / "config.yaml"))
        self.task = cls(self.config)
        self.task.run_dir = self.run.path
        backbone_config = self.config.backbone
        backbone_config.pretrained = False  # the weights come from the checkpoint
        backbone_config.weights = None
        if (self.run.backbone_dir / "config.json").is_file():
            backbone_config.name = str(self.run.backbone_dir)
        self.model = self.task.build_model(build_backbone(backbone_config))
        missing, unexpected = self.model.load_state_dict(load_file(str(self.run.best_weights())), strict=False)
        if missing:
            raise CrossfuseError(f"{self.run.best_weights()} does not match the model: missing {missing[:3]}...")
        self.device = torch.device(device)
        self.model.to(self.device).eval()

    def predict(self, inputs: Sequence[Any], **options: Any) -> list[dict[str, Any]]:
        """The task's predictions for raw inputs (texts, image files or folders ...).

        ``options`` are the task's ``PredictOptions`` (``score_threshold=0.5``, ``gallery="faces/"``).
        """
        typed = build(type(self.task).PredictOptions, options, source="predict options")
        return self.task.predict(self.model, list(inputs), typed)

    def describe(self, prediction: dict[str, Any]) -> str:
        """The task's one-line summary of a prediction, for the terminal."""
        return self.task.describe_prediction(prediction)

    def evaluate(self, data: str | Path, batch_size: int = 64) -> dict[str, Any]:
        """The task's metrics on the dataset at ``data`` (any format the task reads)."""
        import torch

        from .trainer import collect_outputs

        samples = self.task.load_eval_data(str(data))
        loader = torch.utils.data.DataLoader(samples, batch_size=batch_size, collate_fn=self.task.collate)
        outputs = collect_outputs(self.task, self.model, loader, self.device)
        return self.task.compute_metrics(outputs, samples)


def predict_options(run_dir: str | Path) -> type:
    """The ``PredictOptions`` dataclass of the task that trained ``run_dir`` (nothing is loaded)."""
    return task_class(RunDir.open(run_dir).read_config().get("task", "")).PredictOptions


def load(run_dir: str | Path, device: str = "cpu") -> Predictor:
    """Load a trained run for prediction and evaluation."""
    return Predictor(run_dir, device=device)


def evaluate(run_dir: str | Path, data: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Metrics of the run in ``run_dir`` on the dataset ``data``.

    ``overrides`` (``"data.text_column=sentence"``) change how the file is read.
    """
    predictor = load(run_dir)
    if overrides:
        changes = parse_overrides(list(overrides))
        merged = merge(predictor.config.to_dict(), changes)
        typed_config(changes, type(predictor.task), source="--set")
        predictor.task.config = typed_config(merged, type(predictor.task))
    return predictor.evaluate(data)


# -- registries ------------------------------------------------------------------------------


def list_tasks() -> list[dict[str, Any]]:
    """Registered tasks with their plugin, modality and description."""
    return [get_plugin_manager().tasks.info(name) for name in get_plugin_manager().tasks.names()]


def list_backbones(modality: str | None = None) -> list[dict[str, Any]]:
    """Registered backbones, optionally only one modality."""
    registry = get_plugin_manager().backbones
    return [registry.info(n) for n in registry.names() if modality in (None, registry.get(n).meta.get("modality"))]


def get_backbone(name: str, **options: Any) -> Any:
    """Build a backbone by registry name, ``hf:ORG/NAME`` or local path (options: ``pretrained``, ...)."""
    from .backbones import build_backbone
    from .config import BackboneConfig

    return build_backbone(build(BackboneConfig, {"name": name, **options}, prefix="backbone."))
