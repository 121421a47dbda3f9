"""The label space: problem type and output names from the data, encoding by name across splits, state."""

from __future__ import annotations

import numpy as np
import pytest

from crossfuse.errors import ConfigError, DataError, DataWarning
from crossfuse_medical.images import MedicalImage
from crossfuse_medical.labels import LabelSpace, infer_label_space


def images(labels, classes):
    return [MedicalImage(np.zeros((2, 2), np.uint8), tuple(row), tuple(classes), f"item {i}")
            for i, row in enumerate(labels)]


def test_two_classes_are_binary_with_the_non_normal_class_positive():
    space = infer_label_space(images([[0], [1], [1]], ["pneumonia", "normal"]))
    assert space == LabelSpace("binary", ("normal", "pneumonia")) and space.outputs == ("pneumonia",)
    assert space.targets(images([[0], [1], [1]], ["pneumonia", "normal"])).tolist() == [[1], [0], [0]]
    assert space.uses_sigmoid


def test_binary_positive_class_by_config_or_the_second_class():
    samples = images([[0], [1]], ["benign", "malignant"])
    assert infer_label_space(samples).outputs == ("malignant",)
    assert infer_label_space(samples, positive_class="benign").classes == ("malignant", "benign")
    assert infer_label_space(images([[0], [1]], ["cat", "dog"])).outputs == ("dog",)
    with pytest.raises(ConfigError, match="data.positive_class 'tumour' is not one of the classes"):
        infer_label_space(samples, positive_class="tumour")


def test_more_classes_or_an_explicit_problem_make_a_multiclass_space():
    assert infer_label_space(images([[0], [2], [1]], ["a", "b", "c"])).kind == "multiclass"
    space = infer_label_space(images([[0], [1]], ["a", "b"]), problem="multiclass")
    assert space.kind == "multiclass" and space.outputs == ("a", "b") and not space.uses_sigmoid
    assert space.targets(images([[1], [0]], ["a", "b"])).tolist() == [1, 0]


def test_several_zero_one_labels_are_multilabel():
    space = infer_label_space(images([[1, 0, 1], [0, 1, 1]], ["effusion", "nodule", "opacity"]))
    assert space.kind == "multilabel" and space.outputs == ("effusion", "nodule", "opacity")


def test_problem_that_contradicts_the_labels_is_a_config_error():
    with pytest.raises(ConfigError, match="data.problem is 'binary' but the labels name 3 classes"):
        infer_label_space(images([[0], [1], [2]], ["a", "b", "c"]), problem="binary")
    with pytest.raises(ConfigError, match="data.problem is 'multiclass' but the labels are 0/1 per finding"):
        infer_label_space(images([[1, 0]], ["a", "b"]), problem="multiclass")
    with pytest.raises(ConfigError, match="data.problem is 'multilabel' but each image has one class"):
        infer_label_space(images([[1], [0]], ["a", "b"]), problem="multilabel")


def test_bad_training_labels_are_data_errors():
    with pytest.raises(DataError, match="a single class"):
        infer_label_space(images([[0], [0]], ["only"]))
    with pytest.raises(DataError, match="item 1: 2 label value"):
        infer_label_space(images([[0], [1, 0]], ["a", "b"]))
    with pytest.raises(DataError, match="item 0: the training image has no label"):
        infer_label_space(images([[]], ["a", "b"]))


def test_a_class_without_training_examples_is_warned_about():
    with pytest.warns(DataWarning, match="no example of the class\\(es\\) c"):
        infer_label_space(images([[0], [1]], ["a", "b", "c"]))


def test_other_splits_are_encoded_by_name_whatever_their_order():
    space = infer_label_space(images([[0], [1], [2]], ["a", "b", "c"]))
    validation = images([[0], [1]], ["c", "a"])  # a file listing fewer classes, in another order
    assert space.targets(validation, "validation").tolist() == [2, 0]
    findings = infer_label_space(images([[1, 0], [0, 1]], ["x", "y"]))
    assert findings.targets(images([[1, 0, 1]], ["y", "z", "x"])).tolist() == [[1, 1]]


def test_a_class_training_never_named_is_an_error_naming_the_item_and_split():
    space = infer_label_space(images([[0], [1]], ["a", "b"]))
    with pytest.raises(DataError, match=r"item 0 \(test\): class 'c' does not occur in training"):
        space.targets(images([[2]], ["a", "b", "c"]), "test")
    findings = infer_label_space(images([[1, 0], [0, 1]], ["x", "y"]))
    with pytest.raises(DataError, match=r"item 0 \(validation\): the source does not list the finding\(s\) y"):
        findings.targets(images([[1, 0]], ["x", "z"]), "validation")


def test_weights_sampling_keys_counts_and_saved_state():
    samples = images([[1, 0], [0, 0], [1, 1], [0, 0]], ["x", "y"])
    space = infer_label_space(samples)
    assert space.positive_weights(samples) == [1.0, 3.0]
    assert space.sampling_keys(samples) == [(0,), (), (0, 1), ()]
    assert space.counts(samples) == {"x": 2, "y": 1}
    assert LabelSpace.from_dict(space.to_dict()) == space
    single = infer_label_space(images([[0], [2], [1]], ["a", "b", "c"]))
    assert single.positive_weights(images([[0]], ["a", "b", "c"])) is None
    assert single.sampling_keys(images([[0], [2], [2]], ["a", "b", "c"])) == [0, 2, 2]
