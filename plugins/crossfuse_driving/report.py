"""Pictures of a detection run: true boxes (thin, white) and predicted boxes (class colour, with score)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from crossfuse.media import load_image
from crossfuse.pictures import save_image

PALETTE = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240)]
SCALE = 2  # the demo images are small: draw on a 2x enlargement so labels stay legible


def draw_boxes(image_path: str | Path, truth: list[dict], predicted: list[dict], out_path: str | Path,
               classes: list[str] | None = None) -> Path:
    """Write the image with ``truth`` and ``predicted`` boxes drawn (see :func:`render_boxes`)."""
    out_path = Path(out_path)
    save_image(render_boxes(image_path, truth, predicted, classes), out_path)
    return out_path


def render_boxes(image_path: str | Path, truth: list[dict], predicted: list[dict],
                 classes: list[str] | None = None) -> Image.Image:
    """The image, enlarged, with boxes: dicts with ``label``, ``box`` and, for predictions, ``score``."""
    image = load_image(image_path)
    image = image.resize((image.width * SCALE, image.height * SCALE), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(image)
    names = classes or sorted({d["label"] for d in truth + predicted})
    for item in truth:
        draw.rectangle([v * SCALE for v in item["box"]], outline=(255, 255, 255), width=1)
    for item in predicted:
        colour = PALETTE[names.index(item["label"]) % len(PALETTE)] if item["label"] in names else PALETTE[0]
        x1, y1, x2, y2 = (v * SCALE for v in item["box"])
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=2)
        draw.text((x1 + 2, max(0, y1 - 11)), f"{item['label']} {item['score']:.2f}", fill=colour)
    return image


def draw_examples(report: dict[str, Any], run_dir: Path) -> list[str]:
    """One picture per split stacking its example images; returns the file names written."""
    written = []
    for split, metrics in report.get("splits", {}).items():
        examples = metrics.get("examples") or []
        tiles = []
        classes = sorted(metrics.get("objects", {}))
        for example in examples:
            if Path(example["image"]).is_file():  # data moved since the run: draw what is still there
                tiles.append(render_boxes(example["image"], example["truth"], example["predicted"], classes))
        if tiles:
            name = f"detections_{split}.png"
            _stack(tiles, run_dir / name)
            written.append(name)
    return written


def _stack(images: list[Image.Image], out_path: Path) -> None:
    width = max(i.width for i in images)
    sheet = Image.new("RGB", (width, sum(i.height for i in images) + 4 * (len(images) - 1)), (255, 255, 255))
    top = 0
    for image in images:
        sheet.paste(image, (0, top))
        top += image.height + 4
    save_image(sheet, out_path)
