"""The run directory: resolved config, metrics log, checkpoints, report and pictures.

Layout::

    RUN_DIR/config.yaml          the resolved configuration (what `crossfuse eval/predict` rebuild from)
    RUN_DIR/metrics.jsonl        one JSON object per logged step / evaluation
    RUN_DIR/checkpoints/         best.safetensors, last.safetensors, last-state.pt (the resume state:
                                 optimizer moments, RNG, data position; dropped when the run finishes
                                 unless train.keep_resume_state is true)
    RUN_DIR/backbone/            tokenizer + architecture config, so the run reloads offline, and keys.json
                                 (where the backbone's tensors sit in the checkpoint); a task with several
                                 inputs has backbones/<input>/ instead
    RUN_DIR/task_state.json      what the task derived from its data (labels, thresholds ...)
    RUN_DIR/report.json          final metrics of every split (+ baseline)
    RUN_DIR/*.png                the task's pictures
    RUN_DIR/report.html          one self-contained page about the run (crossfuse.html_report)
    RUN_DIR/tensorboard/         TensorBoard events, RUN_DIR/mlflow.json the MLflow run id (crossfuse.tracking)

Every file is written atomically (temporary file + rename), so an interrupted write never
leaves a truncated checkpoint or report behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import yaml

from .errors import CrossfuseError

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
REPORT_FILE = "report.json"
TASK_STATE_FILE = "task_state.json"
STATE_FILE = "last-state.pt"
LAST_WEIGHTS = "last.safetensors"
PENDING = ".next"  # suffix of a checkpoint half written, completed or dropped by RunDir.recover_checkpoint


def atomic_write(path: str | Path, writer: Callable[[str], None] | bytes | str) -> Path:
    """Write ``path`` through a temporary file in the same folder, then rename it into place.

    ``writer`` is the content (bytes or text) or a function that writes to the temporary path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        if callable(writer):
            writer(tmp)
        else:
            Path(tmp).write_bytes(writer.encode("utf-8") if isinstance(writer, str) else writer)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def summarize(metrics: dict[str, Any], main: str, limit: int | None = None) -> str:
    """``main=0.8123, other=...``: the main metric first, then the other fractional scalars.

    Integer counts (pairs, images) and nested tables stay in report.json; ``limit`` caps the list.
    """
    scores = {k: float(v) for k, v in metrics.items()
              if isinstance(v, float) or (hasattr(v, "dtype") and getattr(v.dtype, "kind", "") == "f")}
    ordered = ([main] if main in scores else []) + [k for k in scores if k != main]
    return ", ".join(f"{k}={scores[k]:.4f}" for k in ordered[:limit])


def cache_dir(*parts: str) -> Path:
    """A folder for data crossfuse can regenerate (demo sets): ``$CROSSFUSE_CACHE`` or ``~/.cache/crossfuse``."""
    root = Path(os.environ.get("CROSSFUSE_CACHE") or Path.home() / ".cache" / "crossfuse")
    return root.joinpath(*parts)


def cached_folder(*parts: str, fill: Callable[[Path], Any]) -> Path:
    """``cache_dir(*parts)``, written by ``fill(folder)`` the first time it is asked for.

    ``fill`` writes into a temporary sibling that is renamed into place when complete, so an
    interrupted fill leaves nothing half-written and two processes filling at once both end up
    with one whole copy.
    """
    folder = cache_dir(*parts)
    if folder.is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        fill(temporary)
        os.replace(temporary, folder)
    except OSError:
        if not folder.is_dir():
            raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)  # gone already when the rename succeeded
    return folder


def default_output(task: str) -> Path:
    """``runs/TASK/YYYYmmdd-HHMMSS`` under the current directory."""
    return Path("runs") / task / time.strftime("%Y%m%d-%H%M%S")


class RunDir:
    """One run's folder. Use :meth:`create` for a new or resumed run, :meth:`open` to read one."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        # Where each logged record also goes (TensorBoard, MLflow: crossfuse.tracking): objects with
        # log(record) and truncate(step), so the trainer logs once and knows no tracker.
        self.sinks: list[Any] = []

    @classmethod
    def create(cls, path: str | Path, *, resume: bool = False, overwrite: bool = False) -> "RunDir":
        """Prepare ``path`` for a run; refuse to clobber another run unless asked to."""
        run = cls(path)
        holds_run = (run.path / CONFIG_FILE).is_file()
        if resume:
            run.recover_checkpoint()
            if not run.has_checkpoint():
                finished = (run.path / REPORT_FILE).is_file()
                reason = ("the run finished and its resume state was dropped (train.keep_resume_state=false); "
                          "start a new run, or evaluate this one with `crossfuse eval`") if finished else \
                    f"expected {run.checkpoint_dir / STATE_FILE}"
                raise CrossfuseError(f"--resume: {run.path} holds no checkpoint to resume from: {reason}")
            return run
        if run.path.exists() and any(run.path.iterdir()):
            if not overwrite:
                what = "another run" if holds_run else "files"
                raise CrossfuseError(f"output directory {run.path} already holds {what}; pass --resume to continue "
                                     f"it, --overwrite to replace it, or choose another --output")
            if not holds_run:
                raise CrossfuseError(f"--overwrite refuses to delete {run.path}: it is not a crossfuse run directory "
                                     f"(no {CONFIG_FILE})")
            shutil.rmtree(run.path)
        run.path.mkdir(parents=True, exist_ok=True)
        return run

    @classmethod
    def open(cls, path: str | Path) -> "RunDir":
        """An existing run; error if ``path`` is not one."""
        run = cls(path)
        if not (run.path / CONFIG_FILE).is_file():
            raise CrossfuseError(f"{run.path} is not a crossfuse run directory (no {CONFIG_FILE} in it)")
        return run

    # -- paths ---------------------------------------------------------------------------------
    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def backbone_dir(self) -> Path:
        return self.path / "backbone"

    def has_checkpoint(self) -> bool:
        """Whether a resumable training state is saved."""
        return (self.checkpoint_dir / STATE_FILE).is_file()

    def write_checkpoint(self, write_weights: Callable[[str], None], write_state: Callable[[str], None]) -> None:
        """Replace the last checkpoint (weights and training state) as one unit: both are written
        beside the old pair, then renamed into place, weights first. Whenever the process dies, the
        old pair or the new one can be made whole again by :meth:`recover_checkpoint`."""
        folder = self.checkpoint_dir
        weights = atomic_write(folder / (LAST_WEIGHTS + PENDING), write_weights)
        state = atomic_write(folder / (STATE_FILE + PENDING), write_state)
        os.replace(weights, folder / LAST_WEIGHTS)
        os.replace(state, folder / STATE_FILE)

    def recover_checkpoint(self) -> None:
        """Finish or drop a checkpoint replacement that a killed process left half done."""
        folder = self.checkpoint_dir
        weights, state = folder / (LAST_WEIGHTS + PENDING), folder / (STATE_FILE + PENDING)
        if weights.exists():  # died before the first rename: the previous pair is whole
            weights.unlink()
            state.unlink(missing_ok=True)
        elif state.exists():  # died between the renames: the new weights are in place, so is their state
            os.replace(state, folder / STATE_FILE)
        for leftover in folder.glob(".*.tmp"):  # a write cut short inside atomic_write
            leftover.unlink()

    def drop_resume_state(self) -> None:
        """Delete the finished run's resume state (optimizer moments: twice the model's size); the
        best and last weights stay."""
        (self.checkpoint_dir / STATE_FILE).unlink(missing_ok=True)

    def best_weights(self) -> Path:
        """The best checkpoint, or the last one for runs without a validation split."""
        for name in ("best.safetensors", "last.safetensors"):
            if (self.checkpoint_dir / name).is_file():
                return self.checkpoint_dir / name
        raise CrossfuseError(f"{self.path} has no checkpoint yet (expected {self.checkpoint_dir / 'best.safetensors'})")

    # -- files ---------------------------------------------------------------------------------
    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write(self.path / CONFIG_FILE, yaml.safe_dump(config, sort_keys=False))

    def read_config(self) -> dict[str, Any]:
        from .config import load_yaml

        return load_yaml((self.path / CONFIG_FILE).read_text(encoding="utf-8")) or {}

    def log(self, record: dict[str, Any]) -> None:
        """Append one JSON line to metrics.jsonl (a line is written whole or not at all)."""
        with open(self.path / METRICS_FILE, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        for sink in self.sinks:
            sink.log(record)

    def truncate_log(self, step: int) -> None:
        """Drop records logged after ``step`` (they belong to the interrupted part of a resumed run)."""
        for sink in self.sinks:
            sink.truncate(step)
        path = self.path / METRICS_FILE
        if not path.is_file():
            return
        kept = [line for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step]
        atomic_write(path, "".join(line + "\n" for line in kept))

    def read_log(self) -> list[dict[str, Any]]:
        path = self.path / METRICS_FILE
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def write_task_state(self, state: dict[str, Any]) -> None:
        """Save what the task derived from its data (:meth:`crossfuse.task.Task.state_dict`)."""
        atomic_write(self.path / TASK_STATE_FILE, json.dumps(state, indent=2, default=_json_default) + "\n")

    def read_task_state(self) -> dict[str, Any] | None:
        """The saved task state, or None for a run that has none (made before crossfuse saved it)."""
        path = self.path / TASK_STATE_FILE
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def write_report(self, report: dict[str, Any]) -> None:
        atomic_write(self.path / REPORT_FILE, json.dumps(report, indent=2, default=_json_default) + "\n")

    def read_report(self) -> dict[str, Any] | None:
        """The finished run's report, or None while the run has not written one."""
        path = self.path / REPORT_FILE
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _json_default(value: Any) -> Any:
    """numpy scalars and arrays in reports."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
