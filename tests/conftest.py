"""Shared fixtures: keep every test offline, single-threaded enough for 2 cores, and isolated."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Demo data the tests generate goes to a temporary cache, never the user's ~/.cache."""
    os.environ["CROSSFUSE_CACHE"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(autouse=True)
def _fresh_plugins(monkeypatch):
    """Each test sees a plugin manager built from the environment it sets up."""
    from crossfuse.plugins import reset_plugin_manager

    reset_plugin_manager()
    yield
    reset_plugin_manager()


@pytest.fixture(autouse=True)
def _run_in_tmp(tmp_path, monkeypatch):
    """Relative paths (the default runs/ folder) land in the test's own directory."""
    monkeypatch.chdir(tmp_path)
