"""Small file writers for the driving format tests: tiny images, KITTI folders, COCO JSON, VOC XML;
and the overrides of a tiny detection run."""

from __future__ import annotations

import json

# A 160 x 48 demo and a 4-layer CNN: the whole fit takes a few seconds on 2 cores.
TINY = ["data.demo.train=12", "data.demo.validation=6", "data.demo.test=6", "data.demo.width=160",
        "data.demo.height=48", "data.kitti_min_height=[5,3,3]", "head.strides=[4,8,16]", "head.fpn_channels=32",
        "head.min_size=48", "head.max_size=160", "train.batch_size=4", "backbone.pretrained=false"]


def write_image(path, width=40, height=30):
    """A grey image of the given size (format from the suffix); returns the path."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (128, 128, 128)).save(path)
    return path


def kitti_line(label="Car", box=(1, 2, 11, 12), truncated="0.00", occluded="0", extra=()):
    """One KITTI label line with KITTI's placeholders for the 3D fields."""
    fields = [label, truncated, occluded, "-10", *map(str, box), "-1", "-1", "-1", "-1000", "-1000", "-1000", "-10"]
    return " ".join([*fields, *extra])


def write_kitti(root, labels, width=40, height=30):
    """``root/training/{image_2,label_2}`` with one PNG and one label file per ``{stem: [lines]}``."""
    training = root / "training"
    (training / "label_2").mkdir(parents=True, exist_ok=True)
    for stem, lines in labels.items():
        write_image(training / "image_2" / f"{stem}.png", width, height)
        (training / "label_2" / f"{stem}.txt").write_text("".join(line + "\n" for line in lines))
    return training


def coco_document(annotations, images=None, categories=None):
    """A COCO instances dict: by default two 40 x 30 images and the categories car (1) and person (2)."""
    images = images if images is not None else [{"id": 1, "file_name": "a.jpg", "width": 40, "height": 30},
                                                {"id": 2, "file_name": "b.jpg", "width": 40, "height": 30}]
    categories = categories if categories is not None else [{"id": 1, "name": "car"}, {"id": 2, "name": "person"}]
    return {"images": images, "annotations": annotations, "categories": categories}


def write_coco(folder, document, name="instances.json", with_images=True):
    """The JSON in ``folder`` and (by default) an image for every entry; returns the JSON path."""
    folder.mkdir(parents=True, exist_ok=True)
    if with_images:
        for image in document.get("images", []):
            write_image(folder / image["file_name"], image["width"], image["height"])
    path = folder / name
    path.write_text(json.dumps(document, indent=1))
    return path


def voc_xml(filename="000001.jpg", objects=(), width=40, height=30):
    """A VOC annotation; ``objects`` are ``(name, (xmin, ymin, xmax, ymax), difficult)`` or raw XML strings."""
    parts = []
    for obj in objects:
        if isinstance(obj, str):
            parts.append(obj)
            continue
        name, (x1, y1, x2, y2), difficult = obj
        parts.append(f"<object><name>{name}</name><truncated>0</truncated><difficult>{difficult}</difficult>"
                     f"<bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>")
    return (f"<annotation>\n<filename>{filename}</filename>\n<size><width>{width}</width><height>{height}</height>"
            f"<depth>3</depth></size>\n" + "\n".join(parts) + "\n</annotation>\n")


def write_voc(root, annotations, image_sets=None):
    """``root/{Annotations,JPEGImages}`` from ``{id: xml text}``, plus ``ImageSets/Main/<set>.txt`` files."""
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    for name, text in annotations.items():
        (root / "Annotations" / f"{name}.xml").write_text(text)
        write_image(root / "JPEGImages" / f"{name}.jpg")
    for set_name, ids in (image_sets or {}).items():
        (root / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
        (root / "ImageSets" / "Main" / f"{set_name}.txt").write_text("".join(f"{i}\n" for i in ids))
    return root
