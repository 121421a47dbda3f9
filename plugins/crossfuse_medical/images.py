"""The medical sample type and how its pixels become a ``PIL.Image`` for the task's transforms.

A :class:`MedicalImage` holds its pixels in memory (a MedMNIST array) or names a file read when
needed (PNG/JPEG/TIFF/BMP, or DICOM through :mod:`.dicom`). Every image reaches the model as 8-bit:
grey DICOM through its window, 16-bit PNG/TIFF through its own min-max range. No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from crossfuse.errors import DataError
from crossfuse.media import IMAGE_EXTENSIONS

DICOM_EXTENSIONS = (".dcm", ".dicom")
FILE_EXTENSIONS = IMAGE_EXTENSIONS + DICOM_EXTENSIONS


@dataclass(frozen=True, eq=False)
class MedicalImage:
    """One image with its labels, following the MedMNIST convention for ``labels``.

    - ``source``: a ``uint8`` array ``[H, W]`` or ``[H, W, 3]``, or the path of an image or DICOM file.
    - ``labels``: one entry, the class id (binary and multi-class); several entries, 0/1 per finding
      (multi-label); empty for an unlabelled input (``predict``).
    - ``classes``: the names ``labels`` refer to, as the source named them (shared by the samples of
      one source); :func:`crossfuse_medical.labels.infer_label_space` reconciles them across splits.
    - ``where``: who the sample came from, for messages (``"x.npz, train_images[17]"``, ``"y.csv, line 8"``).
    - ``note``: the free-text referral note, when the source has one.
    - ``channels``: 1 for grey, 3 for colour (read from the array or the file header).

    >>> MedicalImage("scan.dcm", (1,), ("normal", "pneumonia"), "labels.csv, line 2")   # doctest: +SKIP
    """

    source: Union[str, np.ndarray]
    labels: tuple[int, ...]
    classes: tuple[str, ...]
    where: str
    note: Optional[str] = None
    channels: int = 1

    @property
    def is_file(self) -> bool:
        """True when the pixels are read from a file."""
        return isinstance(self.source, str)


@dataclass(frozen=True)
class Window:
    """How grey DICOM values become 8-bit: a fixed ``center``/``width`` for every file, else each file's
    own VOI LUT or window (``from_file``), else each image's min-max range."""

    center: Optional[float] = None
    width: Optional[float] = None
    from_file: bool = True


FILE_WINDOW = Window()  # each file's own window, else its min-max range


def window_from_config(options: Any) -> Window:
    """The :class:`Window` named by the data config (``window_center``, ``window_width``, ``window_from_file``)."""
    return Window(getattr(options, "window_center", None), getattr(options, "window_width", None),
                  getattr(options, "window_from_file", True))


def input_image(path: str | Path) -> MedicalImage:
    """An unlabelled sample for a file given to ``predict``; its header is checked here."""
    path = Path(path)
    if path.suffix.lower() not in FILE_EXTENSIONS:
        raise DataError(f"{path}: not an image file; expected one of {', '.join(FILE_EXTENSIONS)}")
    return MedicalImage(str(path), (), (), str(path), channels=probe(path, str(path)))


def probe(path: str | Path, where: str) -> int:
    """Check that ``path`` is a readable image or DICOM file without decoding it; return its channels.

    ``where`` names who referred to the file. A missing, unreadable or pixel-less file is a DataError.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{where}: image {path} does not exist")
    if path.suffix.lower() in DICOM_EXTENSIONS:
        from .dicom import dicom_channels

        return dicom_channels(path, where)
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            mode = image.mode
            image.verify()  # structure and checksums (PNG: every chunk's CRC) without decoding the pixels
    except (OSError, ValueError, SyntaxError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise DataError(f"{where}: cannot read the image {path} ({exc or type(exc).__name__}); expected a PNG, "
                        f"JPEG, BMP or TIFF file") from None
    return 3 if _is_colour(mode) else 1


def image_mode(samples: Sequence[MedicalImage], channels: str = "auto") -> str:
    """The PIL mode the model gets: ``"L"`` when ``channels`` is ``grey``, or ``auto`` and every sample is
    grey (checked from the array or the file header, no pixel decoded); ``"RGB"`` otherwise."""
    if channels not in ("auto", "grey", "rgb"):
        raise ValueError(f"channels must be auto, grey or rgb, got {channels!r}")
    if channels == "auto":
        return "RGB" if any(sample.channels == 3 for sample in samples) else "L"
    return "L" if channels == "grey" else "RGB"


def load_pixels(image: MedicalImage, window: Window = FILE_WINDOW) -> np.ndarray:
    """The pixels as ``uint8``: ``[H, W]`` for grey, ``[H, W, 3]`` for colour."""
    if not image.is_file:
        return image.source  # type: ignore[return-value]  # checked by the reader
    path = Path(image.source)
    if path.suffix.lower() in DICOM_EXTENSIONS:
        from .dicom import dicom_pixels

        return dicom_pixels(path, window, image.where)
    return _picture_pixels(path, image.where)


def to_pil(image: MedicalImage, mode: str = "L", window: Window = FILE_WINDOW) -> Any:
    """The image as a ``PIL.Image`` in ``mode``: ``"L"`` (grey) or ``"RGB"`` (grey copied to 3 channels).

    >>> to_pil(sample, "RGB").size      # doctest: +SKIP
    (64, 64)
    """
    from PIL import Image

    if mode not in ("L", "RGB"):
        raise ValueError(f"mode must be 'L' or 'RGB', got {mode!r}")
    pixels = load_pixels(image, window)
    picture = Image.fromarray(pixels, "RGB" if pixels.ndim == 3 else "L")
    return picture if picture.mode == mode else picture.convert(mode)


def _picture_pixels(path: Path, where: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    referred = f" (referred to by {where})" if where != str(path) else ""
    try:
        with Image.open(path) as picture:
            picture.load()
            if picture.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                return stretch_to_uint8(np.asarray(picture, dtype=np.float64))
            return np.asarray(picture.convert("RGB" if _is_colour(picture.mode) else "L"))
    except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: cannot read the image ({exc}){referred}; replace or remove the file") from None


def _is_colour(mode: str) -> bool:
    # Palette images may be grey, but most palette medical images (overlays, slides) are colour.
    return mode in ("RGB", "RGBA", "CMYK", "YCbCr", "P", "LAB", "HSV")


def stretch_to_uint8(values: np.ndarray) -> np.ndarray:
    """Map an image's own min-max range onto 0-255 (a constant image becomes black).

    Used for 16-bit PNG/TIFF and for DICOM without a window: such exports often use 12 bits or
    fewer, so a fixed division by 257 would leave them nearly black.
    """
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.round((values - low) * (255.0 / (high - low))).astype(np.uint8)


def to_square(picture: Any, how: str = "pad") -> Any:
    """A square ``PIL.Image`` from ``picture`` (``data.resize``): ``pad`` letterboxes it with black (nothing
    is lost or distorted), ``crop`` keeps the centre square, ``stretch`` resizes it to the longer side.

    Done before the backbone's own transform, whose resize and centre crop then see a square image.
    """
    from PIL import Image

    width, height = picture.size
    if width == height:
        return picture
    side = max(width, height)
    if how == "pad":
        canvas = Image.new(picture.mode, (side, side), 0)
        canvas.paste(picture, ((side - width) // 2, (side - height) // 2))
        return canvas
    if how == "crop":
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        return picture.crop((left, top, left + side, top + side))
    if how == "stretch":
        return picture.resize((side, side), Image.BILINEAR)
    raise ValueError(f"resize must be pad, crop or stretch, got {how!r}")
