"""Readers for 2D detection datasets: KITTI object, COCO instances JSON and Pascal VOC XML.

Each reader returns :class:`DetectionSample` items whose boxes are ``x1, y1, x2, y2`` floats in
0-based pixel coordinates, whatever the file wrote (COCO ``[x, y, w, h]``, VOC 1-based corners).
Regions that count neither as objects nor as background (KITTI ``DontCare``, COCO ``iscrowd``)
go to ``ignore``. Errors are :class:`~crossfuse.errors.DataError` naming the file, the line,
annotation or object, what was expected and what to do. No torch here: numpy, PIL, stdlib.
"""

from __future__ import annotations

import json
import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from PIL import Image

from crossfuse.errors import DataError
from crossfuse.media import lines, read_text

Box = tuple[float, float, float, float]

KITTI_COLUMNS = ("type", "truncated", "occluded", "alpha", "bbox left", "bbox top", "bbox right", "bbox bottom",
                 "height", "width", "length", "location x", "location y", "location z", "rotation_y", "score")
# What KITTI itself writes for a field it does not know: alpha, then dimensions, location, rotation_y.
KITTI_UNKNOWN_ALPHA = "-10"
KITTI_UNKNOWN_3D = "-1 -1 -1 -1000 -1000 -1000 -10"


@dataclass(frozen=True)
class DetObject:
    """One labelled box. ``where`` ("file, line 3", "file, annotation id 17", "file, object 2") is for messages."""

    label: str
    box: Box
    truncated: float = 0.0
    occluded: int = 0
    difficult: bool = False
    where: str = ""


@dataclass(frozen=True)
class DetectionSample:
    """One image with its objects and its ignore regions; ``where`` is the label or annotation file."""

    image: str
    width: int
    height: int
    objects: tuple[DetObject, ...]
    ignore: tuple[Box, ...] = ()
    where: str = ""


# -- shared checks -----------------------------------------------------------------------------


def _finite(text: Any) -> float | None:
    """``text`` as a finite float, or None. JSON booleans are not numbers here."""
    if isinstance(text, bool):
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _format_box(box: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in box) + ")"


def _check_not_reversed(box: Box, where: str) -> None:
    if box[2] < box[0] or box[3] < box[1]:
        raise DataError(f"{where}: reversed box {_format_box(box)}: expected left <= right and top <= bottom; "
                        f"check the column order (x1, y1, x2, y2)")


def image_size(path: str | Path, where: str | None = None) -> tuple[int, int]:
    """Width and height from the image header (PIL does not decode the pixels for this).

    ``where`` (a label or annotation file) says who referred to the image, for the error message.
    """
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, SyntaxError, ValueError) as exc:
        referred = f"; referred to by {where}" if where else ""
        raise DataError(f"{path}: cannot read the image ({exc}){referred}; replace or remove the file") from None


# -- KITTI -------------------------------------------------------------------------------------


def _kitti_root(root: Path, image_dir: str, label_dir: str) -> Path:
    """``root`` itself or its ``training/`` folder, whichever holds the label folder."""
    if not root.is_dir():
        raise DataError(f"KITTI root {str(root)!r} is not a folder; give the training/ folder that holds "
                        f"{image_dir}/ and {label_dir}/")
    if not (root / label_dir).is_dir() and (root / "training" / label_dir).is_dir():
        root = root / "training"
    for folder in (label_dir, image_dir):
        if not (root / folder).is_dir():
            raise DataError(f"KITTI root {root}: no {folder}/ folder (looked in {root} and {root / 'training'}); "
                            f"expected training/{{{image_dir},{label_dir}}}, or set data.image_dir / data.label_dir")
    return root


def _kitti_pairs(root: Path, image_dir: str, label_dir: str, image_exts: Sequence[str]) -> list[tuple[Path, Path]]:
    """(image, label) paths matched by file stem; any image or label without its partner is an error."""
    exts = {e.lower() for e in image_exts}
    images: dict[str, Path] = {}
    for path in sorted((root / image_dir).iterdir()):
        if path.suffix.lower() in exts:
            if path.stem in images:
                raise DataError(f"{root / image_dir}: two images named {path.stem}: {images[path.stem].name} and "
                                f"{path.name}; keep one")
            images[path.stem] = path
    labels = {p.stem: p for p in (root / label_dir).glob("*.txt")}
    for stem, image in images.items():
        if stem not in labels:
            raise DataError(f"{image}: no label file {root / label_dir / (stem + '.txt')}; add one (an empty file "
                            f"means no objects) or remove the image")
    for stem, label in sorted(labels.items()):
        if stem not in images:
            raise DataError(f"{label}: no image for this label file (looked for {stem}{{{','.join(image_exts)}}} "
                            f"in {root / image_dir}); add the image or remove the label file")
    return [(images[stem], labels[stem]) for stem in sorted(images)]


def _kitti_fields(line: str, where: str) -> list[float]:
    """Columns 2.. of one line as floats; the column count and every number checked."""
    parts = line.split()
    if len(parts) not in (15, 16):
        raise DataError(f"{where}: found {len(parts)} columns, expected 15 (type, truncated, occluded, alpha, "
                        f"bbox left top right bottom, dimensions h w l, location x y z, rotation_y; "
                        f"a 16th score column is allowed)")
    values = []
    for column, text in enumerate(parts[1:], start=2):
        value = _finite(text)
        if value is None:
            raise DataError(f"{where}: column {column} ({KITTI_COLUMNS[column - 1]}) is {text!r}, expected a number")
        values.append(value)
    return values


def _kitti_visibility(truncated: float, occluded: float, result_line: bool, where: str) -> tuple[float, int]:
    # Result files (16 columns) write -1 for both: unknown, read as not truncated and occlusion unknown.
    if result_line and truncated == -1 and occluded == -1:
        return 0.0, 3
    if not 0.0 <= truncated <= 1.0:
        raise DataError(f"{where}: column 2 (truncated) is {truncated:g}, expected a fraction from 0 to 1")
    if occluded not in (0, 1, 2, 3):
        raise DataError(f"{where}: column 3 (occluded) is {occluded:g}, expected 0 (fully visible), 1 (partly), "
                        f"2 (largely occluded) or 3 (unknown)")
    return truncated, int(occluded)


def _check_inside(box: Box, width: int, height: int, image: Path, where: str) -> None:
    if box[2] < 0 or box[3] < 0 or box[0] > width or box[1] > height:
        raise DataError(f"{where}: box {_format_box(box)} lies entirely outside the {width} x {height} image "
                        f"{image}; check the coordinates, or that the label file belongs to this image")


def _read_kitti_label(label: Path, image: Path) -> DetectionSample:
    width, height = image_size(image, str(label))
    objects, ignore = [], []
    for number, line in enumerate(lines(read_text(label)), start=1):
        if not line.strip():
            continue
        where = f"{label}, line {number}"
        values = _kitti_fields(line, where)
        kind, box = line.split()[0], tuple(values[3:7])
        _check_not_reversed(box, where)
        _check_inside(box, width, height, image, where)
        if kind == "DontCare":  # its truncated/occluded are -1 by convention: nothing to check
            ignore.append(box)
            continue
        truncated, occluded = _kitti_visibility(values[0], values[1], len(values) == 15, where)
        objects.append(DetObject(kind, box, truncated, occluded, where=where))
    return DetectionSample(str(image), width, height, tuple(objects), tuple(ignore), str(label))


def read_kitti(root: str | Path, image_dir: str = "image_2", label_dir: str = "label_2",
               image_exts: Sequence[str] = (".png", ".jpg")) -> list[DetectionSample]:
    """KITTI object detection: ``root/{image_2,label_2}`` (``root`` is ``training/`` or its parent).

    Every image needs a label file of the same stem and every label file an image; an empty label
    file is an image without objects. ``DontCare`` lines become ignore regions. Sorted by file name.

    >>> samples = read_kitti("kitti/training")          # doctest: +SKIP
    >>> samples[0].objects[0].label, samples[0].objects[0].box   # doctest: +SKIP
    ('Car', (587.01, 173.33, 614.12, 200.12))
    """
    image_dir, label_dir = image_dir or "image_2", label_dir or "label_2"
    root = _kitti_root(Path(root), image_dir, label_dir)
    return [_read_kitti_label(label, image) for image, label in _kitti_pairs(root, image_dir, label_dir, image_exts)]


def write_kitti_label(path: str | Path, objects: Iterable[DetObject], ignore: Iterable[Sequence[float]] = ()) -> Path:
    """Write a 15-column KITTI label file; unknown 3D fields get KITTI's own placeholders.

    The file is written beside its target and renamed into place, so a reader never sees half of it.
    """
    path = Path(path)
    lines = []
    for obj in objects:
        if not obj.label or any(c.isspace() for c in obj.label):
            raise DataError(f"{path}: label {obj.label!r} cannot be written to KITTI: it must be one word")
        lines.append(f"{obj.label} {obj.truncated:.2f} {int(obj.occluded)} {KITTI_UNKNOWN_ALPHA} "
                     f"{_kitti_box(obj.box)} {KITTI_UNKNOWN_3D}")
    lines += [f"DontCare -1 -1 {KITTI_UNKNOWN_ALPHA} {_kitti_box(box)} {KITTI_UNKNOWN_3D}" for box in ignore]
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    os.replace(temporary, path)
    return path


def _kitti_box(box: Sequence[float]) -> str:
    return " ".join(f"{float(v):.2f}" for v in box)


# -- COCO --------------------------------------------------------------------------------------


def _load_json(path: Path) -> Any:
    if not path.is_file():
        raise DataError(f"COCO annotation file {str(path)!r} does not exist or is not a file; give the instances "
                        f"JSON (e.g. annotations/instances_val2017.json)")
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}, line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg})") from None


def _require(entry: Any, keys: Sequence[str], where: str) -> None:
    if not isinstance(entry, dict):
        raise DataError(f"{where}: expected a JSON object, found {type(entry).__name__}")
    missing = [k for k in keys if k not in entry]
    if missing:
        raise DataError(f"{where}: missing key(s) {', '.join(map(repr, missing))}; a COCO instances file has "
                        f"them (see cocodataset.org/#format-data)")


def _coco_tables(data: Any, path: Path) -> tuple[list, list, dict[Any, str]]:
    """images, annotations and ``{category id: name}``, their required keys checked."""
    _require(data, ("images", "annotations", "categories"), f"{path}, top level")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data[key], list):
            raise DataError(f"{path}: {key!r} is a {type(data[key]).__name__}, expected a list")
    for index, image in enumerate(data["images"]):
        _require(image, ("id", "file_name", "width", "height"), f"{path}, images[{index}]")
        if not all(isinstance(image[k], int) and not isinstance(image[k], bool) and image[k] > 0
                   for k in ("width", "height")):
            raise DataError(f"{path}, images[{index}] (id {image['id']!r}): width {image['width']!r} and height "
                            f"{image['height']!r} must be positive whole numbers of pixels")
    categories = {}
    for index, category in enumerate(data["categories"]):
        _require(category, ("id", "name"), f"{path}, categories[{index}]")
        categories[category["id"]] = str(category["name"])
    return data["images"], data["annotations"], categories


def _coco_box(annotation: dict, where: str) -> Box:
    bbox = annotation.get("bbox")
    values = [_finite(v) for v in bbox] if isinstance(bbox, list) else []
    if len(values) != 4 or None in values:
        raise DataError(f"{where}: bbox is {bbox!r}, expected 4 numbers [x, y, width, height]")
    x, y, w, h = values
    if w < 0 or h < 0:
        raise DataError(f"{where}: bbox {bbox} has a negative width or height; COCO boxes are [x, y, width, height]")
    return (x, y, x + w, y + h)


def _coco_annotation(annotation: Any, index: int, path: Path, images: dict, categories: dict):
    """(image id, object or None, ignore box or None) for one annotation."""
    name = f"annotation id {annotation['id']}" if isinstance(annotation, dict) and "id" in annotation \
        else f"annotations[{index}]"
    where = f"{path}, {name}"
    _require(annotation, ("image_id", "category_id", "bbox"), where)
    if annotation["image_id"] not in images:
        raise DataError(f"{where}: image_id {annotation['image_id']!r} is not in 'images'; fix the id or add the image")
    if annotation["category_id"] not in categories:
        raise DataError(f"{where}: category_id {annotation['category_id']!r} is not in 'categories' "
                        f"(known: {sorted(categories, key=str)})")
    box = _coco_box(annotation, where)
    if annotation.get("iscrowd", 0):
        return annotation["image_id"], None, box
    return annotation["image_id"], DetObject(categories[annotation["category_id"]], box, where=where), None


def read_coco(annotation_file: str | Path, image_root: str | Path | None = None) -> list[DetectionSample]:
    """COCO instances JSON: labels are category names, ``[x, y, w, h]`` becomes ``x1, y1, x2, y2``.

    ``iscrowd`` annotations become ignore regions; images without annotations are kept. Images are
    ``image_root / file_name`` (``image_root`` defaults to the JSON's folder) and must exist; their
    size is taken from the JSON. Images keep the JSON's order.
    """
    path = Path(annotation_file)
    images, annotations, categories = _coco_tables(_load_json(path), path)
    root = Path(image_root) if image_root else path.parent
    by_id: dict[Any, dict] = {image["id"]: {"objects": [], "ignore": []} for image in images}
    for index, annotation in enumerate(annotations):
        image_id, obj, crowd = _coco_annotation(annotation, index, path, by_id, categories)
        if obj is not None:
            by_id[image_id]["objects"].append(obj)
        else:
            by_id[image_id]["ignore"].append(crowd)
    samples = []
    for image in images:
        file = root / image["file_name"]
        if not file.is_file():
            raise DataError(f"{path}, image id {image['id']}: image file {file} does not exist; "
                            f"set data.image_root to the folder that holds {image['file_name']!r}")
        parts = by_id[image["id"]]
        samples.append(DetectionSample(str(file), int(image["width"]), int(image["height"]),
                                       tuple(parts["objects"]), tuple(parts["ignore"]), str(path)))
    return samples


# -- Pascal VOC --------------------------------------------------------------------------------


def _voc_ids(root: Path, image_set: str | None) -> list[tuple[str, Path]]:
    """(id, XML path) in the order of the image set file, or every ``Annotations/*.xml`` sorted."""
    annotations = root / "Annotations"
    if not image_set:
        return [(p.stem, p) for p in sorted(annotations.glob("*.xml"))]
    set_file = root / "ImageSets" / "Main" / f"{image_set}.txt"
    if not set_file.is_file():
        known = sorted(p.stem for p in (root / "ImageSets" / "Main").glob("*.txt"))
        raise DataError(f"VOC image set {set_file} does not exist; known sets: {', '.join(known) or '(none)'}")
    ids = []
    for number, line in enumerate(lines(read_text(set_file)), start=1):
        if line.strip():
            name = line.split()[0]  # per-class set files add a -1/0/1 column after the id
            xml = annotations / f"{name}.xml"
            if not xml.is_file():
                raise DataError(f"{set_file}, line {number}: no annotation file {xml} for id {name!r}")
            ids.append((name, xml))
    return ids


def _text(element: ET.Element, tag: str, where: str) -> str:
    child = element.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise DataError(f"{where}: missing <{tag}>; every VOC annotation needs it")
    return child.text.strip()


def _number(element: ET.Element, tag: str, where: str) -> float:
    text = _text(element, tag, where)
    value = _finite(text)
    if value is None:
        raise DataError(f"{where}: <{tag}> is {text!r}, expected a number")
    return value


def _voc_object(element: ET.Element, where: str) -> DetObject:
    label = _text(element, "name", where)
    if element.find("bndbox") is None:
        raise DataError(f"{where}: missing <bndbox>; every VOC object needs it")
    xmin, ymin, xmax, ymax = (_number(element, f"bndbox/{t}", where) for t in ("xmin", "ymin", "xmax", "ymax"))
    # VOC corners are 1-based pixel indices, both inclusive: pixel i covers [i - 1, i) in 0-based
    # continuous coordinates, so the box is [xmin - 1, xmax) x [ymin - 1, ymax).
    box = (xmin - 1.0, ymin - 1.0, xmax, ymax)
    _check_not_reversed(box, where)
    difficult = element.findtext("difficult", "0").strip() not in ("0", "")
    truncated = 1.0 if element.findtext("truncated", "0").strip() not in ("0", "") else 0.0
    return DetObject(label, box, truncated=truncated, difficult=difficult, where=where)


def _voc_image(root: Path, name: str, filename: str, xml: Path) -> Path:
    """``JPEGImages/<filename>``; some converters write a wrong filename, so the id's .jpg/.png is tried too."""
    for candidate in (root / "JPEGImages" / filename, root / "JPEGImages" / f"{name}.jpg",
                      root / "JPEGImages" / f"{name}.png"):
        if candidate.is_file():
            return candidate
    raise DataError(f"{xml}: image {root / 'JPEGImages' / filename} does not exist; add it or remove the annotation")


def _read_voc_xml(root: Path, name: str, xml: Path) -> DetectionSample:
    try:
        tree = ET.parse(xml).getroot()
    except ET.ParseError as exc:
        line, column = exc.position
        raise DataError(f"{xml}, line {line}, column {column + 1}: not valid XML ({exc.msg})") from None
    image = _voc_image(root, name, _text(tree, "filename", str(xml)), xml)
    width, height = int(_number(tree, "size/width", str(xml))), int(_number(tree, "size/height", str(xml)))
    if width <= 0 or height <= 0:  # some tools write 0 x 0: the image header knows better
        width, height = image_size(image, str(xml))
    objects = tuple(_voc_object(element, f"{xml}, object {index}")
                    for index, element in enumerate(tree.findall("object"), start=1))
    return DetectionSample(str(image), width, height, objects, (), str(xml))


def read_voc(root: str | Path, image_set: str | None = None) -> list[DetectionSample]:
    """Pascal VOC: ``root/Annotations/*.xml`` with images in ``root/JPEGImages``.

    With ``image_set`` (e.g. ``"train"``) only the ids in ``root/ImageSets/Main/<image_set>.txt``
    are read, in that order. VOC's 1-based inclusive corners are converted to 0-based: ``xmin`` and
    ``ymin`` are reduced by 1, ``xmax`` and ``ymax`` kept (the box covers pixels xmin..xmax).
    The ``difficult`` flag is kept; ``truncated`` becomes 0.0 or 1.0.
    """
    root = Path(root)
    if not (root / "Annotations").is_dir():
        raise DataError(f"VOC root {root}: no Annotations/ folder; give the folder that holds Annotations/ and "
                        f"JPEGImages/ (e.g. VOCdevkit/VOC2012)")
    return [_read_voc_xml(root, name, xml) for name, xml in _voc_ids(root, image_set)]


# -- cleaning, summary ---------------------------------------------------------------


def _clip(box: Sequence[float], width: int, height: int) -> Box:
    x1, y1, x2, y2 = box
    return (min(max(x1, 0.0), width), min(max(y1, 0.0), height), min(max(x2, 0.0), width), min(max(y2, 0.0), height))


def _large_enough(box: Box, min_size: float) -> bool:
    return box[2] - box[0] >= min_size and box[3] - box[1] >= min_size


def sanitize(sample: DetectionSample, min_size: float = 1.0) -> tuple[DetectionSample, int]:
    """Clip boxes to the image and drop those narrower or lower than ``min_size``; return (sample, dropped).

    Boxes touching the border are kept. Ignore regions are clipped too; empty ones are dropped
    without being counted (they were never objects).
    """
    objects, removed = [], 0
    for obj in sample.objects:
        box = _clip(obj.box, sample.width, sample.height)
        if _large_enough(box, min_size):
            objects.append(obj if box == tuple(obj.box) else replace(obj, box=box))
        else:
            removed += 1
    ignore = [b for b in (_clip(box, sample.width, sample.height) for box in sample.ignore) if _large_enough(b, 1e-9)]
    return replace(sample, objects=tuple(objects), ignore=tuple(ignore)), removed


def class_names(samples: Iterable[DetectionSample]) -> dict[str, int]:
    """Objects per label, sorted by label: ``{"Car": 812, "Pedestrian": 96}``."""
    counts: dict[str, int] = {}
    for sample in samples:
        for obj in sample.objects:
            counts[obj.label] = counts.get(obj.label, 0) + 1
    return dict(sorted(counts.items()))
