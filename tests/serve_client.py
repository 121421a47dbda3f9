"""Helpers of the `crossfuse serve` tests: loaded runs served on a free loopback port, real HTTP requests."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Iterator

import httpx


class CountedPredictor:
    """Wraps a Predictor's ``predict`` so a test sees every model call (its inputs and options)."""

    def __init__(self, predictor: Any):
        self.predictor, self.calls = predictor, []
        original = predictor.predict

        def predict(inputs, **options):
            self.calls.append((list(inputs), options))
            return original(inputs, **options)

        predictor.predict = predict
        self.original = original


@contextlib.contextmanager
def served(runs: dict[str, Any], token: str | None = None, **limits: Any) -> Iterator[Any]:
    """``runs`` (name -> loaded Predictor) served in a background thread; yields the server (``.url``)."""
    from crossfuse.serve import BackgroundServer, ServedRun, create_app, serve_limits

    loaded = {name: ServedRun(name, p, serve_limits(p.config.serve, limits)) for name, p in runs.items()}
    with BackgroundServer(create_app(loaded, token=token)) as server:
        server.runs = loaded
        yield server


def upload(url: str, paths: list[Path], fields: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
    """POST ``paths`` as multipart files (field ``files``, in order) plus option ``fields``."""
    files = [("files", (Path(p).name, Path(p).read_bytes(), "application/octet-stream")) for p in paths]
    return httpx.post(url, files=files, data=fields or {}, timeout=60, **kwargs)


def by_name(predictions: Any, names: dict[str, str]) -> Any:
    """``predictions`` (what Predictor.predict returned for files) as the service names them: each
    file path replaced by the uploaded file's name, through JSON like the wire."""
    text = json.dumps(predictions, default=str)
    for path, name in names.items():
        text = text.replace(json.dumps(path)[1:-1], name)
    return json.loads(text)
