"""One tiny trained detection run shared by the tests that only read it."""

from __future__ import annotations

import pytest

from driving_files import TINY


@pytest.fixture(scope="session")
def tiny_detection_run(tmp_path_factory):
    """driving-detection on a tiny synthetic KITTI set, tiny-cnn, one epoch."""
    from crossfuse.testing import smoke_fit

    return smoke_fit("driving-detection", tmp_path_factory.mktemp("tiny") / "run", backbone="tiny-cnn",
                     overrides=TINY)
