"""One tiny trained detection run shared by the tests that only read it."""

from __future__ import annotations

import pytest

# A 160 x 48 demo and a 4-layer CNN: the whole fit takes a few seconds on 2 cores.
TINY = ["data.demo.train=12", "data.demo.validation=6", "data.demo.test=6", "data.demo.width=160",
        "data.demo.height=48", "data.kitti_min_height=[5,3,3]", "head.strides=[4,8,16]", "head.fpn_channels=32",
        "head.min_size=48", "head.max_size=160", "train.batch_size=4", "backbone.pretrained=false"]


@pytest.fixture(scope="session")
def tiny_detection_run(tmp_path_factory):
    """driving-detection on a tiny synthetic KITTI set, tiny-cnn, one epoch."""
    from crossfuse.testing import smoke_fit

    return smoke_fit("driving-detection", tmp_path_factory.mktemp("tiny") / "run", backbone="tiny-cnn",
                     overrides=TINY)
