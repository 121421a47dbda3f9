"""What was run: list the run directories under a folder, and compare runs side by side.

Everything here reads the files a run leaves (config.yaml, report.json, metrics.jsonl,
checkpoints/) and nothing else: no torch, and no task class is imported, so runs of a plugin
that is no longer installed still list and compare.

>>> from crossfuse.history import list_runs, compare_runs
>>> [r.path.name for r in list_runs("runs", task="finance-sentiment")]    # doctest: +SKIP
>>> compare_runs(["runs/fin-a", "runs/fin-b"])["config"]                   # doctest: +SKIP
[{'key': 'train.lr', 'values': [0.001, 0.0001]}]
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .errors import CrossfuseError
from .runs import CONFIG_FILE, REPORT_FILE, STATE_FILE, RunDir

FINISHED, RESUMABLE, INCOMPLETE = "finished", "resumable", "incomplete"
# Run folders sit at ROOT/TASK/TIMESTAMP by default, or wherever --output put them: a few levels suffice.
MAX_DEPTH = 4


@dataclass
class RunSummary:
    """One run directory as its files describe it (see :func:`summarize_run`)."""

    path: Path
    task: str
    backbone: Any
    status: str  # finished (report.json), resumable (checkpoints/last-state.pt, no report) or incomplete
    started: float | None  # seconds since the epoch
    epochs_done: int
    epochs: int | None  # as configured
    steps: int | None
    main_metric: str | None
    validation: float | None
    test: float | None
    wall_time_s: float | None
    config: dict[str, Any] = field(repr=False, default_factory=dict)
    report: dict[str, Any] | None = field(repr=False, default=None)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (without the config and report)."""
        return {"run_dir": str(self.path), "task": self.task, "backbone": self.backbone, "status": self.status,
                "started": _iso(self.started), "epochs_done": self.epochs_done, "epochs": self.epochs,
                "steps": self.steps, "main_metric": self.main_metric, "validation": self.validation,
                "test": self.test, "wall_time_s": self.wall_time_s}


def run_status(path: str | Path) -> str:
    """``finished`` when report.json exists, ``resumable`` with a resume state and no report, else ``incomplete``."""
    path = Path(path)
    if (path / REPORT_FILE).is_file():
        return FINISHED
    if (path / "checkpoints" / STATE_FILE).is_file():
        return RESUMABLE
    return INCOMPLETE


def summarize_run(path: str | Path) -> RunSummary:
    """Read one run directory; :class:`CrossfuseError` naming ``path`` when it is not one."""
    run = RunDir.open(path)
    try:
        config = run.read_config()
        report = run.read_report()
        log = run.read_log()
    except (ValueError, OSError) as exc:  # JSON and YAML parse errors are ValueErrors
        raise CrossfuseError(f"{run.path}: cannot read the run's files: {exc}") from None
    if not isinstance(config, dict):
        raise CrossfuseError(f"{run.path / CONFIG_FILE}: expected a mapping, got {type(config).__name__}")
    train = config.get("train") or {}
    main = (report or {}).get("main_metric")
    splits = (report or {}).get("splits") or {}
    times = [r["time"] for r in log if isinstance(r.get("time"), (int, float))]
    config_time = (run.path / CONFIG_FILE).stat().st_mtime  # rewritten on --resume: the log knows better
    return RunSummary(
        path=run.path, task=str(config.get("task", "")), backbone=_backbone(config), status=run_status(run.path),
        started=min(times + [config_time]), epochs_done=_epochs_done(log),
        epochs=train.get("epochs"), steps=(report or {}).get("steps", max((r.get("step", 0) for r in log), default=None)),
        main_metric=main, validation=_number((splits.get("validation") or {}).get(main)),
        test=_number((splits.get("test") or {}).get(main)), wall_time_s=(report or {}).get("wall_time_s"),
        config=config, report=report)


def _epochs_done(log: list[dict[str, Any]]) -> int:
    """Epochs evaluated on validation; without a validation split, epochs that logged training steps."""
    evaluated = {r.get("epoch") for r in log if r.get("split") == "validation"}
    return len(evaluated) or len({r.get("epoch") for r in log if r.get("split") == "train"})


def _backbone(config: dict[str, Any]) -> Any:
    backbones = config.get("backbones") or {}
    if backbones:
        return {name: (section or {}).get("name") for name, section in backbones.items()}
    return (config.get("backbone") or {}).get("name")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def find_runs(root: str | Path) -> list[Path]:
    """Folders under ``root`` (``root`` itself included) holding a crossfuse config.yaml: one with a
    ``task`` key. A run's own sub-folders are not searched (explanations, backbone snapshots ...)."""
    root = Path(root)
    if not root.is_dir():
        raise CrossfuseError(f"--root {root}: no such folder")
    found = []
    base_depth = len(root.parts)
    for folder, subfolders, files in os.walk(root):
        here = Path(folder)
        if CONFIG_FILE in files and _is_run_config(here / CONFIG_FILE):
            found.append(here)
            subfolders[:] = []
            continue
        subfolders[:] = sorted(s for s in subfolders if not s.startswith("."))
        if len(here.parts) - base_depth >= MAX_DEPTH:
            subfolders[:] = []
    return found


def _is_run_config(path: Path) -> bool:
    from .config import load_yaml

    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except (ValueError, OSError):
        return False
    return isinstance(data, dict) and bool(data.get("task")) and "train" in data


def list_runs(root: str | Path = "runs", task: str | None = None) -> list[RunSummary]:
    """The runs under ``root`` (of ``task`` only, when given), newest first."""
    summaries = [summarize_run(path) for path in find_runs(root)]
    if task:
        summaries = [s for s in summaries if s.task == task]
    return sorted(summaries, key=lambda s: s.started or 0.0, reverse=True)


# -- comparing ---------------------------------------------------------------------------------


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1e-3}}`` -> ``{"train.lr": 1e-3}``; lists and scalars are leaves."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}


MISSING = object()
# The run's own folder: it differs between any two runs and heads every column already.
SKIPPED_CONFIG_KEYS = ("output",)


def config_differences(configs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Dotted keys whose values differ between ``configs``, each with every config's value (None where
    a config lacks the key)."""
    flat = [flatten(config) for config in configs]
    keys = list(dict.fromkeys(key for f in flat for key in f))
    rows = []
    for key in keys:
        if key in SKIPPED_CONFIG_KEYS:
            continue
        values = [f.get(key, MISSING) for f in flat]
        if any(v != values[0] for v in values[1:]):
            rows.append({"key": key, "values": [None if v is MISSING else v for v in values]})
    return rows


def run_metrics(summary: RunSummary) -> dict[str, Any]:
    """The numbers a comparison lines up: every split's scalar metrics (``test.macro_f1``), the
    baseline's (``baseline.test.macro_f1``), best epoch, steps, wall time, size of the checkpoints."""
    report = summary.report or {}
    rows: dict[str, Any] = {}
    for split, metrics in (report.get("splits") or {}).items():
        rows.update(_scalars(metrics, f"{split}."))
    for split, metrics in ((report.get("baseline") or {}).get("splits") or {}).items():
        rows.update(_scalars(metrics, f"baseline.{split}."))
    rows["best_epoch"] = report.get("best_epoch")
    rows["steps"] = summary.steps
    rows["wall_time_s"] = summary.wall_time_s
    rows["checkpoints_bytes"] = folder_size(summary.path / "checkpoints")
    return rows


def _scalars(metrics: Any, prefix: str) -> dict[str, float]:
    if not isinstance(metrics, dict):
        return {}
    return {prefix + key: value for key, value in metrics.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}


def folder_size(folder: Path) -> int:
    """Bytes of the files under ``folder`` (0 when it does not exist)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def compare_runs(paths: Sequence[str | Path]) -> dict[str, Any]:
    """Two or more runs side by side: their config differences and their metrics by name.

    Returns ``{"runs": [...], "same_task": bool, "config": [{"key", "values"}], "metrics": [{"name",
    "values"}]}``; each ``values`` list follows the order of ``runs``. A path that is not a run raises
    :class:`CrossfuseError` naming it.
    """
    if len(paths) < 2:
        raise CrossfuseError("compare needs at least two run directories")
    summaries = [summarize_run(path) for path in paths]
    per_run = [run_metrics(s) for s in summaries]
    names = list(dict.fromkeys(name for metrics in per_run for name in metrics))
    return {"runs": [s.as_dict() for s in summaries],
            "same_task": len({s.task for s in summaries}) == 1,
            "config": config_differences([s.config for s in summaries]),
            "metrics": [{"name": name, "values": [m.get(name) for m in per_run]} for name in names]}


# -- text ----------------------------------------------------------------------------------------


def format_value(value: Any) -> str:
    """A cell: floats to four places, sizes in MB, None as ``-``."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"
    if isinstance(value, (list, dict)):
        import json

        return json.dumps(value, default=str)
    return str(value)


def aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows of cells as lines whose columns line up (the first row is the header)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]


def runs_table(summaries: Sequence[RunSummary]) -> list[str]:
    """``crossfuse runs`` as lines of text."""
    header = ["RUN", "TASK", "STARTED", "BACKBONE", "STATUS", "EPOCHS", "STEPS", "METRIC", "VALIDATION", "TEST",
              "WALL"]
    rows = [header]
    for s in summaries:
        backbone = s.backbone if isinstance(s.backbone, str) else ",".join(f"{k}={v}" for k, v in s.backbone.items())
        rows.append([str(s.path), s.task, _iso(s.started) or "-", backbone or "-", s.status,
                     f"{s.epochs_done}/{s.epochs if s.epochs is not None else '?'}", format_value(s.steps),
                     s.main_metric or "-", format_value(s.validation), format_value(s.test),
                     f"{s.wall_time_s:.0f} s" if s.wall_time_s is not None else "-"])
    return aligned(rows)


def comparison_text(comparison: dict[str, Any]) -> list[str]:
    """``crossfuse compare`` as lines of text: runs, config differences, metrics."""
    runs = comparison["runs"]
    lines = [f"run {i + 1}: {r['run_dir']} ({r['task']}, {r['status']})" for i, r in enumerate(runs)]
    if not comparison["same_task"]:
        lines.append("note: these runs are of different tasks (" + ", ".join(sorted({r["task"] for r in runs})) +
                     "); their metrics line up by name only")
    heads = [f"run {i + 1}" for i in range(len(runs))]
    lines.append("")
    if comparison["config"]:
        lines += aligned([["CONFIG", *heads]] + [[row["key"], *map(format_value, row["values"])]
                                                 for row in comparison["config"]])
    else:
        lines.append("config: identical (apart from output)")
    lines.append("")
    units = {"checkpoints_bytes": _size, "wall_time_s": _seconds}
    metric_rows = [[row["name"], *map(units.get(row["name"], format_value), row["values"])]
                   for row in comparison["metrics"]]
    lines += aligned([["METRIC", *heads]] + metric_rows)
    return lines


def _seconds(value: Any) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _size(value: Any) -> str:
    return "-" if value is None else f"{value / 1e6:.1f} MB"
