"""``crossfuse serve``: trained runs of any task behind an HTTP API (FastAPI + uvicorn).

Every run is served through the task contract only: :func:`crossfuse.api.load` builds its
:class:`~crossfuse.api.Predictor`, and a request's inputs go to ``Predictor.predict(inputs, **options)``,
so a third-party task is served exactly like a first-party one. Routes (``NAME`` is the run's name)::

    GET  /health                      ok and the names of the runs (never needs the token)
    GET  /runs/NAME/info   (/info)    task, labels, backbone, metrics of the report, options, limits
    POST /runs/NAME/predict (/predict) JSON {"inputs": [...], "options": {...}} for a text task, or
                                      multipart/form-data files (+ option fields) for a file task
    GET  /docs, /openapi.json         FastAPI's own

The bare ``/info`` and ``/predict`` serve the run when only one is loaded. A response to
``/predict`` is what ``crossfuse predict --json`` prints for the same inputs, uploaded files named
by their file names. Errors are JSON ``{"error": "..."}``: 4xx for the client's mistakes (a
:class:`~crossfuse.errors.CrossfuseError` of the task is a 400), 500 only for a fault of the server,
whose traceback goes to the log.

Batching: one :class:`Batcher` per run gathers the requests that arrive together (same options, up
to ``serve.max_batch_size`` inputs, the first waiting at most ``serve.max_wait_ms``) into one
``Predictor.predict`` call, made in the run's own worker thread (a model runs one call at a time),
and splits the predictions back by :meth:`crossfuse.task.Task.inputs_per_prediction`. With
``--workers N`` each uvicorn worker process loads the runs and batches on its own.
"""

# No `from __future__ import annotations`: FastAPI reads the route functions' annotations (Request)
# as objects, and the app is built inside create_app, where its imports are local.
import asyncio
import dataclasses
import hmac
import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
import types
import typing
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from .config import ServeConfig, build
from .errors import ConfigError, CrossfuseError

SETTINGS_ENV = "CROSSFUSE_SERVE_SETTINGS"  # how `--workers N` hands the settings to each worker process
TOKEN_ENV = "CROSSFUSE_SERVE_TOKEN"
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
JSON_KEYS = ("inputs", "options")
FORM_OVERHEAD = 64 * 1024  # multipart boundaries, part headers and option fields, beyond the files themselves
INSTALL_HINT = "crossfuse serve needs fastapi, uvicorn and python-multipart: pip install 'crossfuse[serve]'"
log = logging.getLogger("crossfuse.serve")


# -- settings ---------------------------------------------------------------------------------


@dataclass
class ServeSettings:
    """What ``crossfuse serve`` was asked for: runs by name, device, token and the CLI's limit overrides.

    ``limits`` holds ``serve.*`` keys (``max_batch_size`` ...) that replace each run's own config.
    """

    runs: dict[str, str]
    device: str = "cpu"
    token: str | None = None
    limits: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """The settings as JSON (for the environment of worker processes)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "ServeSettings":
        """The inverse of :meth:`to_json`."""
        return cls(**json.loads(text))


def run_names(specs: Sequence[str]) -> dict[str, str]:
    """``["fin=runs/a", "runs/b"]`` -> ``{"fin": "runs/a", "b": "runs/b"}``: NAME=RUN_DIR, or the folder's
    own name. A duplicate or unusable name is a :class:`ConfigError`."""
    runs: dict[str, str] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or "/" in name or os.sep in name:
            name, path = Path(spec).resolve().name, spec
        if not RUN_NAME.match(name):
            raise ConfigError(f"{spec}: run name {name!r} must be letters, digits, '.', '_' or '-' (give NAME=RUN_DIR)")
        if name in runs:
            raise ConfigError(f"{spec}: two runs are named {name!r} ({runs[name]} and {path}); name them apart "
                              f"with NAME=RUN_DIR")
        runs[name] = path
    if not runs:
        raise ConfigError("give at least one run directory to serve")
    return runs


def serve_limits(config: ServeConfig, overrides: dict[str, Any]) -> ServeConfig:
    """A run's ``serve`` section with the CLI's ``overrides``, checked: counts at least 1, no negative wait."""
    limits = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    for key, value, low in (("max_batch_size", limits.max_batch_size, 1), ("max_inputs", limits.max_inputs, 1),
                            ("max_wait_ms", limits.max_wait_ms, 0), ("max_upload_mb", limits.max_upload_mb, 0)):
        if value < low or (key == "max_upload_mb" and value == 0):
            raise ConfigError(f"serve.{key} must be {'positive' if low == 0 else f'at least {low}'}, got {value}")
    return limits


# -- errors -----------------------------------------------------------------------------------


class RequestError(Exception):
    """A client's mistake, answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


# -- batching ---------------------------------------------------------------------------------


@dataclass
class Job:
    """One request waiting for the model: its inputs, options, and where its predictions go."""

    inputs: list[Any]
    options: dict[str, Any]
    key: str  # requests batch together only with the same options
    per_prediction: int  # inputs that make one prediction (Task.inputs_per_prediction)
    future: asyncio.Future
    arrived: float

    @property
    def predictions(self) -> int | None:
        """How many predictions the job's inputs make, or None when they do not fit the task's grouping."""
        count, rest = divmod(len(self.inputs), self.per_prediction) if self.per_prediction > 0 else (0, 1)
        return count if not rest else None


class Batcher:
    """Gathers concurrent requests of one run into one ``predict(inputs, options)`` call at a time.

    The oldest waiting request leads: requests with the same options join it until the batch holds
    ``max_batch_size`` inputs or ``max_wait_ms`` have passed since the leader arrived. ``predict``
    runs on ``executor`` (one thread: the model serves one call at a time), and requests keep
    gathering meanwhile. A request that does not fit the task's grouping of inputs, or that is as
    large as a batch, runs alone; so does each request of a batch whose call raised, so that one
    bad request's error reaches it alone.
    """

    def __init__(self, predict: Callable[[list[Any], dict[str, Any]], list[Any]], max_batch_size: int,
                 max_wait_ms: float, executor: ThreadPoolExecutor):
        self.predict_fn, self.max_batch_size, self.max_wait = predict, max_batch_size, max_wait_ms / 1000
        self.executor = executor
        self.waiting: list[Job] = []
        self.calls = 0  # model calls so far (for /info and the load test)
        self._wake: asyncio.Event | None = None
        self._loop_task: asyncio.Task | None = None

    async def predict(self, inputs: list[Any], options: dict[str, Any], key: str, per_prediction: int) -> list[Any]:
        """The predictions of one request, computed with whichever requests arrive together with it."""
        loop = asyncio.get_running_loop()
        if self._loop_task is None or self._loop_task.done():
            self._wake = asyncio.Event()
            self._loop_task = loop.create_task(self._serve())
        job = Job(list(inputs), options, key, per_prediction, loop.create_future(), loop.time())
        self.waiting.append(job)
        self._wake.set()
        return await job.future

    def close(self) -> None:
        """Stop gathering (the app is shutting down)."""
        if self._loop_task is not None:
            self._loop_task.cancel()

    def _alone(self, job: Job) -> bool:
        return self.max_batch_size <= 1 or job.predictions is None or len(job.inputs) >= self.max_batch_size

    def _companions(self, leader: Job) -> list[Job]:
        batch, count = [leader], len(leader.inputs)
        if self._alone(leader):
            return batch
        for job in self.waiting[1:]:
            if job.key == leader.key and not self._alone(job) and count + len(job.inputs) <= self.max_batch_size:
                batch.append(job)
                count += len(job.inputs)
        return batch

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self.waiting:
                self._wake.clear()
                await self._wake.wait()
                continue
            leader = self.waiting[0]
            batch = self._companions(leader)
            while not self._alone(leader) and sum(len(j.inputs) for j in batch) < self.max_batch_size:
                left = leader.arrived + self.max_wait - loop.time()
                if left <= 0:
                    break
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), left)
                except asyncio.TimeoutError:
                    break
                batch = self._companions(leader)
            self.waiting = [job for job in self.waiting if job not in batch]
            batch = [job for job in batch if not job.future.done()]  # a client that went away
            if batch:
                outcomes = await loop.run_in_executor(self.executor, self._run, batch)
                for job, outcome in zip(batch, outcomes):
                    if job.future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        job.future.set_exception(outcome)
                    else:
                        job.future.set_result(outcome)

    def _run(self, batch: list[Job]) -> list[Any]:
        """In the worker thread: one call for the batch, or one per job when the batch cannot be split."""
        if len(batch) > 1:
            try:
                results = self._call([x for job in batch for x in job.inputs], batch[0].options)
            except CrossfuseError:
                results = None  # some request is at fault: find out which, each on its own
            if results is not None and len(results) == sum(job.predictions for job in batch):
                parts, start = [], 0
                for job in batch:
                    parts.append(results[start:start + job.predictions])
                    start += job.predictions
                return parts
        outcomes: list[Any] = []
        for job in batch:
            try:
                outcomes.append(self._call(job.inputs, job.options))
            except Exception as exc:  # noqa: BLE001 - handed to the request, which answers or logs it
                outcomes.append(exc)
        return outcomes

    def _call(self, inputs: list[Any], options: dict[str, Any]) -> list[Any]:
        self.calls += 1
        return list(self.predict_fn(inputs, **options))


# -- one served run ---------------------------------------------------------------------------


class ServedRun:
    """A loaded run under a name: its predictor, limits, worker thread and batcher."""

    def __init__(self, name: str, predictor: Any, limits: ServeConfig):
        self.name, self.predictor, self.limits = name, predictor, limits
        self.task = predictor.task
        self.takes_files = bool(type(self.task).input_extensions)
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"crossfuse-serve-{name}")
        # Looked up at call time, so a wrapped Predictor.predict (tests count calls) is the one used.
        self.batcher = Batcher(lambda inputs, **options: self.predictor.predict(inputs, **options),
                               limits.max_batch_size, limits.max_wait_ms, self.executor)

    @property
    def options_class(self) -> type:
        return type(self.task).PredictOptions

    def check_options(self, options: dict[str, Any]) -> Any:
        """The request's options typed by the task's ``PredictOptions``; unknown or ill-typed ones are a 400."""
        names = [f.name for f in _http_fields(self.options_class)]
        local = sorted(set(options) & {f.name for f in dataclasses.fields(self.options_class)} - set(names))
        if local:
            raise RequestError(400, f"option {local[0]!r} of task {self.task.name!r} names a place on the server "
                                    f"(its PredictOptions field says serve=False): it cannot be set over HTTP")
        unknown = sorted(set(options) - set(names))
        if unknown:
            valid = ", ".join(names) if names else "none (this task takes no options)"
            raise RequestError(400, f"unknown option {unknown[0]!r} for task {self.task.name!r}; valid options: {valid}")
        try:
            return build(self.options_class, dict(options), source="options")
        except ConfigError as exc:
            raise RequestError(400, str(exc)) from None

    def info(self) -> dict[str, Any]:
        """What ``/info`` answers: the task, labels, backbone, the report's metrics, options and limits."""
        config, report = self.predictor.config, self.predictor.run.read_report() or {}
        state = self.predictor.run.read_task_state() or {}
        labels = state.get("labels") or getattr(self.task, "label_names", None)
        extensions = sorted(type(self.task).input_extensions)
        return {
            "name": self.name, "task": self.task.name, "modality": self.task.modality,
            "labels": list(labels) if isinstance(labels, (list, tuple)) else None,
            "backbone": ({n: s.name for n, s in config.backbones.items()} if config.backbones else config.backbone.name),
            "main_metric": report.get("main_metric", self.task.main_metric),
            "metrics": {split: _scalars(values) for split, values in (report.get("splits") or {}).items()},
            "inputs": {"content_type": "multipart/form-data" if self.takes_files else "application/json",
                       "kind": "files" if self.takes_files else "texts", "extensions": extensions},
            "options": _option_rows(self.options_class),
            "limits": asdict(self.limits), "model_calls": self.batcher.calls,
        }

    def close(self) -> None:
        self.batcher.close()
        self.executor.shutdown(wait=False, cancel_futures=True)


def _scalars(metrics: dict[str, Any]) -> dict[str, Any]:
    """The numbers of a split's metrics (curves, tables and matrices stay in report.json)."""
    return {k: v for k, v in metrics.items()
            if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))}


def _http_fields(options_class: type) -> list[Any]:
    """The PredictOptions fields a request may set: all but those whose metadata says ``serve=False``
    (a folder on the server to write to, say), which stay at their defaults."""
    return [f for f in dataclasses.fields(options_class) if f.metadata.get("serve", True) is not False]


def _option_rows(options_class: type) -> list[dict[str, Any]]:
    hints = typing.get_type_hints(options_class)
    rows = []
    for f in _http_fields(options_class):
        default = None if f.default is dataclasses.MISSING else f.default
        kind = hints[f.name]
        rows.append({"name": f.name, "type": getattr(kind, "__name__", None) if isinstance(kind, type) else
                     str(kind).replace("typing.", ""), "default": default,
                     "help": f.metadata.get("help", "")})
    return rows


# -- requests ---------------------------------------------------------------------------------


def _safe_name(filename: str, index: int) -> str:
    """An uploaded file's own name, reduced to a harmless base name (no folders, no odd characters)."""
    name = Path(filename.replace("\\", "/")).name.strip()
    name = re.sub(r"[^\w.\- ]", "_", name)[-120:]
    return name if name.strip(".") else f"upload-{index}"


async def _body(request: Any, limit: int, what: str) -> bytes:
    """The request body, refused with 413 as soon as it is larger than ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, what)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, what)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limits: ServeConfig) -> str:
    return (f"the request is larger than serve.max_upload_mb = {limits.max_upload_mb:g} MB; send fewer or smaller "
            f"files, or raise it (crossfuse serve --max-upload-mb, or serve.max_upload_mb in the run's config)")


def _too_many(count: int, limits: ServeConfig) -> RequestError:
    return RequestError(413, f"{count} inputs in one request; serve.max_inputs is {limits.max_inputs} (split the "
                             f"request, or raise it: crossfuse serve --max-inputs, or serve.max_inputs in the run's config)")


async def read_json(run: ServedRun, request: Any) -> tuple[list[str], dict[str, Any]]:
    """``{"inputs": [texts], "options": {...}}`` of a text task's request, checked."""
    body = await _body(request, int(run.limits.max_upload_mb * 2**20), _too_large(run.limits))
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise RequestError(400, f"the body is not valid JSON ({exc})") from None
    if not isinstance(document, dict):
        raise RequestError(400, 'expected a JSON object {"inputs": ["text", ...], "options": {...}}')
    unknown = sorted(set(document) - set(JSON_KEYS))
    if unknown:
        raise RequestError(400, f"unknown field {unknown[0]!r}; valid fields: {', '.join(JSON_KEYS)}")
    inputs, options = document.get("inputs"), document.get("options") or {}
    if not isinstance(inputs, list):
        raise RequestError(400, 'field "inputs" must be a list of texts, e.g. {"inputs": ["Profit doubled"]}')
    for index, item in enumerate(inputs):
        if not isinstance(item, str):
            raise RequestError(400, f"inputs[{index}] must be a text (a JSON string), got {type(item).__name__}")
    if not isinstance(options, dict):
        raise RequestError(400, 'field "options" must be an object of option names and values')
    return inputs, options


async def read_form(run: ServedRun, request: Any, folder: Path) -> tuple[list[str], dict[str, Any], dict[str, str]]:
    """A file task's multipart request: the files written into ``folder`` (in the order given), the
    option fields, and each written path's upload name."""
    from starlette.datastructures import UploadFile
    from starlette.requests import Request

    limit = int(run.limits.max_upload_mb * 2**20)
    body = await _body(request, limit + FORM_OVERHEAD, _too_large(run.limits))
    sent = False

    async def replay() -> dict[str, Any]:  # the body once more, for Starlette's own multipart parser
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    form = await Request(request.scope, replay).form(max_files=100_000, max_fields=10_000)
    try:
        inputs, options, names, total = [], {}, {}, 0
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read()
                total += len(data)
                if total > limit:
                    raise RequestError(413, _too_large(run.limits))
                name = _safe_name(value.filename or "", len(inputs))
                path = folder / str(len(inputs)) / name
                path.parent.mkdir()
                path.write_bytes(data)
                inputs.append(str(path))
                names[str(path)] = value.filename or name
            elif key in options:
                raise RequestError(400, f"option {key!r} is given twice")
            else:
                options[key] = value
    finally:
        await form.close()
    return inputs, _form_options(run.options_class, options), names


def _form_options(options_class: type, options: dict[str, str]) -> dict[str, Any]:
    """Form fields are text: ``true`` / ``false`` become booleans for the task's bool options (the
    dataclass types convert numbers themselves)."""
    hints = typing.get_type_hints(options_class)
    out: dict[str, Any] = {}
    for key, value in options.items():
        kind = hints.get(key)
        args = typing.get_args(kind) if typing.get_origin(kind) in (typing.Union, types.UnionType) else ()
        optional, inner = type(None) in args, [a for a in args if a is not type(None)]
        word = value.strip().lower()
        if (kind is bool or inner == [bool]) and word in ("true", "false"):
            out[key] = word == "true"
        elif optional and word in ("", "null"):
            out[key] = None  # an Optional option left empty: its default meaning
        else:
            out[key] = value
    return out


def _renamed(value: Any, names: dict[str, str]) -> Any:
    """``value`` with every temporary upload path replaced by the file's upload name."""
    if isinstance(value, str):
        return names.get(value, value)
    if isinstance(value, list):
        return [_renamed(v, names) for v in value]
    if isinstance(value, tuple):
        return tuple(_renamed(v, names) for v in value)
    if isinstance(value, dict):
        return {k: _renamed(v, names) for k, v in value.items()}
    return value


def _message(exc: BaseException, names: dict[str, str], folder: Path | None) -> str:
    """An error's message with the temporary paths of the uploads written as their upload names."""
    text = str(exc)
    for path, name in sorted(names.items(), key=lambda item: -len(item[0])):
        text = text.replace(path, name)
    return text.replace(str(folder), "<upload>") if folder is not None else text


async def predict(run: ServedRun, request: Any) -> Any:
    """Answer one ``/predict`` request of ``run``: read it, check it, batch it, name the uploads."""
    from starlette.responses import Response

    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    expected = "multipart/form-data" if run.takes_files else "application/json"
    if kind != expected:
        what = (f"files, sent as multipart/form-data (extensions: {', '.join(sorted(type(run.task).input_extensions))})"
                if run.takes_files else 'texts, sent as application/json {"inputs": [...], "options": {...}}')
        raise RequestError(415, f"content type {kind or '(none)'}: task {run.task.name!r} takes {what}")
    folder = Path(tempfile.mkdtemp(prefix="crossfuse-serve-")) if run.takes_files else None  # private: mode 0700
    names: dict[str, str] = {}
    try:
        if folder is not None:
            inputs, options, names = await read_form(run, request, folder)
        else:
            inputs, options = await read_json(run, request)
        if not inputs:
            raise RequestError(400, "no inputs: " + ("attach at least one file" if run.takes_files
                                                      else 'give "inputs": ["a text", ...]'))
        if len(inputs) > run.limits.max_inputs:
            raise _too_many(len(inputs), run.limits)
        typed = run.check_options(options)
        key = json.dumps(options, sort_keys=True, default=str)
        try:
            results = await run.batcher.predict(inputs, options, key, run.task.inputs_per_prediction(typed))
        except CrossfuseError as exc:
            raise RequestError(400, _message(exc, names, folder)) from None
        return Response(json.dumps(_renamed(results, names), default=str), media_type="application/json")
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


# -- the app ----------------------------------------------------------------------------------


def load_runs(settings: ServeSettings) -> dict[str, ServedRun]:
    """Load every run of ``settings`` (a bad run directory is a :class:`CrossfuseError`)."""
    from .api import load

    runs = {}
    for name, path in settings.runs.items():
        predictor = load(path, device=settings.device)
        runs[name] = ServedRun(name, predictor, serve_limits(predictor.config.serve, settings.limits))
    return runs


def create_app(runs: dict[str, ServedRun], token: str | None = None) -> Any:
    """The FastAPI app serving ``runs`` (by name); with ``token``, every route but /health needs
    ``Authorization: Bearer TOKEN``."""
    try:
        from contextlib import asynccontextmanager

        from fastapi import FastAPI, Request
        from fastapi.exceptions import RequestValidationError
        from starlette.exceptions import HTTPException
        from starlette.responses import JSONResponse
    except ImportError as exc:
        raise CrossfuseError(f"{INSTALL_HINT} ({exc})") from None

    @asynccontextmanager
    async def lifespan(app: Any):
        yield
        for run in runs.values():
            run.close()

    app = FastAPI(title="crossfuse serve", version=_version(), lifespan=lifespan,
                  description="Predictions of trained crossfuse runs: " + ", ".join(
                      f"{name} ({run.task.name})" for name, run in runs.items()))

    def error(status: int, message: str, headers: dict[str, str] | None = None) -> Any:
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    @app.middleware("http")
    async def authorize(request: Request, call_next: Any) -> Any:
        if token and request.url.path != "/health":
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
                return error(401, "missing or wrong token: send the header 'Authorization: Bearer TOKEN'",
                             {"WWW-Authenticate": "Bearer"})
        return await call_next(request)

    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError) -> Any:
        return error(exc.status, str(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Any:
        return error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Any:
        return error(422, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> Any:
        log.error("unexpected error answering %s %s", request.method, request.url.path, exc_info=exc)
        return error(500, f"internal error ({type(exc).__name__}: {exc}); the server log holds the traceback")

    def lookup(name: str | None) -> ServedRun:
        if name is None:
            if len(runs) == 1:
                return next(iter(runs.values()))
            raise RequestError(404, f"{len(runs)} runs are served: use /runs/NAME/... with NAME one of "
                                    f"{', '.join(runs)}")
        if name not in runs:
            raise RequestError(404, f"no run named {name!r}; served runs: {', '.join(runs)}")
        return runs[name]

    @app.get("/health", summary="Liveness and the names of the runs loaded (no token needed)")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "runs": list(runs)}

    @app.get("/info", summary="The one served run: task, labels, backbone, metrics, options, limits")
    async def info() -> dict[str, Any]:
        return lookup(None).info()

    @app.get("/runs/{name}/info", summary="A served run: task, labels, backbone, metrics, options, limits")
    async def run_info(name: str) -> dict[str, Any]:
        return lookup(name).info()

    @app.post("/predict", summary="Predictions of the one served run (see /runs/{name}/predict)")
    async def predict_default(request: Request) -> Any:
        return await predict(lookup(None), request)

    @app.post("/runs/{name}/predict", summary='JSON {"inputs": [texts], "options": {}} or multipart files + options')
    async def predict_named(name: str, request: Request) -> Any:
        return await predict(lookup(name), request)

    return app


def app_from_env() -> Any:
    """App factory for uvicorn workers (``crossfuse.serve:app_from_env``): settings from ``$CROSSFUSE_SERVE_SETTINGS``."""
    text = os.environ.get(SETTINGS_ENV)
    if not text:
        raise CrossfuseError(f"${SETTINGS_ENV} is unset: start the service with `crossfuse serve RUN_DIR ...`")
    settings = ServeSettings.from_json(text)
    return create_app(load_runs(settings), token=settings.token)


def check_runs(settings: ServeSettings) -> None:
    """Cheap checks before worker processes start: each folder is a run of a registered task, its limits valid."""
    from .api import task_class, typed_config
    from .runs import RunDir

    for path in settings.runs.values():
        run = RunDir.open(path)
        saved = run.read_config()
        config = typed_config(saved, task_class(saved.get("task", "")), source=str(run.path / "config.yaml"))
        serve_limits(config.serve, settings.limits)
        run.best_weights()


def serve(settings: ServeSettings, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          log_level: str = "info") -> None:
    """Serve ``settings.runs`` until interrupted: in this process, or in ``workers`` uvicorn processes
    that each load the runs (and batch their own requests)."""
    try:
        import uvicorn
    except ImportError as exc:
        raise CrossfuseError(f"{INSTALL_HINT} ({exc})") from None
    if workers > 1:
        check_runs(settings)
        _announce(settings, host, port, f"; {workers} worker processes, each batching its own requests")
        os.environ[SETTINGS_ENV] = settings.to_json()
        uvicorn.run("crossfuse.serve:app_from_env", factory=True, host=host, port=port, workers=workers,
                    log_level=log_level)
        return
    app = create_app(load_runs(settings), token=settings.token)
    _announce(settings, host, port, "")
    uvicorn.run(app, host=host, port=port, log_level=log_level)


def _announce(settings: ServeSettings, host: str, port: int, extra: str) -> None:
    import sys

    base = f"http://{host}:{port}"
    routes = ", ".join(f"{name}: {base}/runs/{name}/predict" for name in settings.runs)
    token = "a bearer token" if settings.token else "no token"
    print(f"crossfuse serve: {routes} (docs {base}/docs; {token}{extra})", file=sys.stderr, flush=True)


def _version() -> str:
    from . import __version__

    return __version__


# -- in-process server (tests, benchmarks) ----------------------------------------------------


class BackgroundServer:
    """``app`` served by uvicorn in a thread on ``host``:``port`` (0: a free port), for tests and benchmarks.

    >>> with BackgroundServer(create_app(runs)) as server:        # doctest: +SKIP
    ...     httpx.get(server.url + "/health").json()
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0):
        import socket

        import uvicorn

        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((host, port))
        self.host, self.port = self.socket.getsockname()[:2]
        self.url = f"http://{self.host}:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.thread: Any = None

    def __enter__(self) -> "BackgroundServer":
        import threading

        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server on {self.url} did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.socket.close()
