"""DICOM files through pydicom: headers checked when a dataset is read, pixels made 8-bit when used.

Grey pixels go through the DICOM display pipeline: the modality LUT (``RescaleSlope`` and
``RescaleIntercept``, or a Modality LUT Sequence), then a VOI transform to 0-255 (a window from
the config, else the file's VOI LUT Sequence or ``WindowCenter``/``WindowWidth`` with its
``VOILUTFunction``, else the image's own min-max range), then ``MONOCHROME1`` is inverted so that
bone is bright in every image. pydicom unpacks 12-bit-in-16 and signed data and does the LUT maths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from crossfuse.errors import DataError

from .images import Window, stretch_to_uint8

DECODER_HINT = ("compressed DICOM needs a pydicom decoder plugin: pip install pylibjpeg pylibjpeg-libjpeg "
                "pylibjpeg-openjpeg (or python-gdcm)")


def read_header(path: str | Path, where: str) -> Any:
    """The dataset of ``path`` without loading its pixel data; a file that is not DICOM, has no pixel
    data or holds several frames is a :class:`DataError` naming ``where``."""
    import pydicom

    referred = "" if where == str(path) else f" (referred to by {where})"
    try:
        # defer_size leaves large values (the pixels) on disk until they are used.
        dataset = pydicom.dcmread(path, defer_size="4 KB")
    except Exception as exc:  # pydicom raises many kinds on damaged files; each is bad data here
        raise DataError(f"{path}: not a readable DICOM file ({type(exc).__name__}: {exc}){referred}") from None
    if not any(key in dataset for key in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise DataError(f"{path}: the DICOM file holds no pixel data (a structured report, presentation state or "
                        f"header-only file?){referred}; remove it or give image files")
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise DataError(f"{path}: the DICOM file holds {frames} frames{referred}; the medical tasks read single 2D "
                        f"images: export one frame per file")
    return dataset


def dicom_channels(path: str | Path, where: str) -> int:
    """1 for a grey DICOM image, 3 for colour; the header is checked with :func:`read_header`."""
    return 3 if int(read_header(path, where).get("SamplesPerPixel", 1)) == 3 else 1


def dicom_uid(dataset: Any) -> str | None:
    """The ``SOPInstanceUID`` of a dataset read with :func:`read_header`, if it has one."""
    uid = dataset.get("SOPInstanceUID")
    return str(uid) if uid else None


def dicom_pixels(path: str | Path, window: Window, where: str) -> np.ndarray:
    """The image as ``uint8``: ``[H, W]`` for grey (through the display pipeline above), ``[H, W, 3]`` for colour."""
    from pydicom.pixels import apply_modality_lut

    dataset = read_header(path, where)
    pixels = _decode(dataset, path, where)
    if int(dataset.get("SamplesPerPixel", 1)) == 3:
        return _colour(pixels, int(dataset.get("BitsStored", 8)))
    values = apply_modality_lut(pixels, dataset)
    try:
        grey = _voi(values, dataset, window)
    except ValueError as exc:  # an unusable window or VOI LUT in the file
        raise DataError(f"{path}: cannot apply the file's window ({exc}); set data.window_center and "
                        f"data.window_width, or data.window_from_file=false") from None
    if dataset.get("PhotometricInterpretation", "MONOCHROME2") == "MONOCHROME1":
        grey = 255 - grey  # MONOCHROME1: the lowest value is white
    return grey


def _decode(dataset: Any, path: str | Path, where: str) -> np.ndarray:
    try:
        return dataset.pixel_array
    except Exception as exc:  # missing decoder, truncated pixel data, inconsistent header ...
        syntax = getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", None)
        hint = f"; {DECODER_HINT}" if syntax is not None and syntax.is_compressed else ""
        referred = "" if where == str(path) else f" (referred to by {where})"
        raise DataError(f"{path}: cannot decode the DICOM pixel data ({exc}){referred}{hint}") from None


def _colour(pixels: np.ndarray, bits: int) -> np.ndarray:
    if pixels.dtype == np.uint8:
        return pixels
    return np.round(pixels.astype(np.float64) * (255.0 / (2 ** bits - 1))).clip(0, 255).astype(np.uint8)


def _voi(values: np.ndarray, dataset: Any, window: Window) -> np.ndarray:
    """Modality values to 0-255 by the first rule that applies (see the module docstring)."""
    from pydicom.pixels import apply_voi

    if window.center is not None and window.width is not None:
        return _window(values, window.center, window.width, "LINEAR")
    if window.from_file and dataset.get("VOILUTSequence"):
        depth = int(dataset.VOILUTSequence[0].LUTDescriptor[2])
        mapped = apply_voi(np.rint(values).astype(np.int64), dataset)  # a LUT is indexed by whole values
        return np.round(mapped.astype(np.float64) * (255.0 / (2 ** depth - 1))).clip(0, 255).astype(np.uint8)
    if window.from_file and "WindowCenter" in dataset and "WindowWidth" in dataset:
        function = str(dataset.get("VOILUTFunction", "LINEAR") or "LINEAR")
        return _window(values, _first(dataset.WindowCenter), _first(dataset.WindowWidth), function)
    return stretch_to_uint8(np.asarray(values, dtype=np.float64))


def _window(values: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """pydicom's windowing (LINEAR, LINEAR_EXACT or SIGMOID, DICOM PS3.3 C.11.2.1) onto 0-255.

    pydicom scales its output to the stored bit depth, so an 8-bit unsigned scratch header makes
    that range 0-255 directly.
    """
    from pydicom.dataset import Dataset
    from pydicom.pixels import apply_windowing
    from pydicom.valuerep import DSfloat

    scratch = Dataset()
    scratch.PhotometricInterpretation = "MONOCHROME2"
    scratch.BitsStored, scratch.PixelRepresentation = 8, 0
    scratch.WindowCenter = DSfloat(center, auto_format=True)
    scratch.WindowWidth = DSfloat(width, auto_format=True)
    scratch.VOILUTFunction = function
    windowed = apply_windowing(np.asarray(values, dtype=np.float64), scratch)
    return np.round(windowed).clip(0, 255).astype(np.uint8)


def _first(value: Any) -> float:
    """A window value: files may list several alternative windows; the first is the default view."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return float(value[0])
    return float(value)
