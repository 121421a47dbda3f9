"""The config sections of ``security-face-match``: ``data``, ``head`` and the options of ``predict``.

Every key is described in the plugin's README; ``configs/security-face-match.yaml`` holds the
defaults ``crossfuse run`` uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from crossfuse.augment import ImageAugment
from crossfuse.task import DataSource


@dataclass
class FaceDemoConfig:
    """Sizes of the synthetic LFW-layout demo (generated once into the cache folder)."""

    train_identities: int = 400  # more people teach finer differences: what a strict FAR needs
    train_images: int = 12
    test_identities: int = 100  # 10 per fold: with 4, one look-alike couple held 2 % of the impostor pairs
    test_images: int = 10
    size: int = 64
    seed: int = 0
    folds: int = 10
    pairs_per_fold: int = 60  # 600 genuine + 600 impostor pairs: FAR 1e-2 rests on 6 false matches, not 1


@dataclass
class FaceAugment(ImageAugment):
    """Training augmentation (flip, crop, colour), applied before the backbone's preprocessing."""

    hflip: float = 0.5  # faces are near-symmetric: a mirror image is another plausible photo
    crop_scale: list[float] = field(default_factory=lambda: [0.8, 1.0])
    color_jitter: float = 0.2


@dataclass
class FaceDataConfig(DataSource):
    """Where the faces come from and how the evaluation is run.

    ``train`` (``--data PATH``) is an identity set read with ``format``; ``validation`` and ``test``
    are pairs read with ``pairs_format``. ``validation_pairs`` / ``test_pairs`` and
    ``validation_identities`` are the older names of ``validation`` / ``test`` and
    ``validation_fraction``, and keep working.
    """

    validation_fraction: float = 0.25  # of the training identities, held out to draw validation pairs
    test_fraction: float = 0.0  # > 0 (and no data.test): identities held out to draw test pairs
    pairs_format: str = "auto"  # the dataset format of validation / test pairs (lfw-pairs, a plugin's ...)
    test_pairs: Optional[str] = None  # older name of data.test
    test_images: Optional[str] = None  # the image root of the test pairs (default: the pairs file's folder)
    validation_pairs: Optional[str] = None  # older name of data.validation
    validation_images: Optional[str] = None
    validation_identities: Optional[float] = None  # older name of data.validation_fraction (wins when set)
    validation_pair_count: int = 3000  # distinct matched + mismatched pairs drawn from held-out identities
    image_ext: str = "jpg"  # the image extension pairs files refer to
    calibration_far: float = 1e-2  # the saved decision threshold keeps FAR at or below this on validation
    fars: list[float] = field(default_factory=lambda: [1e-2, 1e-3])  # TAR is reported at these FARs
    hardest: int = 8  # impostor pairs shown in the hardest-false-matches picture
    flip_test: bool = True  # embed each face and its mirror image, and add the two (common practice)
    demo: FaceDemoConfig = field(default_factory=FaceDemoConfig)
    augment: FaceAugment = field(default_factory=FaceAugment)


@dataclass
class FaceHeadConfig:
    """Embedding layer and training loss."""

    loss: str = "arcface"  # arcface, cosface or softmax (the baseline)
    margin: Optional[float] = None  # default 0.5 (arcface) / 0.35 (cosface)
    scale: float = 64.0
    embedding_dim: int = 128
    dropout: float = 0.0
    # Distillation (--distill-from): weight of the similarity-matching term against the margin loss. The
    # batch's cosine similarities differ by ~0.01-0.1 squared while the margin loss is ~10, so the term
    # needs a large weight to matter; Tung and Mori (2019) used 3000.
    similarity_weight: float = 3000.0


@dataclass
class FacePredictOptions:
    """Options of ``crossfuse predict`` for a face run.

    Without ``gallery``: inputs are image pairs (1:1). With it: inputs are probes (1:N).
    """

    gallery: Optional[str] = field(default=None, metadata={
        "help": "identity folders to enrol (ROOT/NAME/*.jpg), or a saved *.gallery.safetensors; inputs are then "
                "probe images or folders (1:N search) instead of pairs",
        "serve": False})  # crossfuse serve: a client must not make the server read its folders
    top_k: int = field(default=5, metadata={"help": "gallery people listed per probe"})
    threshold: Optional[float] = field(default=None, metadata={
        "help": "similarity needed for 'same' / a gallery match (default: the run's threshold, calibrated on "
                "validation pairs)"})
    output: Optional[str] = field(default=None, metadata={
        "help": "folder for an enrolled gallery (default RUN_DIR/galleries/NAME-TIMESTAMP)",
        "serve": False})  # crossfuse serve: a client names no server folder to write to
    batch_size: int = field(default=32, metadata={"help": "images per forward pass"})
