"""Experiment tracking: TensorBoard event files and MLflow runs, fed by what the trainer logs.

The trainer writes its records through :meth:`crossfuse.runs.RunDir.log` (only rank 0 has a run
directory that logs); a :class:`Tracking` adds *sinks* to that run directory, so every record
that reaches metrics.jsonl also reaches TensorBoard and MLflow, and the trainer knows nothing
of them. A sink has ``log(record)`` and ``truncate(step)`` (a resumed run drops the records
logged after its checkpoint: TensorBoard purges them, MLflow skips the steps it already holds).

- TensorBoard: on when the ``tensorboard`` package is installed (``train.tensorboard`` null), or
  forced on/off with ``train.tensorboard=true/false``. Events go to ``RUN_DIR/tensorboard/``.
- MLflow: when ``train.mlflow_uri`` is set. Run name: the run directory's name; experiment:
  ``train.mlflow_experiment`` or the task's name. Params: the flattened resolved config; metrics
  with their steps; at the end the report's scalars and report.json, report.html and the
  pictures as artifacts. The MLflow run id is kept in ``RUN_DIR/mlflow.json`` so ``--resume``
  continues the same MLflow run.

A missing package or an unreachable tracking server is a :class:`~crossfuse.errors.ConfigError`
raised by :func:`start_tracking` before anything is written.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .errors import ConfigError
from .runs import RunDir, atomic_write

TENSORBOARD_DIR = "tensorboard"
MLFLOW_FILE = "mlflow.json"
EXTRA = "pip install 'crossfuse[tracking]'"
RECORD_KEYS = ("step", "epoch", "split", "time")
CONNECT_TIMEOUT_S = 5.0
# mlflow's own defaults (7 retries with exponential back-off, 120 s per request) make a call to an
# unreachable server hang for minutes; crossfuse's calls keep to these unless the user set them.
MLFLOW_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
                        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def tensorboard_enabled(train: Any) -> bool:
    """Whether the run writes TensorBoard events: ``train.tensorboard``, or (null) whether it is installed.
    ``train.tensorboard=true`` without the package is a ConfigError."""
    if train.tensorboard is False:
        return False
    available = _installed("tensorboard")
    if train.tensorboard and not available:
        raise ConfigError(f"train.tensorboard=true needs the tensorboard package: {EXTRA} (or set "
                          f"train.tensorboard=false)")
    return available


def check_mlflow(uri: str) -> None:
    """Fail fast when MLflow cannot be used at ``uri``: the package is missing, or the server does
    not answer within seconds."""
    if not _installed("mlflow"):
        raise ConfigError(f"train.mlflow_uri={uri} needs the mlflow package (mlflow-skinny): {EXTRA}")
    parsed = urlparse(uri)
    if parsed.scheme not in ("http", "https"):
        return  # file:// and database stores are local
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ConfigError(f"train.mlflow_uri: cannot reach the MLflow tracking server at {uri} ({exc}); start it "
                          f"(mlflow server --port {port}), fix the URI, or drop train.mlflow_uri") from None
    _bound_mlflow_http()
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except MlflowException as exc:
        raise ConfigError(f"train.mlflow_uri: {uri} does not answer as an MLflow tracking server: "
                          f"{str(exc)[:300]}") from None


def _bound_mlflow_http() -> None:
    for name, value in MLFLOW_HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)


class Tracking:
    """The trackers of one run. :func:`start_tracking` builds it; ``attach``, then ``finish`` or ``close``."""

    def __init__(self, config: Any, tensorboard: bool, active: bool = True):
        self.config, self.tensorboard, self.active = config, tensorboard, active
        self.sinks: list[Any] = []

    def attach(self, run: RunDir, resume: bool = False) -> None:
        """Start the trackers for ``run`` and add them to its sinks (after every check has passed)."""
        if not self.active:
            return
        if self.tensorboard:
            self.sinks.append(TensorBoardSink(run.path / TENSORBOARD_DIR))
        if self.config.train.mlflow_uri:
            self.sinks.append(MlflowSink.start(run, self.config, resume=resume))
        run.sinks.extend(self.sinks)

    def finish(self, report: dict[str, Any], run: RunDir) -> None:
        """Log the final report's scalars and the report files, then close every tracker."""
        scalars = report_scalars(report)
        step = int(report.get("steps") or 0)
        for sink in self.sinks:
            sink.final(scalars, step, run, report)
        self.close("FINISHED")

    def close(self, status: str = "FINISHED") -> None:
        """Flush and close the trackers (``status`` for MLflow: FINISHED, KILLED or FAILED)."""
        for sink in self.sinks:
            sink.close(status)
        self.sinks = []


def start_tracking(config: Any, is_main: bool = True) -> Tracking:
    """Check the trackers ``config.train`` asks for (packages, server) and return them, not started.
    Ranks other than the main one track nothing."""
    if not is_main:
        return Tracking(config, tensorboard=False, active=False)
    tensorboard = tensorboard_enabled(config.train)
    if config.train.mlflow_uri:
        check_mlflow(config.train.mlflow_uri)
    return Tracking(config, tensorboard=tensorboard)


def record_scalars(record: dict[str, Any]) -> dict[str, float]:
    """``{"validation/macro_f1": 0.8, ...}`` from one metrics.jsonl record (bookkeeping and nulls left out)."""
    split = record.get("split", "train")
    return {f"{split}/{key}": float(value) for key, value in record.items()
            if key not in RECORD_KEYS and isinstance(value, (int, float)) and not isinstance(value, bool)}


def report_scalars(report: dict[str, Any]) -> dict[str, float]:
    """``{"final/test/macro_f1": ..., "final/baseline/test/accuracy": ...}``: every split's scalar metrics."""
    out: dict[str, float] = {}
    sources = [("final", report.get("splits") or {}), ("final/baseline", (report.get("baseline") or {}).get("splits") or {})]
    for prefix, splits in sources:
        for split, metrics in splits.items():
            for key, value in (metrics or {}).items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
                    out[f"{prefix}/{split}/{key}"] = float(value)
    return out


def flat_params(config: dict[str, Any]) -> dict[str, str]:
    """The resolved config as MLflow params: dotted keys, values as text."""
    from .history import flatten

    return {key: json.dumps(value) if isinstance(value, (list, dict)) else str(value)
            for key, value in flatten(config).items()}


class TensorBoardSink:
    """Writes each record's scalars as TensorBoard events under ``folder``, at the record's step.

    The writer opens on the first record or truncation: a resumed run's truncation opens it with
    ``purge_step`` just after the checkpoint, so TensorBoard hides what the interrupted part logged.
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self.writer: Any = None

    def _open(self, purge_step: int | None = None) -> Any:
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.folder), purge_step=purge_step)
        return self.writer

    def log(self, record: dict[str, Any]) -> None:
        writer = self._open()
        for tag, value in record_scalars(record).items():
            writer.add_scalar(tag, value, global_step=record.get("step", 0), walltime=record.get("time"))

    def truncate(self, step: int) -> None:
        if self.writer is None:
            self._open(purge_step=step + 1)

    def final(self, scalars: dict[str, float], step: int, run: RunDir, report: dict[str, Any]) -> None:
        writer = self._open()
        for tag, value in scalars.items():
            writer.add_scalar(tag, value, global_step=step)

    def close(self, status: str) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class MlflowSink:
    """Logs records as MLflow metrics (key ``split/name``, the record's step) into one MLflow run."""

    def __init__(self, client: Any, run_id: str, logged: dict[str, int]):
        self.client, self.run_id = client, run_id
        self.logged = logged  # last step of each metric the MLflow run already holds (a resumed run)
        self.failed = False

    @classmethod
    def start(cls, run: RunDir, config: Any, resume: bool) -> "MlflowSink":
        """Open (or on resume, reopen) the MLflow run of ``run``; log the params of a new one."""
        from mlflow.tracking import MlflowClient

        uri = config.train.mlflow_uri
        _bound_mlflow_http()
        client = MlflowClient(tracking_uri=uri)
        saved = run.path / MLFLOW_FILE
        if resume and saved.is_file():
            run_id = json.loads(saved.read_text(encoding="utf-8"))["run_id"]
            client.update_run(run_id, status="RUNNING")
            held = client.get_run(run_id).data.metrics
            logged = {key: max(m.step for m in client.get_metric_history(run_id, key)) for key in held}
            return cls(client, run_id, logged)
        name = config.train.mlflow_experiment or config.task
        experiment = client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else client.create_experiment(name)
        created = client.create_run(experiment_id, run_name=run.path.name,
                                    tags={"crossfuse.run_dir": str(run.path.resolve()), "crossfuse.task": config.task})
        run_id = created.info.run_id
        atomic_write(saved, json.dumps({"tracking_uri": uri, "experiment_id": experiment_id, "run_id": run_id}) + "\n")
        sink = cls(client, run_id, {})
        sink._params(config.to_dict())
        return sink

    def _params(self, config: dict[str, Any]) -> None:
        from mlflow.entities import Param

        params = [Param(k, v[:6000]) for k, v in flat_params(config).items()]
        for start in range(0, len(params), 100):  # log_batch takes at most 100 params
            self.client.log_batch(self.run_id, params=params[start:start + 100])

    def _metrics(self, scalars: dict[str, float], step: int, seconds: float | None) -> None:
        from mlflow.entities import Metric

        stamp = int((seconds or time.time()) * 1000)
        metrics = [Metric(key, value, stamp, step) for key, value in scalars.items()
                   if step > self.logged.get(key, -1)]
        if metrics and not self.failed:
            self._call(self.client.log_batch, self.run_id, metrics=metrics)

    def _call(self, function: Any, *args: Any, **kwargs: Any) -> None:
        """A tracking call during training: a failure is said once and tracking stops; training goes on."""
        try:
            function(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the server went away mid-run: the run itself is fine
            self.failed = True
            print(f"warning: MLflow logging stopped: {str(exc)[:300]}", file=sys.stderr, flush=True)

    def log(self, record: dict[str, Any]) -> None:
        self._metrics(record_scalars(record), int(record.get("step", 0)), record.get("time"))

    def truncate(self, step: int) -> None:
        pass  # MLflow keeps what it has; _metrics skips the steps it already holds

    def final(self, scalars: dict[str, float], step: int, run: RunDir, report: dict[str, Any]) -> None:
        self._metrics(scalars, step, None)
        files = ["report.json", "report.html", *(report.get("pictures") or [])]
        for name in files:
            path = run.path / str(name)
            if path.is_file() and not self.failed:
                self._call(self.client.log_artifact, self.run_id, str(path))

    def close(self, status: str) -> None:
        if not self.failed:
            self._call(self.client.set_terminated, self.run_id, status)
