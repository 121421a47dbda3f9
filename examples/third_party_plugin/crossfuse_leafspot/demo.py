"""Demo data for ``leaf-disease``: synthetic leaf photos written in the PlantVillage layout
(``train/ valid/ test/`` of ``Crop___Disease`` folders), so the demo goes through the same reader as
the real dataset. Written once into crossfuse's cache.

What the pictures draw is what a pathologist looks for:

- early blight (*Alternaria solani*, tomato): a few dark brown lesions with concentric rings
  ("target spots") and a yellow halo;
- common rust (*Puccinia sorghi*, maize): many small cinnamon-brown pustules along the blade;
- powdery mildew (*Podosphaera xanthii*, squash): white, powdery, spreading patches;
- healthy leaves of the three crops, a fifth of them with a harmless brown scar or a yellowing tip.

Not trivial by design: "healthy" spans three leaf shapes, one crop in six leaves carries a mild
infection (a single lesion, a few pustules, one faint patch), scars look like lesions, lighting and
leaf colour vary, and 3 % of the labels are wrong, as in real annotations.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

from crossfuse.runs import cached_folder

CLASSES = ("Tomato___healthy", "Tomato___Early_blight", "Corn_(maize)___healthy", "Corn_(maize)___Common_rust_",
           "Squash___healthy", "Squash___Powdery_mildew")
SPLITS = (("train", 0.7), ("valid", 0.15), ("test", 0.15))
SIZE = 96
LABEL_NOISE = 0.03
VERSION = 1  # change it when the generator changes: the cache keeps the old folder otherwise


def demo_folder(per_class: int) -> Path:
    """The demo PlantVillage folder with ``per_class`` images per class folder, written on first use."""
    return cached_folder("crossfuse_leafspot", f"demo-v{VERSION}-{per_class}",
                         fill=lambda folder: write_demo(folder, per_class))


def write_demo(folder: Path, per_class: int, seed: int = 0) -> None:
    """Write ``SPLIT/Crop___Disease/NNNN.png`` leaf photos into ``folder``."""
    rng = random.Random(seed)
    for name in CLASSES:
        crop, _, disease = name.partition("___")
        for number in range(per_class):
            image = draw_leaf(crop, disease.strip("_").lower(), rng)
            written = rng.choice(CLASSES) if rng.random() < LABEL_NOISE else name  # a mislabelled photo
            target = folder / _split(number, per_class) / written
            target.mkdir(parents=True, exist_ok=True)
            image.save(target / f"{CLASSES.index(name)}-{number:04d}.png")


def _split(number: int, count: int) -> str:
    edge = 0.0
    for split, fraction in SPLITS:
        edge += fraction
        if number < round(edge * count):
            return split
    return SPLITS[-1][0]


def draw_leaf(crop: str, disease: str, rng: random.Random) -> Any:
    """One photo: a ``crop`` leaf (Tomato, Corn_(maize), Squash) with ``disease`` signs, on a plain background."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    mask = Image.new("L", (SIZE, SIZE), 0)
    _leaf_shape(ImageDraw.Draw(mask), crop, rng)
    green = (rng.randrange(45, 95), rng.randrange(115, 175), rng.randrange(25, 70))
    leaf = Image.new("RGB", (SIZE, SIZE), green)
    pen = ImageDraw.Draw(leaf)
    pen.line([(10, SIZE / 2), (SIZE - 10, SIZE / 2)], fill=tuple(min(255, c + 45) for c in green), width=2)  # midrib
    inside = np.argwhere(np.asarray(mask) > 0)
    mild = rng.random() < 1 / 6
    if disease == "early_blight":
        _early_blight(pen, inside, rng, 1 if mild else rng.randrange(2, 6))
    elif disease == "common_rust":
        _rust(pen, inside, rng, rng.randrange(4, 9) if mild else rng.randrange(20, 60))
    elif disease == "powdery_mildew":
        leaf = _mildew(leaf, inside, rng, 1 if mild else rng.randrange(3, 7))
    elif rng.random() < 0.2:  # healthy, but not spotless: a scar or a yellowing tip
        _blemish(pen, inside, rng, green)
    angle = rng.uniform(0, 360)
    leaf, mask = leaf.rotate(angle, Image.BILINEAR), mask.rotate(angle, Image.BILINEAR).filter(ImageFilter.SMOOTH)
    grey = rng.randrange(110, 200)
    background = Image.new("RGB", (SIZE, SIZE), (grey, grey - rng.randrange(0, 15), grey - rng.randrange(0, 25)))
    photo = np.asarray(Image.composite(leaf, background, mask), dtype=np.float64) * rng.uniform(0.8, 1.15)
    photo += np.random.default_rng(rng.randrange(2**31)).normal(0, 6, photo.shape)
    return Image.fromarray(photo.clip(0, 255).astype(np.uint8), "RGB")


def _leaf_shape(pen: Any, crop: str, rng: random.Random) -> None:
    middle = SIZE / 2
    if crop == "Corn_(maize)":  # a long, narrow blade
        width = rng.uniform(9, 14)
        pen.polygon([(4, middle), (20, middle - width), (SIZE - 8, middle - width * 0.6), (SIZE - 2, middle),
                     (SIZE - 8, middle + width * 0.6), (20, middle + width)], fill=255)
    elif crop == "Squash":  # broad and lobed
        for dx, dy in ((0, 0), (-14, -12), (14, -12), (-16, 10), (16, 10)):
            radius = rng.uniform(18, 24)
            x, y = middle + dx, middle + dy
            pen.ellipse([x - radius, y - radius, x + radius, y + radius], fill=255)
    else:  # tomato leaflet: an ellipse with a pointed tip
        length, width = rng.uniform(34, 42), rng.uniform(18, 25)
        pen.ellipse([middle - length, middle - width, middle + length * 0.8, middle + width], fill=255)
        pen.polygon([(middle + length * 0.6, middle - width * 0.5), (middle + length + 6, middle),
                     (middle + length * 0.6, middle + width * 0.5)], fill=255)


def _spot(inside: Any, rng: random.Random) -> tuple[float, float]:
    y, x = inside[rng.randrange(len(inside))]
    return float(x), float(y)


def _early_blight(pen: Any, inside: Any, rng: random.Random, count: int) -> None:
    for _ in range(count):
        x, y = _spot(inside, rng)
        radius = rng.uniform(4, 9)
        pen.ellipse([x - radius - 3, y - radius - 3, x + radius + 3, y + radius + 3], fill=(200, 190, 60))  # halo
        for ring in range(int(radius), 0, -2):  # concentric rings, alternately darker
            shade = 55 if ring % 4 < 2 else 95
            pen.ellipse([x - ring, y - ring, x + ring, y + ring], fill=(shade + 25, shade, 20))


def _rust(pen: Any, inside: Any, rng: random.Random, count: int) -> None:
    for _ in range(count):
        x, y = _spot(inside, rng)
        length = rng.uniform(1.5, 3.5)
        colour = (rng.randrange(170, 215), rng.randrange(80, 115), 30)  # cinnamon to orange-brown
        pen.ellipse([x - length, y - 1.2, x + length, y + 1.2], fill=colour)


def _mildew(leaf: Any, inside: Any, rng: random.Random, count: int) -> Any:
    from PIL import Image, ImageDraw, ImageFilter

    powder = Image.new("L", leaf.size, 0)
    pen = ImageDraw.Draw(powder)
    for _ in range(count):
        x, y = _spot(inside, rng)
        radius = rng.uniform(5, 13)
        pen.ellipse([x - radius, y - radius, x + radius, y + radius], fill=rng.randrange(150, 230))
    white = Image.new("RGB", leaf.size, (235, 238, 230))
    return Image.composite(white, leaf, powder.filter(ImageFilter.GaussianBlur(2)))


def _blemish(pen: Any, inside: Any, rng: random.Random, green: tuple[int, int, int]) -> None:
    if rng.random() < 0.5:  # a healed scar: a short brown streak
        x, y = _spot(inside, rng)
        angle = rng.uniform(0, math.pi)
        dx, dy = 6 * math.cos(angle), 6 * math.sin(angle)
        pen.line([(x - dx, y - dy), (x + dx, y + dy)], fill=(110, 80, 40), width=2)
    else:  # senescence: the tip yellows
        pen.rectangle([SIZE * 0.78, 0, SIZE, SIZE], fill=(min(255, green[1] + 40), green[1], 40))
