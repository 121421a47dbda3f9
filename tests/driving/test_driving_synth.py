"""The synthetic KITTI demo: deterministic, read by the real reader, and laid out like a road scene."""

from __future__ import annotations

import numpy as np

from crossfuse_driving.formats import read_kitti
from crossfuse_driving.synth import CLASSES, write_kitti_demo


def test_same_seed_same_bytes_other_seed_other_scenes(tmp_path):
    first = write_kitti_demo(tmp_path / "a", 4, seed=3, width=160, height=48)
    again = write_kitti_demo(tmp_path / "b", 4, seed=3, width=160, height=48)
    other = write_kitti_demo(tmp_path / "c", 4, seed=4, width=160, height=48)
    for name in ("image_2/000002.png", "label_2/000002.txt"):
        assert (first / name).read_bytes() == (again / name).read_bytes()
    assert (first / "image_2/000002.png").read_bytes() != (other / "image_2/000002.png").read_bytes()


def test_scenes_follow_perspective_and_carry_kitti_annotations(tmp_path):
    samples = read_kitti(write_kitti_demo(tmp_path / "demo", 40, seed=0))
    objects = [o for s in samples for o in s.objects]
    assert {o.label for o in objects} == set(CLASSES)
    assert any(s.ignore for s in samples)  # far or hidden objects become DontCare
    assert any(o.occluded > 0 for o in objects) and any(o.truncated > 0 for o in objects)
    for sample in samples:
        assert (sample.width, sample.height) == (320, 96)
        for obj in sample.objects:
            x1, y1, x2, y2 = obj.box
            assert 0 <= x1 < x2 <= 319 and 0 <= y1 < y2 <= 95 and 0 <= obj.truncated <= 0.8
    # On a flat road seen from a fixed camera, whole pedestrians standing lower in the image are nearer,
    # hence taller.
    walkers = [o.box for o in objects if o.label == "Pedestrian" and o.truncated == 0 and o.occluded == 0]
    feet, heights = np.array([b[3] for b in walkers]), np.array([b[3] - b[1] for b in walkers])
    assert len(walkers) >= 5 and np.corrcoef(feet, heights)[0, 1] > 0.9
