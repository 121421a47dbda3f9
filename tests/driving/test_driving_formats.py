"""crossfuse_driving.formats readers on tiny datasets written into tmp_path.

KITTI (15 columns, DontCare, truncation and occlusion), COCO (xywh, iscrowd), Pascal VOC (1-based
corners, difficult); every malformed input is a DataError naming the file and the line, annotation
or object. sanitize clips and drops degenerate boxes; the core's dataset registry tells the layouts
apart (``data.format: auto``) and hands each reader its ``data.*`` options.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from crossfuse.datasets import read, resolve_format
from crossfuse.errors import ConfigError, DataError
from crossfuse_driving.formats import (
    DetectionSample,
    DetObject,
    class_names,
    read_coco,
    read_kitti,
    read_voc,
    sanitize,
    write_kitti_label,
)

from driving_files import (
    coco_document,
    kitti_line,
    voc_xml,
    write_coco,
    write_image,
    write_kitti,
    write_voc,
)


def boxes(sample):
    return [(o.label, o.box) for o in sample.objects]


# -- KITTI -------------------------------------------------------------------------------------


def test_kitti_reads_boxes_visibility_and_dontcare_regions(tmp_path):
    training = write_kitti(tmp_path / "kitti", {
        "000001": [kitti_line("Pedestrian", (30, 4, 35.5, 20))],
        "000000": [kitti_line("Car", (1.5, 2, 11, 12.25), truncated="0.50", occluded="2"),
                   kitti_line("DontCare", (20, 0, 25, 5), truncated="-1", occluded="-1"),
                   kitti_line("Cyclist", (0, 0, 40, 30), occluded="3")],
    }, width=40, height=30)
    first, second = read_kitti(training)
    assert first.image == str(training / "image_2" / "000000.png") and (first.width, first.height) == (40, 30)
    assert first.where == str(training / "label_2" / "000000.txt")
    assert boxes(first) == [("Car", (1.5, 2.0, 11.0, 12.25)), ("Cyclist", (0.0, 0.0, 40.0, 30.0))]
    assert [(o.truncated, o.occluded, o.difficult) for o in first.objects] == [(0.5, 2, False), (0.0, 3, False)]
    assert first.ignore == ((20.0, 0.0, 25.0, 5.0),)
    assert first.objects[1].where == f"{training / 'label_2' / '000000.txt'}, line 3"
    assert boxes(second) == [("Pedestrian", (30.0, 4.0, 35.5, 20.0))] and second.ignore == ()


def test_kitti_accepts_the_parent_of_training_and_jpg_images(tmp_path):
    training = write_kitti(tmp_path / "kitti", {"000000": [kitti_line("Van")]})
    write_image(training / "image_2" / "000001.jpg", 64, 48)
    (training / "label_2" / "000001.txt").write_text(kitti_line("Truck", (2, 3, 60, 40)) + "\n")
    samples = read_kitti(tmp_path / "kitti")
    assert [s.image for s in samples] == [str(training / "image_2" / "000000.png"),
                                          str(training / "image_2" / "000001.jpg")]
    assert (samples[1].width, samples[1].height) == (64, 48)
    assert boxes(samples[1]) == [("Truck", (2.0, 3.0, 60.0, 40.0))]


def test_kitti_empty_label_file_is_an_image_without_objects(tmp_path):
    training = write_kitti(tmp_path / "kitti", {"000000": []})
    (sample,) = read_kitti(training)
    assert sample.objects == () and sample.ignore == ()


def test_kitti_result_lines_with_a_score_column_are_read(tmp_path):
    training = write_kitti(tmp_path / "kitti", {"000000": [
        kitti_line("Car", (1, 2, 11, 12), truncated="-1", occluded="-1", extra=["0.93"]),
        kitti_line("Car", (5, 6, 15, 16), truncated="0.25", occluded="1", extra=["0.4"]),
    ]})
    (sample,) = read_kitti(training)
    assert boxes(sample) == [("Car", (1.0, 2.0, 11.0, 12.0)), ("Car", (5.0, 6.0, 15.0, 16.0))]
    # -1 / -1 is how result files say "unknown": not truncated, occlusion unknown (3)
    assert [(o.truncated, o.occluded) for o in sample.objects] == [(0.0, 3), (0.25, 1)]


@pytest.mark.parametrize("line, expected", [
    (kitti_line("Car")[: -len(" -10")], "found 14 columns, expected 15"),
    (kitti_line("Car", extra=["0.5", "1"]), "found 17 columns, expected 15"),
    (kitti_line("Car", ("left", 2, 11, 12)), "column 5 (bbox left) is 'left', expected a number"),
    (kitti_line("Car", (1, 2, 11, "nan")), "column 8 (bbox bottom)"),
    (kitti_line("Car", truncated="1.5"), "column 2 (truncated) is 1.5, expected a fraction from 0 to 1"),
    (kitti_line("Car", occluded="4"), "column 3 (occluded) is 4"),
    (kitti_line("Car", occluded="-1"), "column 3 (occluded) is -1"),
    (kitti_line("Car", (11, 2, 1, 12)), "reversed box (11, 2, 1, 12)"),
    (kitti_line("Car", (1, 12, 11, 2)), "reversed box"),
    (kitti_line("Car", (50, 2, 60, 12)), "box (50, 2, 60, 12) lies entirely outside the 40 x 30 image"),
    (kitti_line("Car", (-20, -9, -1, 12)), "box (-20, -9, -1, 12) lies entirely outside"),
])
def test_kitti_bad_lines_name_the_file_line_and_problem(tmp_path, line, expected):
    training = write_kitti(tmp_path / "kitti", {"000007": [kitti_line("Car"), line]})
    with pytest.raises(DataError) as error:
        read_kitti(training)
    assert f"000007.txt, line 2: {expected}" in str(error.value)


def test_kitti_image_without_label_names_both_paths(tmp_path):
    training = write_kitti(tmp_path / "kitti", {"000000": [], "000001": []})
    (training / "label_2" / "000001.txt").unlink()
    with pytest.raises(DataError) as error:
        read_kitti(training)
    message = str(error.value)
    assert str(training / "image_2" / "000001.png") in message
    assert f"no label file {training / 'label_2' / '000001.txt'}" in message


def test_kitti_label_without_image_is_an_error(tmp_path):
    training = write_kitti(tmp_path / "kitti", {"000000": []})
    (training / "label_2" / "000042.txt").write_text(kitti_line() + "\n")
    with pytest.raises(DataError, match=r"000042\.txt: no image for this label file"):
        read_kitti(training)


def test_kitti_missing_root_or_folder_is_an_error(tmp_path):
    with pytest.raises(DataError, match="is not a folder"):
        read_kitti(tmp_path / "nowhere")
    (tmp_path / "only" / "training" / "label_2").mkdir(parents=True)
    with pytest.raises(DataError, match="no image_2/ folder"):
        read_kitti(tmp_path / "only")


def test_write_kitti_label_round_trips_through_read_kitti(tmp_path):
    training = write_kitti(tmp_path / "kitti", {"000000": []}, width=100, height=50)
    objects = [DetObject("Car", (10.25, 5.5, 60.0, 40.75), truncated=0.33, occluded=1),
               DetObject("Pedestrian", (70, 10, 80, 49), occluded=2)]
    path = write_kitti_label(training / "label_2" / "000000.txt", objects, ignore=[(0, 0, 5.5, 5)])
    columns = [line.split() for line in path.read_text().splitlines()]
    assert [len(c) for c in columns] == [15, 15, 15]
    assert columns[0][3:4] + columns[0][8:] == ["-10", "-1", "-1", "-1", "-1000", "-1000", "-1000", "-10"]
    assert columns[2][:3] == ["DontCare", "-1", "-1"]
    (sample,) = read_kitti(training)
    assert boxes(sample) == [("Car", (10.25, 5.5, 60.0, 40.75)), ("Pedestrian", (70.0, 10.0, 80.0, 49.0))]
    assert [(o.truncated, o.occluded) for o in sample.objects] == [(0.33, 1), (0.0, 2)]
    assert sample.ignore == ((0.0, 0.0, 5.5, 5.0),)
    assert not list((training / "label_2").glob("*.tmp"))


def test_write_kitti_label_refuses_a_label_with_spaces(tmp_path):
    with pytest.raises(DataError, match="must be one word"):
        write_kitti_label(tmp_path / "x.txt", [DetObject("traffic light", (0, 0, 1, 1))])
    assert not (tmp_path / "x.txt").exists()


# -- COCO --------------------------------------------------------------------------------------


def test_coco_converts_xywh_keeps_empty_images_and_ignores_crowds(tmp_path):
    path = write_coco(tmp_path / "coco", coco_document([
        {"id": 7, "image_id": 1, "category_id": 1, "bbox": [2.5, 3, 10, 4.5], "iscrowd": 0},
        {"id": 8, "image_id": 1, "category_id": 2, "bbox": [20, 0, 5, 30]},
        {"id": 9, "image_id": 1, "category_id": 2, "bbox": [0, 20, 40, 10], "iscrowd": 1},
    ]))
    first, second = read_coco(path)
    assert first.image == str(tmp_path / "coco" / "a.jpg") and (first.width, first.height) == (40, 30)
    assert boxes(first) == [("car", (2.5, 3.0, 12.5, 7.5)), ("person", (20.0, 0.0, 25.0, 30.0))]
    assert first.ignore == ((0.0, 20.0, 40.0, 30.0),)
    assert first.objects[0].where == f"{path}, annotation id 7" and first.where == str(path)
    assert second.image == str(tmp_path / "coco" / "b.jpg") and second.objects == () and second.ignore == ()


def test_coco_image_root_points_elsewhere(tmp_path):
    document = coco_document([{"id": 1, "image_id": 2, "category_id": 1, "bbox": [1, 1, 2, 2]}])
    path = write_coco(tmp_path / "annotations", document, with_images=False)
    for image in document["images"]:
        write_image(tmp_path / "images" / image["file_name"])
    samples = read_coco(path, image_root=tmp_path / "images")
    assert [s.image for s in samples] == [str(tmp_path / "images" / "a.jpg"), str(tmp_path / "images" / "b.jpg")]
    with pytest.raises(DataError, match=r"image id 1: image file .*a\.jpg does not exist; set data.image_root"):
        read_coco(path)


def test_coco_malformed_json_gives_line_and_column(tmp_path):
    path = tmp_path / "instances.json"
    path.write_text('{"images": [],\n "annotations": [,]}\n')
    with pytest.raises(DataError, match=r"instances\.json, line 2, column 18: not valid JSON"):
        read_coco(path)


def test_coco_missing_top_level_key_is_named(tmp_path):
    document = coco_document([])
    del document["categories"]
    path = write_coco(tmp_path, document)
    with pytest.raises(DataError, match=r"instances\.json, top level: missing key\(s\) 'categories'"):
        read_coco(path)


@pytest.mark.parametrize("annotation, expected", [
    ({"image_id": 5, "category_id": 1, "bbox": [1, 1, 2, 2]}, "image_id 5 is not in 'images'"),
    ({"image_id": 1, "category_id": 3, "bbox": [1, 1, 2, 2]}, "category_id 3 is not in 'categories'"),
    ({"image_id": 1, "category_id": 1, "bbox": [1, 1, 2]}, "bbox is [1, 1, 2], expected 4 numbers"),
    ({"image_id": 1, "category_id": 1, "bbox": [1, "a", 2, 2]}, "bbox is [1, 'a', 2, 2], expected 4 numbers"),
    ({"image_id": 1, "category_id": 1, "bbox": [1, 1, -2, 2]}, "bbox [1, 1, -2, 2] has a negative width"),
    ({"image_id": 1, "category_id": 1}, "missing key(s) 'bbox'"),
])
def test_coco_bad_annotations_name_the_annotation_id(tmp_path, annotation, expected):
    good = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2]}
    path = write_coco(tmp_path, coco_document([good, {"id": 17, **annotation}]))
    with pytest.raises(DataError) as error:
        read_coco(path)
    assert f"instances.json, annotation id 17: {expected}" in str(error.value)


# -- Pascal VOC --------------------------------------------------------------------------------


def test_voc_shifts_one_based_corners_and_keeps_difficult(tmp_path):
    root = write_voc(tmp_path / "VOC2012", {
        "000002": voc_xml("000002.jpg", [("person", (1, 1, 40, 30), 0)]),
        "000001": voc_xml("000001.jpg", [("car", (5, 6, 20, 18), 0), ("bicycle", (10.5, 2, 12, 9), 1)]),
    })
    first, second = read_voc(root)
    assert first.image == str(root / "JPEGImages" / "000001.jpg") and (first.width, first.height) == (40, 30)
    assert boxes(first) == [("car", (4.0, 5.0, 20.0, 18.0)), ("bicycle", (9.5, 1.0, 12.0, 9.0))]
    assert [o.difficult for o in first.objects] == [False, True]
    assert first.objects[1].where == f"{root / 'Annotations' / '000001.xml'}, object 2"
    assert boxes(second) == [("person", (0.0, 0.0, 40.0, 30.0))]  # the whole 40 x 30 image


def test_voc_truncated_flag_becomes_a_fraction(tmp_path):
    obj = ("<object><name>car</name><truncated>1</truncated>"
           "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>")
    (sample,) = read_voc(write_voc(tmp_path, {"a": voc_xml("a.jpg", [obj])}))
    assert sample.objects[0].truncated == 1.0 and sample.objects[0].difficult is False


def test_voc_image_set_selects_ids_in_its_order(tmp_path):
    root = write_voc(tmp_path, {name: voc_xml(f"{name}.jpg", [("dog", (1, 1, 3, 3), 0)]) for name in "abc"},
                     image_sets={"train": ["c", "a"]})
    assert [s.image for s in read_voc(root, image_set="train")] == [str(root / "JPEGImages" / "c.jpg"),
                                                                    str(root / "JPEGImages" / "a.jpg")]
    with pytest.raises(DataError, match=r"Main/val\.txt does not exist; known sets: train"):
        read_voc(root, image_set="val")


def test_voc_malformed_xml_gives_the_line(tmp_path):
    root = write_voc(tmp_path, {"a": "<annotation>\n<filename>a.jpg</filename>\n<size></annotation>\n"})
    with pytest.raises(DataError, match=r"a\.xml, line 3, column \d+: not valid XML"):
        read_voc(root)


@pytest.mark.parametrize("obj, expected", [
    ("<object><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>",
     "object 2: missing <name>"),
    ("<object><name>car</name></object>", "object 2: missing <bndbox>"),
    ("<object><name>car</name><bndbox><xmin>1</xmin><ymin>1</ymin><ymax>5</ymax></bndbox></object>",
     "object 2: missing <bndbox/xmax>"),
    ("<object><name>car</name><bndbox><xmin>1</xmin><ymin>one</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>",
     "object 2: <bndbox/ymin> is 'one', expected a number"),
])
def test_voc_bad_objects_name_the_tag_and_object(tmp_path, obj, expected):
    root = write_voc(tmp_path, {"a": voc_xml("a.jpg", [("car", (1, 1, 5, 5), 0), obj])})
    with pytest.raises(DataError) as error:
        read_voc(root)
    assert f"a.xml, {expected}" in str(error.value)


def test_voc_missing_size_tag_is_named(tmp_path):
    root = write_voc(tmp_path, {"a": "<annotation><filename>a.jpg</filename></annotation>"})
    with pytest.raises(DataError, match=r"a\.xml: missing <size/width>"):
        read_voc(root)


# -- sanitize, dispatch, counts ----------------------------------------------------------------


def test_sanitize_drops_degenerate_boxes_clips_and_keeps_border_boxes():
    sample = DetectionSample("x.png", 100, 50, (
        DetObject("Car", (10.0, 10.0, 10.0, 30.0)),       # zero width
        DetObject("Car", (0.0, 0.0, 100.0, 50.0)),        # touches every border
        DetObject("Car", (-5.0, 40.0, 20.0, 60.0)),       # partly outside
        DetObject("Car", (90.0, 49.5, 120.0, 80.0)),      # half a pixel high once clipped
    ), ignore=((-10.0, -10.0, 5.0, 5.0), (100.0, 0.0, 110.0, 10.0)))
    cleaned, removed = sanitize(sample)
    assert removed == 2
    assert [o.box for o in cleaned.objects] == [(0.0, 0.0, 100.0, 50.0), (0.0, 40.0, 20.0, 50.0)]
    assert cleaned.objects[0] is sample.objects[1]
    assert cleaned.ignore == ((0.0, 0.0, 5.0, 5.0),)


def test_sanitize_min_size_is_a_threshold_in_pixels():
    sample = DetectionSample("x.png", 100, 50, (DetObject("Car", (0, 0, 3, 10)), DetObject("Car", (0, 0, 4, 10))))
    cleaned, removed = sanitize(sample, min_size=4.0)
    assert removed == 1 and [o.box for o in cleaned.objects] == [(0, 0, 4, 10)]


TASK = "driving-detection"


def test_auto_format_tells_the_layouts_apart(tmp_path):
    training = write_kitti(tmp_path / "kitti", {"000000": [kitti_line("Car", (1, 2, 3, 4))]})
    coco = write_coco(tmp_path / "coco", coco_document([{"id": 1, "image_id": 1, "category_id": 2,
                                                         "bbox": [1, 2, 3, 4]}]))
    voc = write_voc(tmp_path / "voc", {"a": voc_xml("a.jpg", [("dog", (2, 3, 4, 5), 0)])})
    for path, expected in ((tmp_path / "kitti", "kitti"), (training, "kitti"), (coco, "coco"), (voc, "voc")):
        assert resolve_format(TASK, path, "auto").name == expected


def test_registered_readers_take_their_options_from_the_data_section(tmp_path):
    training = write_kitti(tmp_path / "kitti", {"000000": [kitti_line("Car", (1, 2, 3, 4))]})
    (training / "image_2").rename(training / "left")
    options = SimpleNamespace(image_dir="left", label_dir="label_2", image_set=None, image_root=None)
    assert boxes(read(TASK, tmp_path / "kitti", "kitti", options)[0]) == [("Car", (1.0, 2.0, 3.0, 4.0))]
    document = coco_document([{"id": 1, "image_id": 2, "category_id": 2, "bbox": [1, 2, 3, 4]}])
    coco = write_coco(tmp_path / "annotations", document, with_images=False)
    for image in document["images"]:
        write_image(tmp_path / "images" / image["file_name"])
    options.image_root = str(tmp_path / "images")
    assert [s.image for s in read(TASK, coco, "auto", options)] == [str(tmp_path / "images" / "a.jpg"),
                                                                    str(tmp_path / "images" / "b.jpg")]
    voc = write_voc(tmp_path / "voc", {n: voc_xml(f"{n}.jpg", [("dog", (2, 3, 4, 5), 0)]) for n in "ab"},
                    image_sets={"val": ["b"]})
    options.image_set = "val"
    assert [s.image for s in read(TASK, voc, "auto", options)] == [str(voc / "JPEGImages" / "b.jpg")]


def test_auto_format_says_what_it_looked_for(tmp_path):
    (tmp_path / "photos").mkdir()
    with pytest.raises(DataError) as error:
        resolve_format(TASK, tmp_path / "photos", "auto")
    message = str(error.value)
    for expected in ("photos", ".json", "Annotations/", "label_2/", "training/label_2/", "data.format"):
        assert expected in message
    with pytest.raises(ConfigError, match="unknown format 'yolo' for driving-detection; choose one of auto, demo, coco, "
                                          "kitti, voc"):
        resolve_format(TASK, tmp_path / "photos", "yolo")


def test_class_names_counts_objects_per_label():
    samples = [DetectionSample("a", 9, 9, (DetObject("Car", (0, 0, 1, 1)), DetObject("Van", (0, 0, 1, 1)))),
               DetectionSample("b", 9, 9, (DetObject("Car", (0, 0, 1, 1)),), ignore=((0, 0, 2, 2),))]
    counts = class_names(samples)
    assert counts == {"Car": 2, "Van": 1} and list(counts) == ["Car", "Van"]


def test_coco_json_column_is_one_based(tmp_path):
    # json.JSONDecodeError columns are 1-based already; the message must not shift them
    path = tmp_path / "instances.json"
    path.write_text("{\n  x}")
    with pytest.raises(DataError, match=r"line 2, column 3"):
        read_coco(path)
