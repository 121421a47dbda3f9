"""One tiny trained finance run shared by the tests that only read it."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """finance-sentiment on the demo data, tiny-bert, one epoch (a few seconds)."""
    from crossfuse.testing import smoke_fit

    return smoke_fit("finance-sentiment", tmp_path_factory.mktemp("tiny") / "run",
                     overrides=["train.batch_size=32", "train.lr=1e-3"])

