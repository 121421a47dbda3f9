"""crossfuse: foundation-model backbones for domain problems, through plugins.

Importing this package is cheap (no torch): the API functions load what they need on call.

>>> import crossfuse
>>> [t["name"] for t in crossfuse.list_tasks()]          # doctest: +SKIP
['finance-sentiment']
"""

from __future__ import annotations

from typing import Any

from .errors import ConfigError, CrossfuseError, DataError, UnknownNameError
from .hookspecs import hookimpl

__version__ = "0.1.0"

_API = ("run", "load", "evaluate", "list_tasks", "list_backbones", "get_backbone", "resolve_config", "Predictor",
        "RunResult")

__all__ = ["hookimpl", "CrossfuseError", "ConfigError", "DataError", "UnknownNameError", "__version__", *_API]


def __getattr__(name: str) -> Any:
    # The API module imports the plugin manager; keep `import crossfuse` itself minimal.
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'crossfuse' has no attribute {name!r}")
