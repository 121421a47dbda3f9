"""One tiny trained face run shared by the tests that only read it."""

from __future__ import annotations

import pytest

# 8 people x 4 faces of 32 px for training (2 of them held out for validation), 6 test people.
TINY = ["data.demo.train_identities=8", "data.demo.train_images=4", "data.demo.test_identities=6",
        "data.demo.test_images=3", "data.demo.size=32", "data.demo.folds=2", "data.demo.pairs_per_fold=4",
        "data.validation_fraction=0.25", "data.validation_pair_count=20", "backbone.image_size=32",
        "head.embedding_dim=16", "train.batch_size=16"]


@pytest.fixture(scope="session")
def tiny_face_run(tmp_path_factory):
    """security-face-match on a tiny synthetic LFW set, tiny-cnn, one epoch."""
    from crossfuse.testing import smoke_fit

    return smoke_fit("security-face-match", tmp_path_factory.mktemp("tiny") / "run", backbone="tiny-cnn",
                     overrides=TINY)
