"""Synthetic chest radiographs with referral notes, written as a MedMNIST ``.npz`` for the demo.

Each image is a frontal chest film drawn as an attenuation map, then exposed: soft tissue of the
body, two lung fields under domed hemidiaphragms (the right one higher), the mediastinum and a
heart bulging to the patient's left, the spine, posterior ribs and clavicles, lung markings; and
sometimes breast shadows, nipple shadows and ECG electrodes (round things that are not nodules).
Exposure (gain, gamma, offset, heel effect), noise and blur vary from film to film, as do the
patient's size, position and inspiration, so global brightness says little about disease.

Four findings, each of varied size and contrast, down to barely visible:

- ``opacity``: an irregular consolidation confined to the lung;
- ``nodule``: one or two round, well-defined spots (larger in patients with cancer);
- ``effusion``: fluid at a lung base with a meniscus rising laterally, blunting the angle;
- ``cardiomegaly``: a cardiothoracic ratio drawn around 0.54 against 0.46 for a normal heart,
  with overlapping spreads, and AP films (sicker patients) magnify the heart.

A latent condition (healthy, pneumonia, heart failure, cancer, other) drives which findings
appear together and what the referral note (:mod:`.notes`) says. The multi-label demo has one 0/1
column per finding; the multi-class variant gives each image one class, ``normal`` or a finding.

Image ``i`` is drawn from ``numpy.random.default_rng([seed, i])``, so the data are the same on
every machine and a split written with another ``start`` never repeats an image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .notes import referral_note

DEMO_VERSION = "v1"  # bump when the drawing changes, so cached demos are regenerated

FINDINGS = ("opacity", "nodule", "effusion", "cardiomegaly")
MULTICLASS = ("normal", *FINDINGS)
CONDITIONS = ("healthy", "pneumonia", "heart failure", "cancer", "other")
CONDITION_RATES = (0.45, 0.2, 0.15, 0.1, 0.1)
# P(finding | condition): findings cluster as they do in practice (failing hearts with effusions ...).
FINDING_RATES = {
    "healthy": {"opacity": 0.03, "nodule": 0.04, "effusion": 0.02, "cardiomegaly": 0.05},
    "pneumonia": {"opacity": 0.85, "nodule": 0.03, "effusion": 0.25, "cardiomegaly": 0.08},
    "heart failure": {"opacity": 0.2, "nodule": 0.03, "effusion": 0.6, "cardiomegaly": 0.8},
    "cancer": {"opacity": 0.15, "nodule": 0.8, "effusion": 0.2, "cardiomegaly": 0.05},
    "other": {"opacity": 0.15, "nodule": 0.1, "effusion": 0.1, "cardiomegaly": 0.15},
}
# The condition behind a single multi-class finding (for its note).
CLASS_CONDITION = {"normal": "healthy", "opacity": "pneumonia", "nodule": "cancer", "effusion": "heart failure",
                   "cardiomegaly": "heart failure"}


@dataclass(frozen=True)
class Patient:
    """What is drawn and written about one film."""

    condition: str
    findings: frozenset[str]
    age: int
    sex: str  # "F" or "M"
    smoker: bool
    effusion_sides: tuple[int, ...] = ()  # -1: patient's right (image left), 1: patient's left
    ap_film: bool = False  # supine/AP films of sicker patients magnify the heart


def draw_patient(rng: np.random.Generator, variant: str = "multilabel") -> Patient:
    """A patient: condition, findings (several, or at most one for ``multiclass``), age, sex, smoking."""
    if variant == "multiclass":
        label = MULTICLASS[int(rng.choice(len(MULTICLASS), p=[0.4, 0.15, 0.15, 0.15, 0.15]))]
        condition = CLASS_CONDITION[label]
        if label == "effusion" and rng.random() < 0.4:
            condition = "pneumonia"
        findings = frozenset() if label == "normal" else frozenset([label])
    else:
        condition = CONDITIONS[int(rng.choice(len(CONDITIONS), p=CONDITION_RATES))]
        findings = frozenset(f for f in FINDINGS if rng.random() < FINDING_RATES[condition][f])
    age_mean = {"healthy": 45, "pneumonia": 55, "heart failure": 74, "cancer": 67, "other": 58}[condition]
    age = int(np.clip(rng.normal(age_mean, 14), 18, 96))
    smoker = bool(rng.random() < (0.7 if condition == "cancer" else 0.25))
    sides: tuple[int, ...] = ()
    if "effusion" in findings:
        both = condition == "heart failure" and rng.random() < 0.5
        sides = (-1, 1) if both else (int(rng.choice([-1, 1])),)
    ap = bool(rng.random() < (0.45 if condition in ("pneumonia", "heart failure") else 0.1))
    return Patient(condition, findings, age, "F" if rng.random() < 0.5 else "M", smoker, sides, ap)


# -- drawing ------------------------------------------------------------------------------------


def _ramp(x: np.ndarray) -> np.ndarray:
    """0 below -1, 1 above 1, linear between: an anti-aliased edge, cheaper than a sigmoid."""
    return np.clip(0.5 + 0.5 * x, 0.0, 1.0)


def _loguniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


class Film:
    """One film's geometry: patient coordinates ``x, y`` (0-1) over the pixel grid, and its anatomy."""

    def __init__(self, size: int, rng: np.random.Generator, patient: Patient):
        self.size, self.rng, self.patient = size, rng, patient
        v, u = (np.mgrid[0:size, 0:size] + 0.5) / size
        angle, scale = rng.normal(0, 0.03), rng.uniform(0.93, 1.05)
        dx, dy = rng.normal(0, 0.02, 2)
        cos, sin = np.cos(angle), np.sin(angle)
        self.x = ((u - 0.5) * cos - (v - 0.5) * sin) / scale + 0.5 - dx
        self.y = ((u - 0.5) * sin + (v - 0.5) * cos) / scale + 0.5 - dy
        self.pixel = 1.0 / (size * scale)  # one pixel in patient units: edges are about this soft
        self.half_width = rng.uniform(0.35, 0.42)  # thorax half-width
        self.apex = rng.uniform(0.1, 0.16)
        base = rng.uniform(0.7, 0.8)  # inspiration depth
        right_higher = rng.uniform(0.015, 0.045)  # the liver lifts the right hemidiaphragm
        self.dome = {-1: base - right_higher, 1: base}
        self.lungs = {side: self._lung(side) for side in (-1, 1)}

    def edge(self, distance: np.ndarray, softness: float = 1.0) -> np.ndarray:
        """1 inside (``distance`` > 0), 0 outside, over about ``softness`` pixels."""
        return _ramp(distance / (self.pixel * softness))

    def lung_centre(self, side: int) -> tuple[float, float, float, float]:
        """(centre x, centre y, half-width, half-height) of one lung field."""
        half = self.half_width * 0.43
        centre_x = 0.5 + side * (self.half_width * 0.55)
        return centre_x, (self.apex + self.dome[side]) / 2, half, (self.dome[side] - self.apex) / 2

    def dome_line(self, side: int) -> np.ndarray:
        """The top of the hemidiaphragm under each pixel column: highest mid-lung, low at the angles."""
        cx, _, half, _ = self.lung_centre(side)
        return self.dome[side] - 0.05 * (1 - np.clip(((self.x - cx) / (half * 1.1)) ** 2, 0, 1))

    def _lung(self, side: int) -> np.ndarray:
        cx, cy, half, height = self.lung_centre(side)
        shape = ((self.x - cx) / half) ** 2 + ((self.y - cy) / (height * 1.15)) ** 2
        return self.edge((1 - shape) * 0.05) * self.edge(self.dome_line(side) - self.y)

    def inside_lung(self, side: int, margin: float = 0.7) -> tuple[float, float]:
        """A random point well inside one lung field."""
        cx, cy, half, height = self.lung_centre(side)
        for _ in range(50):
            x, y = cx + self.rng.uniform(-margin, margin) * half, cy + self.rng.uniform(-margin, margin) * height
            if ((x - cx) / half) ** 2 + ((y - cy) / height) ** 2 < margin ** 2:
                return float(x), float(y)
        return cx, cy

    def smooth_noise(self, scale: float) -> np.ndarray:
        """A smooth random field (mean 0, std about 1) with features about ``scale`` wide."""
        from scipy.ndimage import gaussian_filter

        field = gaussian_filter(self.rng.normal(0, 1, (self.size, self.size)), max(scale * self.size, 0.5))
        return field / (field.std() + 1e-9)


def _anatomy(film: Film) -> np.ndarray:
    """Attenuation of a normal chest: body, lungs, mediastinum, heart, spine, ribs, clavicles, markings."""
    rng, x, y = film.rng, film.x, film.y
    body = film.edge(1 - ((x - 0.5) / (film.half_width + 0.09)) ** 2 - ((y - 0.62) / 0.62) ** 2, 3) * 0.32
    lungs = sum(film.lungs.values())
    density = body - rng.uniform(0.22, 0.3) * lungs
    density += lungs * 0.025 * film.smooth_noise(0.04)  # vessels and lung markings
    mediastinum = film.edge(rng.uniform(0.06, 0.085) - np.abs(x - 0.5 - 0.008), 2) * film.edge(film.dome[1] - y, 2)
    density += 0.15 * mediastinum * film.edge(y - 0.04)
    density += _heart(film)
    spine = film.edge(0.028 - np.abs(x - 0.5)) * (1 + 0.35 * np.sin(2 * np.pi * y / rng.uniform(0.055, 0.07)))
    density += 0.07 * spine
    density += _ribs(film) + _clavicles(film)
    hilum = sum(np.exp(-(((x - 0.5 - s * 0.1) / 0.035) ** 2 + ((y - 0.45) / 0.06) ** 2)) for s in (-1, 1))
    return density + 0.05 * hilum


def _heart(film: Film) -> np.ndarray:
    """The cardiac shadow; its width over the thorax width is the cardiothoracic ratio (CTR)."""
    rng, patient = film.rng, film.patient
    ratio = rng.normal(0.54, 0.04) if "cardiomegaly" in patient.findings else rng.normal(0.46, 0.04)
    if patient.ap_film:
        ratio *= rng.uniform(1.04, 1.12)  # AP projection magnifies the heart
    half = ratio * film.half_width
    centre_x = 0.5 + 0.22 * half  # most of the heart lies to the patient's left
    # The lower half of the ellipse lies under the diaphragm: the heart is widest where it sits on it.
    centre_y = film.dome[1] - rng.uniform(0.0, 0.03)
    shape = ((film.x - centre_x) / half) ** 2 + ((film.y - centre_y) / rng.uniform(0.16, 0.2)) ** 2
    return 0.2 * film.edge((1 - shape) * 0.06, 1.5) * film.edge(film.dome[1] + 0.01 - film.y, 1)


def _ribs(film: Film) -> np.ndarray:
    """Ten posterior ribs a side, curving down laterally: one band wherever the rib coordinate is whole."""
    rng, x, y = film.rng, film.x, film.y
    density = np.zeros_like(x)
    spacing, first, contrast = rng.uniform(0.06, 0.07), film.apex - 0.02, rng.uniform(0.035, 0.06)
    for side in (-1, 1):
        lateral = np.clip(side * (x - 0.5), 0, None)
        reach = film.edge(lateral - 0.035) * film.edge(film.half_width * 1.05 - lateral, 2)
        coordinate = (y - first - 0.5 * lateral * np.sqrt(lateral)) / spacing
        offset = (coordinate - np.round(coordinate)) * spacing
        density += contrast * np.exp(-(offset / 0.011) ** 2) * reach * ((coordinate > -0.5) & (coordinate < 9.5))
    return density


def _clavicles(film: Film) -> np.ndarray:
    x, y = film.x, film.y
    density = np.zeros_like(x)
    for side in (-1, 1):
        lateral = side * (x - 0.5)
        line = film.apex + 0.035 - 0.12 * lateral
        density += 0.1 * np.exp(-((y - line) / 0.014) ** 2) * film.edge(lateral - 0.04) * film.edge(0.3 - lateral)
    return density


def _mimics(film: Film) -> np.ndarray:
    """Normal things a reader must not call disease: breast and nipple shadows, ECG electrodes."""
    rng, x, y, patient = film.rng, film.x, film.y, film.patient
    density = np.zeros_like(x)
    if patient.sex == "F" and rng.random() < 0.7:
        for side in (-1, 1):
            cx, _, half, _ = film.lung_centre(side)
            shape = ((x - cx - side * 0.2 * half) / (half * 1.1)) ** 2 + ((y - film.dome[side] + 0.02) / 0.12) ** 2
            density += rng.uniform(0.03, 0.07) * film.edge((1 - shape) * 0.05, 4)
    if rng.random() < 0.15:  # nipple shadows: small, faint, usually on both sides
        level = rng.uniform(0.58, 0.68)
        for side in (-1, 1):
            spot = np.hypot(x - 0.5 - side * rng.uniform(0.25, 0.3), y - level)
            density += rng.uniform(0.04, 0.09) * film.edge(0.016 - spot, 0.8)
    if rng.random() < 0.25:  # ECG electrodes: bright discs
        for _ in range(int(rng.integers(1, 5))):
            spot = np.hypot(x - rng.uniform(0.2, 0.8), y - rng.uniform(0.2, 0.85))
            density += rng.uniform(0.15, 0.35) * film.edge(rng.uniform(0.012, 0.02) - spot, 0.6)
    return density


def _opacity(film: Film) -> np.ndarray:
    rng = film.rng
    density = np.zeros_like(film.x)
    for side in ((-1, 1) if rng.random() < 0.2 else (int(rng.choice([-1, 1])),)):
        cx, cy = film.inside_lung(side)
        blob = np.zeros_like(film.x)
        for _ in range(int(rng.integers(2, 5))):
            sigma = rng.uniform(0.025, 0.08)
            px, py = cx + rng.normal(0, 0.04), cy + rng.normal(0, 0.05)
            blob += np.exp(-(((film.x - px) ** 2 + (film.y - py) ** 2) / (2 * sigma ** 2)))
        blob = np.clip(blob, 0, 1) * (1 + 0.4 * film.smooth_noise(0.03)).clip(0.3, None)  # air bronchograms, patchiness
        density += _loguniform(rng, 0.03, 0.2) * blob * film.lungs[side]
    return density


def _nodules(film: Film) -> np.ndarray:
    rng = film.rng
    density = np.zeros_like(film.x)
    large = film.patient.condition == "cancer"
    for _ in range(1 if rng.random() < 0.8 else 2):
        side = int(rng.choice([-1, 1]))
        cx, cy = film.inside_lung(side, 0.8)
        radius = _loguniform(rng, 0.018, 0.06 if large else 0.04)
        spot = np.hypot(film.x - cx, film.y - cy)
        density += _loguniform(rng, 0.05, 0.25) * film.edge(radius - spot, 0.7) * film.lungs[side]
    return density


def _effusion(film: Film) -> np.ndarray:
    """Fluid filling a lung base up to a surface that rises laterally (the meniscus); dense enough, it
    hides the hemidiaphragm and the costophrenic angle."""
    rng = film.rng
    density = np.zeros_like(film.x)
    for side in film.patient.effusion_sides:
        cx, _, half, _ = film.lung_centre(side)
        lateral = np.clip(side * (film.x - cx) / half, 0, 1)
        surface = film.dome[side] - rng.uniform(0.02, 0.18) - rng.uniform(0.02, 0.07) * lateral
        density += _loguniform(rng, 0.03, 0.25) * film.edge(film.y - surface, 2.5) * film.lungs[side]
    return density


FINDING_PAINTERS = {"opacity": _opacity, "nodule": _nodules, "effusion": _effusion}


def _expose(film: Film, density: np.ndarray) -> np.ndarray:
    """Attenuation to an 8-bit film: gain, gamma, offset, heel effect, quantum noise and blur."""
    from scipy.ndimage import gaussian_filter

    rng = film.rng
    signal = np.clip(density / 0.75, 0, None)
    signal = signal * (1 + rng.uniform(-0.12, 0.12) * (film.y - 0.5))  # heel effect across the film
    image = rng.uniform(-0.05, 0.12) + rng.uniform(0.7, 1.35) * np.clip(signal, 0, 1.5) ** rng.uniform(0.75, 1.3)
    image = image + rng.normal(0, rng.uniform(0.01, 0.045), image.shape)
    image = gaussian_filter(image, rng.uniform(0.3, 0.9))
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


def render(rng: np.random.Generator, patient: Patient, size: int = 64) -> np.ndarray:
    """One ``uint8`` ``[size, size]`` radiograph of ``patient`` (cardiomegaly is drawn by the heart)."""
    film = Film(size, rng, patient)
    density = _anatomy(film) + _mimics(film)
    for finding in sorted(patient.findings & FINDING_PAINTERS.keys()):
        density += FINDING_PAINTERS[finding](film)
    return _expose(film, density)


# -- data sets ----------------------------------------------------------------------------------


def synthesize(count: int, seed: int = 0, size: int = 64, variant: str = "multilabel",
               start: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``count`` films: images ``uint8 [count, size, size]``, labels (``[count, 4]`` 0/1 per finding, or
    ``[count, 1]`` class ids of :data:`MULTICLASS`) and one referral note per film."""
    if variant not in ("multilabel", "multiclass"):
        raise ValueError(f"variant must be multilabel or multiclass, got {variant!r}")
    images = np.empty((count, size, size), dtype=np.uint8)
    labels = np.zeros((count, len(FINDINGS) if variant == "multilabel" else 1), dtype=np.uint8)
    notes = []
    for i in range(count):
        rng = np.random.default_rng([seed, start + i])
        patient = draw_patient(rng, variant)
        images[i] = render(rng, patient, size)
        if variant == "multilabel":
            labels[i] = [int(f in patient.findings) for f in FINDINGS]
        else:
            labels[i, 0] = MULTICLASS.index(next(iter(patient.findings), "normal"))
        notes.append(referral_note(rng, patient))
    return images, labels, notes


def write_medmnist_demo(path: str | Path, train: int = 3000, validation: int = 600, test: int = 1000, *,
                        seed: int = 0, size: int = 64, variant: str = "multilabel") -> Path:
    """Write a MedMNIST-style ``.npz`` (``{train,val,test}_{images,labels,notes}`` and ``label_names``)
    and return its path. Splits take consecutive image numbers, so none repeats another's films."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    start = 0
    for prefix, count in (("train", train), ("val", validation), ("test", test)):
        images, labels, notes = synthesize(count, seed, size, variant, start)
        arrays |= {f"{prefix}_images": images, f"{prefix}_labels": labels, f"{prefix}_notes": np.array(notes, dtype=str)}
        start += count
    arrays["label_names"] = np.array(FINDINGS if variant == "multilabel" else MULTICLASS, dtype=str)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(temporary, **arrays)
    temporary.replace(path)  # whole or not at all
    return path



def demo_path(demo: Any) -> Path:
    """The demo ``.npz`` for a :class:`~crossfuse_medical.config.DemoConfig`, generated once into the
    crossfuse cache (``$CROSSFUSE_CACHE/medical-demo/KEY/chest.npz``) and reused afterwards."""
    from crossfuse.runs import cached_folder

    key = (f"{DEMO_VERSION}-{demo.variant}-{demo.size}px-seed{demo.seed}-"
           f"{demo.train}-{demo.validation}-{demo.test}")

    def fill(folder: Path) -> None:
        write_medmnist_demo(folder / "chest.npz", demo.train, demo.validation, demo.test, seed=demo.seed,
                            size=demo.size, variant=demo.variant)

    return cached_folder("medical-demo", key, fill=fill) / "chest.npz"
