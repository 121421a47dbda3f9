"""Synthetic road scenes for the demo, written in KITTI layout so the demo goes through the real reader.

A pinhole camera looks down a straight road: the horizon sits at a fixed row, and an object at
depth ``z`` metres stands on the ground at row ``horizon + focal * camera_height / z`` with a
pixel size of ``focal * metres / z``. Cars, pedestrians and cyclists are placed on the road and
the pavements at varied depth, drawn far to near so nearer objects occlude farther ones, and
labelled as KITTI does: the visible box clipped to the image, a truncation fraction for the
part outside it, an occlusion level from the covered fraction, and ``DontCare`` for objects
too small or too hidden to label. Poles, trees, signs, parked boxes and noise are clutter.

Everything is drawn from one seeded ``numpy`` generator per image, so the data set is the same
on every machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CLASSES = ("Car", "Pedestrian", "Cyclist")
FOCAL_PER_WIDTH = 0.9  # focal length in pixels per image-width pixel (a ~58 degree field of view)
CAMERA_HEIGHT = 1.65  # metres, as on the KITTI car
MIN_LABEL_HEIGHT = 6  # pixels: smaller objects become DontCare regions, as far objects are in KITTI

# Real-world sizes (metres): width, height; the generator jitters them per object.
SIZES = {"Car": (1.75, 1.5), "Pedestrian": (0.6, 1.75), "Cyclist": (1.7, 1.75)}


@dataclass
class SceneObject:
    """One drawn object: its class, the full box in pixels (possibly outside the image) and depth."""

    label: str
    box: tuple[float, float, float, float]
    depth: float
    truncated: float = 0.0
    occluded: int = 0
    visible: float = 1.0


@dataclass
class Scene:
    """A rendered image with its labelled objects and don't-care regions."""

    image: Image.Image
    objects: list[SceneObject]
    dont_care: list[tuple[float, float, float, float]]


class SceneRenderer:
    """Draws road scenes of ``width`` x ``height`` pixels (rendered at 2x, then downsampled)."""

    def __init__(self, width: int = 320, height: int = 96, supersample: int = 2):
        self.width, self.height, self.ss = width, height, supersample
        self.horizon = 0.42 * height
        self.focal = FOCAL_PER_WIDTH * width

    # -- geometry ------------------------------------------------------------------------------
    def project(self, x: float, z: float, metres_w: float, metres_h: float) -> tuple[float, float, float, float]:
        """The pixel box of an object ``metres_w`` x ``metres_h`` standing at lateral ``x``, depth ``z``."""
        scale = self.focal / z
        foot = self.horizon + CAMERA_HEIGHT * scale
        centre = self.width / 2 + x * scale
        return centre - metres_w * scale / 2, foot - metres_h * scale, centre + metres_w * scale / 2, foot

    def _ground_row(self, z: float) -> float:
        return self.horizon + CAMERA_HEIGHT * self.focal / z

    # -- rendering -------------------------------------------------------------------------------
    def render(self, rng: np.random.Generator, max_objects: int = 9) -> Scene:
        """One scene: background, clutter, then objects far to near, then lighting and noise."""
        ss = self.ss
        canvas = Image.new("RGB", (self.width * ss, self.height * ss))
        draw = ImageDraw.Draw(canvas)
        self._background(draw, rng)
        placed = self._place_objects(rng, max_objects)
        clutter = self._clutter(rng)
        # Painter's order over objects and clutter together, so clutter occludes objects too.
        items = [("object", o) for o in placed] + [("clutter", c) for c in clutter]
        items.sort(key=lambda item: -item[1][0] if item[0] == "clutter" else -item[1].depth)
        masks = []
        for kind, item in items:
            if kind == "clutter":
                _, painter = item
                masks.append(("clutter", painter(draw), None))
            else:
                box = _scaled(item.box, ss)
                getattr(self, f"_draw_{item.label.lower()}")(draw, box, rng)
                masks.append(("object", box, item))
        self._occlusion(masks)
        image = canvas.resize((self.width, self.height), Image.Resampling.BOX)
        image = self._photometric(image, rng)
        return self._label(image, placed)

    def _background(self, draw: ImageDraw.ImageDraw, rng: np.random.Generator) -> None:
        ss, w, h = self.ss, self.width * self.ss, self.height * self.ss
        horizon = self.horizon * ss
        sky = rng.integers(120, 220, 3)
        for row in range(int(horizon) + 1):  # sky gradient
            shade = 0.75 + 0.25 * row / max(horizon, 1)
            draw.line([(0, row), (w, row)], fill=tuple(int(c * shade) for c in sky))
        ground = tuple(int(c) for c in rng.integers(60, 130, 3))
        draw.rectangle([0, horizon, w, h], fill=ground)
        vanish = w / 2 + rng.uniform(-0.05, 0.05) * w
        road_half = rng.uniform(0.9, 1.4) * w
        asphalt = int(rng.integers(55, 110))
        draw.polygon([(vanish - 2, horizon), (vanish + 2, horizon), (w / 2 + road_half, h), (w / 2 - road_half, h)],
                     fill=(asphalt, asphalt, asphalt + 5))
        for side in (-1, 1):  # kerb lines and dashed lane markings
            draw.line([(vanish, horizon), (w / 2 + side * road_half, h)], fill=(200, 200, 200), width=ss)
        for z in np.arange(4.0, 60.0, 6.0) + rng.uniform(0, 6):
            y0, y1 = self._ground_row(z + 2) * ss, self._ground_row(z) * ss
            if y1 > h:
                continue
            draw.line([(vanish + (w / 2 - vanish) * (y0 - horizon) / (h - horizon), y0),
                       (vanish + (w / 2 - vanish) * (y1 - horizon) / (h - horizon), y1)],
                      fill=(230, 230, 200), width=max(1, int(ss * 30 / z)))
        for _ in range(int(rng.integers(3, 8))):  # buildings on the horizon
            x = rng.uniform(0, w)
            bw, bh = rng.uniform(0.05, 0.2) * w, rng.uniform(0.1, 0.35) * horizon
            tone = tuple(int(c) for c in rng.integers(70, 200, 3))
            draw.rectangle([x, horizon - bh, x + bw, horizon], fill=tone)

    def _place_objects(self, rng: np.random.Generator, max_objects: int) -> list[SceneObject]:
        objects = []
        for _ in range(int(rng.integers(0, max_objects + 1))):  # some scenes are empty
            label = CLASSES[int(rng.choice(3, p=[0.5, 0.3, 0.2]))]
            z = float(np.exp(rng.uniform(math.log(4.0), math.log(45.0))))
            road = label == "Car" or (label == "Cyclist" and rng.random() < 0.7)
            lateral = rng.uniform(-5.5, 5.5) if road else rng.choice([-1, 1]) * rng.uniform(4.5, 8.0)
            metres_w, metres_h = (s * rng.uniform(0.85, 1.15) for s in SIZES[label])
            if label == "Car" and rng.random() < 0.5:
                metres_w *= rng.uniform(1.6, 2.4)  # seen from the side
            if label == "Cyclist" and rng.random() < 0.4:
                metres_w *= 0.45  # seen from behind
            objects.append(SceneObject(label, self.project(lateral, z, metres_w, metres_h), z))
        return objects

    def _clutter(self, rng: np.random.Generator) -> list[tuple[float, object]]:
        """Poles, trees, signs and bins: each a (depth, painter) where painter draws and returns its box."""
        ss = self.ss
        items = []
        for _ in range(int(rng.integers(1, 6))):
            z = float(rng.uniform(5.0, 40.0))
            lateral = rng.choice([-1, 1]) * rng.uniform(6.0, 11.0)
            kind = rng.choice(["pole", "tree", "sign", "bin"])
            metres = {"pole": (0.25, 5.0), "tree": (2.5, 6.0), "sign": (0.8, 2.6), "bin": (0.7, 1.0)}[kind]
            box = _scaled(self.project(lateral, z, *metres), ss)
            tone = tuple(int(c) for c in rng.integers(30, 200, 3))
            items.append((z, _clutter_painter(kind, box, tone)))
        return items

    def _draw_car(self, draw: ImageDraw.ImageDraw, box, rng: np.random.Generator) -> None:
        x1, y1, x2, y2 = box
        w, h = x2 - x1, y2 - y1
        paint = tuple(int(c) for c in rng.integers(20, 235, 3))
        draw.rectangle([x1, y1 + 0.4 * h, x2, y2 - 0.15 * h], fill=paint)  # body
        draw.polygon([(x1 + 0.15 * w, y1 + 0.4 * h), (x1 + 0.28 * w, y1), (x2 - 0.28 * w, y1),
                      (x2 - 0.15 * w, y1 + 0.4 * h)], fill=paint)  # cabin
        draw.polygon([(x1 + 0.22 * w, y1 + 0.38 * h), (x1 + 0.31 * w, y1 + 0.08 * h), (x2 - 0.31 * w, y1 + 0.08 * h),
                      (x2 - 0.22 * w, y1 + 0.38 * h)], fill=(40, 50, 70))  # windows
        wheel = 0.22 * h
        for cx in (x1 + 0.2 * w, x2 - 0.2 * w):
            draw.ellipse([cx - wheel, y2 - 2 * wheel, cx + wheel, y2], fill=(15, 15, 15))
        draw.rectangle([x1 + 0.03 * w, y1 + 0.5 * h, x1 + 0.12 * w, y1 + 0.6 * h], fill=(240, 230, 150))  # lights
        draw.rectangle([x2 - 0.12 * w, y1 + 0.5 * h, x2 - 0.03 * w, y1 + 0.6 * h], fill=(240, 230, 150))

    def _draw_pedestrian(self, draw: ImageDraw.ImageDraw, box, rng: np.random.Generator) -> None:
        x1, y1, x2, y2 = box
        w, h = x2 - x1, y2 - y1
        cx = (x1 + x2) / 2
        skin = tuple(int(c) for c in rng.integers(90, 230, 3))
        shirt = tuple(int(c) for c in rng.integers(0, 255, 3))
        trousers = tuple(int(c) for c in rng.integers(0, 120, 3))
        head = 0.13 * h
        draw.ellipse([cx - head / 2, y1, cx + head / 2, y1 + head], fill=skin)
        draw.rectangle([x1 + 0.15 * w, y1 + head, x2 - 0.15 * w, y1 + 0.55 * h], fill=shirt)
        stride = rng.uniform(0.0, 0.35) * w
        limb = max(1.0, 0.16 * w)
        draw.line([(cx, y1 + 0.55 * h), (cx - stride, y2)], fill=trousers, width=int(limb))
        draw.line([(cx, y1 + 0.55 * h), (cx + stride, y2)], fill=trousers, width=int(limb))
        draw.line([(x1 + 0.15 * w, y1 + 0.2 * h), (x1, y1 + 0.5 * h)], fill=shirt, width=int(limb * 0.7))
        draw.line([(x2 - 0.15 * w, y1 + 0.2 * h), (x2, y1 + 0.5 * h)], fill=shirt, width=int(limb * 0.7))

    def _draw_cyclist(self, draw: ImageDraw.ImageDraw, box, rng: np.random.Generator) -> None:
        x1, y1, x2, y2 = box
        w, h = x2 - x1, y2 - y1
        frame = tuple(int(c) for c in rng.integers(0, 255, 3))
        wheel = min(0.2 * h, 0.28 * w)
        line = max(1, int(0.04 * h))
        front, back = x2 - wheel, x1 + wheel
        for cx in (front, back):
            draw.ellipse([cx - wheel, y2 - 2 * wheel, cx + wheel, y2], outline=(20, 20, 20), width=line)
        seat = ((x1 + x2) / 2 - 0.1 * w, y2 - 2.4 * wheel)
        draw.line([(back, y2 - wheel), seat, (front, y2 - wheel)], fill=frame, width=line)
        skin = tuple(int(c) for c in rng.integers(90, 230, 3))
        jacket = tuple(int(c) for c in rng.integers(0, 255, 3))
        head = 0.14 * h
        hx = (x1 + x2) / 2 + 0.1 * w
        draw.ellipse([hx - head / 2, y1, hx + head / 2, y1 + head], fill=skin)
        draw.polygon([(hx - 0.15 * w, y1 + head), (hx + 0.1 * w, y1 + head), seat], fill=jacket)
        draw.line([seat, (front - 0.3 * wheel, y2 - 0.5 * wheel)], fill=jacket, width=line * 2)

    # -- labels --------------------------------------------------------------------------------
    def _occlusion(self, masks: list) -> None:
        """Visible fraction of each object: sample its box against everything drawn later (nearer)."""
        for i, (kind, box, obj) in enumerate(masks):
            if kind != "object":
                continue
            xs = np.linspace(box[0], box[2], 12)
            ys = np.linspace(box[1], box[3], 12)
            gx, gy = np.meshgrid(xs, ys)
            covered = np.zeros(gx.shape, dtype=bool)
            for _, other, _ in masks[i + 1:]:
                covered |= (gx >= other[0]) & (gx <= other[2]) & (gy >= other[1]) & (gy <= other[3])
            obj.visible = float(1.0 - covered.mean())

    def _label(self, image: Image.Image, objects: list[SceneObject]) -> Scene:
        labelled, dont_care = [], []
        for obj in objects:
            x1, y1, x2, y2 = obj.box
            area = (x2 - x1) * (y2 - y1)
            clipped = (max(0.0, x1), max(0.0, y1), min(float(self.width - 1), x2), min(float(self.height - 1), y2))
            if clipped[2] - clipped[0] < 1 or clipped[3] - clipped[1] < 1:
                continue  # entirely outside the image
            inside = (clipped[2] - clipped[0]) * (clipped[3] - clipped[1])
            obj.truncated = round(1.0 - inside / area, 2)
            hidden = 1.0 - obj.visible
            obj.occluded = 0 if hidden < 0.1 else 1 if hidden < 0.4 else 2
            if clipped[3] - clipped[1] < MIN_LABEL_HEIGHT or obj.visible < 0.2 or obj.truncated > 0.8:
                dont_care.append(clipped)
                continue
            obj.box = clipped
            labelled.append(obj)
        return Scene(image, labelled, dont_care)

    def _photometric(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        array = np.asarray(image, dtype=np.float32)
        gain = rng.uniform(0.6, 1.3)
        tint = rng.uniform(0.9, 1.1, 3)
        array = array * gain * tint + rng.normal(0, rng.uniform(2, 10), array.shape)
        result = Image.fromarray(np.clip(array, 0, 255).astype(np.uint8))
        if rng.random() < 0.3:
            result = result.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8)))
        return result


def _scaled(box, factor: float) -> tuple[float, float, float, float]:
    return tuple(v * factor for v in box)  # type: ignore[return-value]


def _clutter_painter(kind: str, box, tone):
    """A function that draws one clutter item and returns the box it covers."""

    def paint(draw: ImageDraw.ImageDraw):
        x1, y1, x2, y2 = box
        w, h = x2 - x1, y2 - y1
        if kind == "pole":
            draw.rectangle(box, fill=tone)
        elif kind == "tree":
            draw.rectangle([x1 + 0.42 * w, y1 + 0.5 * h, x2 - 0.42 * w, y2], fill=(90, 60, 30))
            draw.ellipse([x1, y1, x2, y1 + 0.6 * h], fill=(30, int(tone[1] * 0.5 + 80), 30))
        elif kind == "sign":
            draw.rectangle([x1 + 0.45 * w, y1 + 0.3 * h, x2 - 0.45 * w, y2], fill=(120, 120, 120))
            draw.ellipse([x1, y1, x2, y1 + 0.35 * h], fill=tone, outline=(200, 0, 0), width=max(1, int(0.08 * w)))
        else:
            draw.rectangle(box, fill=tone)
        # Trees and signs hide only where they are drawn; their boxes overstate it a little.
        return box

    return paint


def write_kitti_demo(root: str | Path, count: int, *, seed: int = 0, width: int = 320, height: int = 96,
                     start: int = 0) -> Path:
    """Write ``count`` scenes as ``root/training/{image_2,label_2}/NNNNNN.{png,txt}``; return ``root/training``.

    Image ``i`` is drawn from ``numpy.random.default_rng([seed, start + i])``, so a split written
    with another ``start`` never repeats a scene.
    """
    from .formats import DetObject, write_kitti_label

    training = Path(root) / "training"
    (training / "image_2").mkdir(parents=True, exist_ok=True)
    (training / "label_2").mkdir(parents=True, exist_ok=True)
    renderer = SceneRenderer(width, height)
    for i in range(count):
        index = start + i
        scene = renderer.render(np.random.default_rng([seed, index]))
        scene.image.save(training / "image_2" / f"{index:06d}.png", optimize=False)
        objects = [DetObject(o.label, tuple(round(v, 2) for v in o.box), o.truncated, o.occluded)
                   for o in scene.objects]
        write_kitti_label(training / "label_2" / f"{index:06d}.txt", objects,
                          [tuple(round(v, 2) for v in box) for box in scene.dont_care])
    return training
