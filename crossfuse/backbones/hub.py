"""Fail-fast checks before a download: without a network, say what to do within seconds, never hang."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

from ..errors import CrossfuseError

_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "CROSSFUSE_OFFLINE")


def offline_requested() -> bool:
    """True when the user asked for no network through the usual environment variables."""
    return any(os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on") for var in _OFFLINE_VARS)


def reachable(url: str, timeout: float = 2.0) -> bool:
    """Whether a TCP connection to ``url``'s host opens within ``timeout`` seconds."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def ensure_downloadable(url: str, what: str, instead: str) -> None:
    """Raise a :class:`CrossfuseError` at once if ``url`` cannot be downloaded now.

    ``what`` names the thing being fetched, ``instead`` tells the user how to do without.
    """
    if offline_requested():
        raise CrossfuseError(f"{what} is not available locally and downloads are off "
                             f"(HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE / CROSSFUSE_OFFLINE is set). {instead}")
    if not reachable(url):
        raise CrossfuseError(f"{what} is not available locally and {urlparse(url).hostname} cannot be reached "
                             f"(no network?). {instead}")
