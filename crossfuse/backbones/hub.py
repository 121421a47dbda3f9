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


def hub_endpoint() -> str:
    """The Hugging Face Hub address downloads go to (``HF_ENDPOINT`` when set)."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def download_hint(repo: str) -> str:
    """What to do when ``repo`` cannot be downloaded here: fetch it elsewhere with the ``hf`` command."""
    return (f"Download it where there is a network (`hf download {repo} --local-dir DIR`), copy DIR here and pass "
            f"--backbone DIR.")


def cached_hub_file(repo: str, filename: str, revision: str | None = None) -> str | None:
    """The local path of ``filename`` from ``repo`` in the Hugging Face cache, or None; never touches the network."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo, filename, revision=revision)
    except ValueError:  # not a valid repo id: certainly not cached
        return None
    return found if isinstance(found, str) else None  # a sentinel object marks files known to be absent


def hub_options(repo: str) -> dict[str, bool]:
    """``from_pretrained`` options for ``repo``: the local cache without a network, else a checked download.

    Raises a :class:`CrossfuseError` at once when ``repo`` is not cached and the Hub cannot be reached.
    """
    endpoint = hub_endpoint()
    if cached_hub_file(repo, "config.json") and (offline_requested() or not reachable(endpoint)):
        # The cache answers without the network; transformers then fails fast if a file is missing.
        return {"local_files_only": True}
    ensure_downloadable(endpoint, f"Hugging Face model {repo!r}", download_hint(repo))
    return {}
