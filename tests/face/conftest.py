"""One tiny trained face run shared by the tests that only read it."""

from __future__ import annotations

import pytest

from face_files import TINY


@pytest.fixture(scope="session")
def tiny_face_run(tmp_path_factory):
    """security-face-match on a tiny synthetic LFW set, tiny-cnn, one epoch."""
    from crossfuse.testing import smoke_fit

    return smoke_fit("security-face-match", tmp_path_factory.mktemp("tiny") / "run", backbone="tiny-cnn",
                     overrides=TINY)
