"""Shared fixtures of the smart-home tests: the shipped demo archive, expanded once per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def demo_folder(tmp_path_factory):
    """The demo archive expanded into a temporary folder (not the user's cache)."""
    from crossfuse_smarthome.demo import DEMO_ARCHIVE, expand_demo

    return expand_demo(DEMO_ARCHIVE, tmp_path_factory.mktemp("smarthome-demo"))
