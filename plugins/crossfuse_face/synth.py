"""Deterministic synthetic faces in LFW's layout, for demos and tests that must run offline.

Each identity is a fixed set of facial parameters (face shape, skin tone, hair, eyes, brows, nose,
mouth, ears, glasses, beard) drawn from a seeded generator; each image of it varies pose, scale,
lighting, expression, occlusion, background, noise and blur. Some of that variation (lighting
against skin tone, jitter of the face geometry) is as large as the differences between people,
so a tiny model verifies well above chance but well below 100 %. Files are byte-identical for
one seed: every identity and image draws from its own ``numpy`` generator keyed on
``(seed, kind, index)``, so changing one count does not reshuffle everything else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crossfuse_face.lfw import image_path

_ONSETS = ["b", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "ch", "st", "tr"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "io"]
_CODAS = ["", "", "", "n", "r", "l", "s", "m", "th"]
_SKIN_LIGHT, _SKIN_DARK = np.array([250, 218, 190]), np.array([92, 58, 40])
_HAIR = [(20, 16, 14), (60, 40, 25), (110, 75, 40), (185, 150, 90), (150, 60, 30), (140, 140, 140), (230, 220, 200)]
_EYES = [(60, 40, 25), (90, 60, 30), (60, 100, 150), (70, 120, 80), (110, 110, 120)]
HAIR_STYLES = ("bald", "short", "long", "fringe", "side")


@dataclass(frozen=True)
class Identity:
    """The stable parameters of one synthetic person; sizes are fractions of the canvas."""

    name: str
    face_width: float
    face_height: float
    jaw: float
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    hair_style: str
    eye_spacing: float
    eye_size: float
    eye_height: float
    eye_colour: tuple[int, int, int]
    brow_angle: float
    brow_weight: float
    nose_length: float
    nose_width: float
    mouth_width: float
    ear_size: float
    glasses: bool
    beard: bool


# --- names --------------------------------------------------------------------------------------

def _word(rng: np.random.Generator, syllables: int) -> str:
    parts = [_ONSETS[rng.integers(len(_ONSETS))] + _VOWELS[rng.integers(len(_VOWELS))] for _ in range(syllables)]
    return ("".join(parts) + _CODAS[rng.integers(len(_CODAS))]).capitalize()


def make_names(count: int, seed: int = 0) -> list[str]:
    """``count`` distinct pronounceable ASCII names in LFW's style (``Marin_Tolase``, ``Bea_K_Stirun``)."""
    rng = np.random.default_rng([seed, 0])
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < count:
        first, last = _word(rng, int(rng.integers(1, 3))), _word(rng, int(rng.integers(2, 4)))
        middle = [chr(ord("A") + int(rng.integers(26)))] if rng.random() < 0.15 else []
        name = "_".join([first, *middle, last])
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


# --- identities ---------------------------------------------------------------------------------

def make_identity(name: str, rng: np.random.Generator) -> Identity:
    """Draw one person's stable parameters."""
    tone = rng.beta(1.3, 1.3)
    skin = _SKIN_LIGHT + tone * (_SKIN_DARK - _SKIN_LIGHT) + rng.normal(0, 6, 3)
    return Identity(
        name=name, face_width=rng.uniform(0.40, 0.56), face_height=rng.uniform(0.55, 0.72), jaw=rng.uniform(0, 1),
        skin=_rgb(skin), hair=_HAIR[rng.integers(len(_HAIR))], hair_style=HAIR_STYLES[rng.integers(len(HAIR_STYLES))],
        eye_spacing=rng.uniform(0.17, 0.26), eye_size=rng.uniform(0.05, 0.085), eye_height=rng.uniform(-0.10, 0.0),
        eye_colour=_EYES[rng.integers(len(_EYES))], brow_angle=rng.uniform(-18, 18),
        brow_weight=rng.uniform(0.01, 0.03),
        nose_length=rng.uniform(0.08, 0.16), nose_width=rng.uniform(0.03, 0.07), mouth_width=rng.uniform(0.10, 0.20),
        ear_size=rng.uniform(0.04, 0.08), glasses=bool(rng.random() < 0.2), beard=bool(rng.random() < 0.2),
    )


def _rgb(values) -> tuple[int, int, int]:
    r, g, b = np.clip(np.round(values), 0, 255).astype(int).tolist()
    return r, g, b


def _shade(colour: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    return _rgb(np.asarray(colour) * factor)


# --- one image ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Look:
    """What varies between two photos of one person (drawn per image)."""

    face_width: float
    face_height: float
    skin: tuple[int, int, int]
    eye_spacing: float
    eye_open: float
    mouth_curve: float
    yaw: float
    occlusion: str


def _look(person: Identity, rng: np.random.Generator) -> _Look:
    occlusion = rng.choice(["none", "rectangle", "sunglasses", "scarf"], p=[0.7, 0.1, 0.1, 0.1])
    return _Look(face_width=person.face_width * rng.normal(1, 0.05),
                 face_height=person.face_height * rng.normal(1, 0.04),
                 skin=_rgb(np.asarray(person.skin) + rng.normal(0, 10, 3)),
                 eye_spacing=person.eye_spacing * rng.normal(1, 0.06), eye_open=rng.uniform(0.35, 1.0),
                 mouth_curve=rng.uniform(-1, 1), yaw=rng.uniform(-1, 1), occlusion=str(occlusion))


def _background(size: int, rng: np.random.Generator):
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), _rgb(rng.uniform(40, 220, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 7))):  # clutter: shapes a detector crop would also contain
        x0, y0 = rng.uniform(-0.2, 1.0, 2) * size
        w, h = rng.uniform(0.1, 0.6, 2) * size
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape([x0, y0, x0 + w, y0 + h], fill=_rgb(rng.uniform(0, 255, 3)))
    return image


def _draw_hair(draw, p: Identity, box: list[float], back: bool) -> None:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    if back and p.hair_style == "long":
        draw.rounded_rectangle([x0 - 0.08 * w, y0 - 0.06 * h, x1 + 0.08 * w, y1 + 0.1 * h], radius=0.4 * w, fill=p.hair)
    if back or p.hair_style == "bald":
        return
    cap = [x0 - 0.04 * w, y0 - 0.08 * h, x1 + 0.04 * w, y0 + (0.75 if p.hair_style == "fringe" else 0.55) * h]
    draw.chord(cap, 180, 360, fill=p.hair)
    if p.hair_style == "side":
        draw.polygon([(x0, y0 + 0.25 * h), (x0 + 0.6 * w, y0), (x0, y0 + 0.05 * h)], fill=p.hair)


def _draw_eyes(draw, p: Identity, look: _Look, cx: float, ey: float, s: float, fw: float) -> None:
    """Eyes, brows and glasses; ``fw`` is the face width in pixels (eye spacing is a fraction of it)."""
    for side in (-1, 1):
        x = cx + side * look.eye_spacing * fw
        rx, ry = p.eye_size * s / 2, max(p.eye_size * s * 0.3 * look.eye_open, 1.0)
        draw.ellipse([x - rx, ey - ry, x + rx, ey + ry], fill=(245, 245, 240))
        iris = min(ry, rx * 0.55)
        draw.ellipse([x - iris, ey - iris, x + iris, ey + iris], fill=p.eye_colour)
        draw.ellipse([x - iris / 2.5, ey - iris / 2.5, x + iris / 2.5, ey + iris / 2.5], fill=(10, 10, 10))
        tilt = math.tan(math.radians(p.brow_angle)) * rx * side
        by = ey - ry - 0.035 * s
        draw.line([(x - 1.2 * rx, by - tilt), (x + 1.2 * rx, by + tilt)], fill=_shade(p.hair, 0.8),
                  width=max(1, round(p.brow_weight * s)))
        if p.glasses:
            draw.ellipse([x - 1.5 * rx, ey - 1.5 * rx, x + 1.5 * rx, ey + 1.5 * rx], outline=(30, 30, 30),
                         width=max(1, round(0.012 * s)))
    if p.glasses:
        gap = look.eye_spacing * fw - 1.5 * p.eye_size * s / 2
        draw.line([(cx - gap, ey), (cx + gap, ey)], fill=(30, 30, 30), width=max(1, round(0.012 * s)))


def _draw_lower_face(draw, p: Identity, look: _Look, cx: float, ey: float, s: float, box: list[float]) -> float:
    """Nose, mouth and beard; returns the mouth's height (where a scarf starts)."""
    nose_top, nose_bottom = ey + 0.02 * s, ey + (0.02 + p.nose_length) * s
    half = p.nose_width * s / 2
    draw.polygon([(cx, nose_top), (cx - half, nose_bottom), (cx + half, nose_bottom)], fill=_shade(look.skin, 0.82))
    if p.beard:
        draw.chord(box, 15, 165, fill=_shade(p.hair, 0.9))
    my, mw = nose_bottom + 0.07 * s, p.mouth_width * s / 2
    bend = 0.04 * s * look.mouth_curve
    start, end = (20, 160) if bend >= 0 else (200, 340)  # smile: lower arc; frown: upper arc
    draw.arc([cx - mw, my - abs(bend) - 1, cx + mw, my + abs(bend) + 1], start, end, fill=(150, 50, 55),
             width=max(1, round(0.02 * s)))
    return my


def _draw_occlusion(draw, look: _Look, cx: float, ey: float, my: float, s: float, rng: np.random.Generator) -> None:
    if look.occlusion == "sunglasses":
        for side in (-1, 1):
            x = cx + side * 0.11 * s
            draw.ellipse([x - 0.08 * s, ey - 0.05 * s, x + 0.08 * s, ey + 0.05 * s], fill=(15, 15, 20))
    elif look.occlusion == "scarf":
        draw.rectangle([cx - 0.35 * s, my - 0.03 * s, cx + 0.35 * s, s], fill=_rgb(rng.uniform(0, 255, 3)))
    elif look.occlusion == "rectangle":
        x, y = rng.uniform(0.2, 0.7, 2) * s
        w, h = rng.uniform(0.15, 0.35, 2) * s
        draw.rectangle([x, y, x + w, y + h], fill=_rgb(rng.uniform(0, 255, 3)))


def _face_layer(p: Identity, look: _Look, s: int, rng: np.random.Generator):
    """The person on a transparent canvas, frontal; pose is applied afterwards."""
    from PIL import Image, ImageDraw

    layer = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    cx, cy = s / 2, s * 0.5
    fw, fh = look.face_width * s, look.face_height * s
    box = [cx - fw / 2, cy - fh / 2, cx + fw / 2, cy + fh / 2]
    draw.polygon([(cx - 0.45 * s, s), (cx - 0.3 * s, cy + 0.36 * s), (cx + 0.3 * s, cy + 0.36 * s),
                  (cx + 0.45 * s, s)], fill=_rgb(rng.uniform(0, 255, 3)))  # shoulders: clothes change daily
    _draw_hair(draw, p, box, back=True)
    ey = cy + p.eye_height * s
    for side in (-1, 1):
        ex = cx + side * fw / 2
        draw.ellipse([ex - p.ear_size * s / 2, ey - p.ear_size * s, ex + p.ear_size * s / 2, ey + p.ear_size * s],
                     fill=_shade(look.skin, 0.92))
    draw.ellipse(box, fill=look.skin)
    jaw_width = fw * (0.55 + 0.4 * p.jaw)
    draw.rounded_rectangle([cx - jaw_width / 2, cy, cx + jaw_width / 2, cy + fh / 2], radius=0.3 * fw, fill=look.skin)
    _draw_hair(draw, p, box, back=False)
    cx += look.yaw * 0.05 * s  # turning the head moves the features across the face
    _draw_eyes(draw, p, look, cx, ey, s, fw)
    my = _draw_lower_face(draw, p, look, cx, ey, s, box)
    _draw_occlusion(draw, look, cx, ey, my, s, rng)
    return layer


def _posed(layer, look: _Look, rng: np.random.Generator):
    """Rotate, scale, squash (yaw) and shift the face layer with one affine map."""
    from PIL import Image

    s = layer.size[0]
    angle = math.radians(rng.normal(0, 7))
    scale = rng.uniform(0.85, 1.1)
    sx, sy = scale * (1 - 0.15 * abs(look.yaw)), scale
    tx, ty = rng.normal(0, 0.05 * s, 2)
    # PIL wants the inverse map (output pixel -> input pixel): q = c + D^-1 R(-angle) (p - c - t).
    cos, sin = math.cos(angle), math.sin(angle)
    a, b, d, e = cos / sx, sin / sx, -sin / sy, cos / sy
    c = s / 2 - a * (s / 2 + tx) - b * (s / 2 + ty)
    f = s / 2 - d * (s / 2 + tx) - e * (s / 2 + ty)
    return layer.transform(layer.size, Image.Transform.AFFINE, (a, b, c, d, e, f), resample=Image.Resampling.BILINEAR)


def _lit(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exposure, contrast and a directional light gradient."""
    mean = pixels.mean()
    pixels = (pixels - mean) * rng.uniform(0.7, 1.2) + mean * rng.uniform(0.65, 1.3)
    h, w = pixels.shape[:2]
    direction = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:h, 0:w] / max(h, w) - 0.5
    ramp = 1 + rng.uniform(0, 0.6) * (xs * math.cos(direction) + ys * math.sin(direction))
    return pixels * ramp[..., None]


def render_face(person: Identity, rng: np.random.Generator, size: int = 64):
    """One photo of ``person`` as an RGB ``PIL.Image`` of ``size`` x ``size``.

    Drawn at twice the size and reduced (antialiasing), then blurred slightly and given sensor noise.
    """
    from PIL import Image, ImageFilter

    big = 2 * size
    look = _look(person, rng)
    canvas = _background(big, rng).convert("RGBA")
    canvas.alpha_composite(_posed(_face_layer(person, look, big, rng), look, rng))
    pixels = _lit(np.asarray(canvas.convert("RGB"), dtype=np.float64), rng)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).reduce(2)
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.0, 0.8)))
    noisy = np.asarray(image, dtype=np.float64) + rng.normal(0, rng.uniform(2, 8), (size, size, 3))
    return Image.fromarray(np.clip(np.round(noisy), 0, 255).astype(np.uint8))


# --- data set -----------------------------------------------------------------------------------

def _write_identities(folder: Path, people: list[Identity], offset: int, images: int, size: int, seed: int) -> int:
    for k, person in enumerate(people):
        (folder / person.name).mkdir(parents=True, exist_ok=True)
        for number in range(1, images + 1):
            rng = np.random.default_rng([seed, 2, offset + k, number])
            render_face(person, rng, size).save(image_path(folder, person.name, number), quality=90)
    return len(people) * images


def _unique_draws(draw, count: int, rng: np.random.Generator) -> list[tuple]:
    """``count`` draws, without repeats while the attempts last (then repeats are allowed)."""
    chosen, seen = [], set()
    for _ in range(50 * count):
        if len(chosen) == count:
            break
        item = draw(rng)
        if item not in seen:
            seen.add(item)
            chosen.append(item)
    while len(chosen) < count:
        chosen.append(draw(rng))
    return chosen


def _fold_pairs(names: list[str], all_names: list[str], images: int, count: int, rng: np.random.Generator):
    """Matched and mismatched pair lines for one fold; ``names`` are the fold's own identities.

    Names are sorted so that mismatched lines read ``name1 < name2`` and each block is in
    alphabetical order, as in LFW's files.
    """
    names = sorted(names)

    def matched(r):
        a, b = sorted(r.choice(images, 2, replace=False) + 1)
        return (names[r.integers(len(names))], int(a), int(b))

    pool = names if len(names) >= 2 else sorted(all_names)  # a fold with one person cannot mismatch within itself

    def mismatched(r):
        i, j = sorted(r.choice(len(pool), 2, replace=False))
        return (pool[i], int(r.integers(images)) + 1, pool[j], int(r.integers(images)) + 1)

    return sorted(_unique_draws(matched, count, rng)), sorted(_unique_draws(mismatched, count, rng))


def _pair_line(fields: tuple) -> str:
    return "\t".join(str(f) for f in fields)


def _write_pairs(test: Path, names: list[str], images: int, folds: int, per_fold: int, seed: int) -> tuple[Path, Path]:
    rng = np.random.default_rng([seed, 3])
    shuffled = [names[i] for i in rng.permutation(len(names))]
    # LFW spreads people over folds so that no one appears in two folds; round-robin does that here.
    blocks = [_fold_pairs(shuffled[f::folds] or shuffled, shuffled, images, per_fold, rng) for f in range(folds)]
    ten_fold = [f"{folds}\t{per_fold}"] + [_pair_line(x) for m, mm in blocks for x in [*m, *mm]]
    dev = [str(folds * per_fold)] + [_pair_line(x) for m, _ in blocks for x in m] \
        + [_pair_line(x) for _, mm in blocks for x in mm]
    pairs, dev_test = test / "pairs.txt", test / "pairsDevTest.txt"
    pairs.write_text("\n".join(ten_fold) + "\n", encoding="utf-8")
    dev_test.write_text("\n".join(dev) + "\n", encoding="utf-8")
    return pairs, dev_test


def write_demo_dataset(root: str | Path, *, train_identities: int = 60, train_images: int = 12,
                       test_identities: int = 40, test_images: int = 6, size: int = 64, seed: int = 0,
                       folds: int = 10, pairs_per_fold: int = 30) -> dict[str, Any]:
    """Write a small LFW-style data set: ``train/`` identity folders and a disjoint ``test/`` with pairs.

    ``test/pairs.txt`` is the 10-fold form (header ``<folds>\\t<pairs_per_fold>``, people spread
    over folds as LFW does); ``test/pairsDevTest.txt`` lists the same pairs in the single-count
    form (all matched, then all mismatched). Returns counts and paths.
    """
    if test_images < 2 or test_identities < 2 or folds < 1 or pairs_per_fold < 1 or train_identities < 1:
        raise ValueError("need test_images >= 2 and test_identities >= 2 (to form matched and mismatched "
                         "pairs), folds >= 1, pairs_per_fold >= 1 and train_identities >= 1")
    root = Path(root)
    # The test people come first, so a demo with more (or fewer) training people keeps the same test set.
    names = make_names(test_identities + train_identities, seed)
    people = [make_identity(name, np.random.default_rng([seed, 1, i])) for i, name in enumerate(names)]
    train, test = root / "train", root / "test"
    n_test = _write_identities(test, people[:test_identities], 0, test_images, size, seed)
    n_train = _write_identities(train, people[test_identities:], test_identities, train_images, size, seed)
    pairs, dev_test = _write_pairs(test, names[:test_identities], test_images, folds, pairs_per_fold, seed)
    return {"root": str(root), "train": str(train), "test": str(test), "pairs": str(pairs),
            "pairs_dev_test": str(dev_test), "train_identities": train_identities, "train_images": n_train,
            "test_identities": test_identities, "test_images": n_test, "folds": folds,
            "pairs_per_fold": pairs_per_fold, "size": size, "seed": seed}
