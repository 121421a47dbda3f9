"""Examples, stratified splits, case tables for fusion predictions, and which parameters are fresh."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from crossfuse.errors import DataError
from crossfuse_medical.images import MedicalImage
from crossfuse_medical.labels import LabelSpace
from crossfuse_medical.samples import encode, read_cases, sampling_key, stratified_split

from medical_files import write_csv, write_png

FINDINGS = ("effusion", "nodule")


def films(labels):
    return [MedicalImage(np.zeros((8, 8), np.uint8), tuple(row), FINDINGS, f"x.npz, train_images[{i}]")
            for i, row in enumerate(labels)]


def test_encode_lines_labels_up_with_the_space_by_name():
    space = LabelSpace("multilabel", ("nodule", "effusion"))
    examples = encode(space, films([(1, 0), (0, 1), (1, 1)]), "validation")
    assert [e.target for e in examples] == [(0, 1), (1, 0), (1, 1)]
    assert [sampling_key(e, space) for e in examples] == [(1,), (0,), (0, 1)]
    binary = LabelSpace("binary", ("normal", "pneumonia"))
    sample = MedicalImage("a.png", (0,), ("pneumonia", "normal"), "a.csv, line 2")
    assert encode(binary, [sample], "test")[0].target == (1,)


def test_stratified_split_keeps_combinations_on_both_sides():
    labels = [(0, 0)] * 60 + [(1, 0)] * 20 + [(0, 1)] * 16 + [(1, 1)] * 3 + [(1, 1)] * 0 + [(0, 0)]
    samples = films(labels)
    rest, held = stratified_split(samples, 0.2, "validation", seed=1)
    assert len(held) == 20 and len(rest) == 80 and not {id(s) for s in rest} & {id(s) for s in held}
    shares = Counter(s.labels for s in held)
    assert shares[(0, 0)] == 12 and shares[(1, 0)] == 4 and shares[(0, 1)] >= 3
    again, _ = stratified_split(samples, 0.2, "validation", seed=1)
    assert [id(s) for s in again] == [id(s) for s in rest]  # seeded


def test_stratified_split_of_tiny_data_falls_back_to_random_and_refuses_nothing_left():
    rest, held = stratified_split(films([(1, 0), (0, 1), (0, 0)]), 0.34, "validation", seed=0)
    assert (len(rest), len(held)) == (2, 1)
    with pytest.raises(DataError, match="leave no test split"):
        stratified_split(films([(1, 0), (0, 1)]), 0.1, "test", seed=0)


def test_case_tables_pair_images_with_notes(tmp_path):
    write_png(tmp_path / "img" / "a.png")
    write_csv(tmp_path / "cases.csv", ["Path", "Note"], [["img/a.png", "fever, ?consolidation"], ["img/a.png", " "]])
    cases = read_cases(tmp_path / "cases.csv")
    assert [(where.rsplit("/", 1)[-1], image.note) for where, image in cases] == [
        ("cases.csv, line 2", "fever, ?consolidation"), ("cases.csv, line 3", None)]
    (tmp_path / "cases.jsonl").write_text('{"image": "img/a.png", "note": "orthopnoea"}\n\n{"image": "img/b.png"}\n')
    with pytest.raises(DataError, match=r"cases.jsonl, line 3: image .*b.png does not exist"):
        read_cases(tmp_path / "cases.jsonl")
    write_csv(tmp_path / "bare.csv", ["image", "label"], [["img/a.png", "1"]])
    with pytest.raises(DataError, match=r"bare.csv: no column 'note'"):
        read_cases(tmp_path / "bare.csv")


def test_a_randomly_initialised_image_backbone_learns_at_the_head_rate():
    import crossfuse
    from crossfuse.backbones import build_backbone
    from crossfuse_medical.image_report import MedicalImageReportTask

    config = crossfuse.resolve_config("medical-image-report", overrides=[
        "backbones.image.name=tiny-cnn", "backbones.text.name=tiny-bert", "backbones.image.in_channels=1"])
    task = MedicalImageReportTask(config)
    task.space = LabelSpace("multilabel", FINDINGS)
    task.backbones = {"image": build_backbone(config.backbones["image"]), "text": build_backbone("tiny-bert")}
    model = task.build_model(task.backbones)
    fresh = {id(p) for p in task.fresh_parameters(model)}
    assert all(id(p) in fresh for p in model.image.parameters())  # pretrained: false in the defaults
    assert not any(id(p) in fresh for p in model.text.parameters())  # pretrained text encoder: train.lr
    assert all(id(p) in fresh for p in model.fusion.parameters())
