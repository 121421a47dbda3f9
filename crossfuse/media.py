"""Reading the files tasks are made of: text, images and audio, with errors that name the file.

Every first-party plugin reads its inputs through these, so an unreadable file gives the same
kind of message everywhere: the path, what went wrong, what was expected. Heavy libraries
(PIL, torch, soundfile) are imported inside the functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")


def read_text(path: str | Path, encoding: str = "utf-8") -> str:
    """The whole of a text file; a decoding error names the file, the line and the byte.

    >>> read_text("Sentences_AllAgree.txt", "latin-1")          # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        return path.read_text(encoding=encoding)
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}, line {line}: not valid {encoding} text (byte {exc.start}); save the file as "
                        f"UTF-8, or give its encoding (data.encoding where the task has it, e.g. latin-1)") from None


def lines(text: str) -> list[str]:
    """Split on newlines only: ``str.splitlines()`` also splits at U+0085, U+2028 ..., which occur
    inside sentences (a cp1252 ellipsis read as latin-1 is U+0085)."""
    return [line.rstrip("\r") for line in text.split("\n")]


def load_image(path: str | Path, where: str | None = None, mode: str = "RGB") -> Any:
    """The image at ``path`` as a ``PIL.Image`` in ``mode`` (``"RGB"`` or ``"L"`` for grey).

    ``where`` (e.g. ``"pairs.txt, line 7"``) says who referred to the file, for the error message.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.convert(mode)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        referred = f"; referred to by {where}" if where else ""
        raise DataError(f"{path}: cannot read the image ({exc}); expected a PNG, JPEG, BMP or TIFF file"
                        f"{referred}") from None


def image_size(path: str | Path, where: str | None = None) -> tuple[int, int]:
    """``(width, height)`` of an image file from its header, without decoding the pixels."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        referred = f"; referred to by {where}" if where else ""
        raise DataError(f"{path}: cannot read the image ({exc}){referred}") from None


def image_tensor(path: str | Path, where: str | None = None) -> Any:
    """The image at ``path`` as an RGB ``uint8`` tensor ``[3, H, W]`` (what detection models take)."""
    from torchvision.transforms.v2.functional import pil_to_tensor

    return pil_to_tensor(load_image(path, where))


def load_audio(path: str | Path, sample_rate: int | None = None, where: str | None = None) -> tuple[Any, int]:
    """A sound file as a mono float32 waveform tensor ``[T]`` and its sample rate.

    Stereo is mixed down; with ``sample_rate`` the clip is resampled to it (torchaudio), so 8 kHz,
    44.1 kHz or 24-bit files are converted rather than refused. Read with ``soundfile``
    (``torchaudio.load`` needs an FFmpeg build this project does not require).
    """
    import soundfile
    import torch

    referred = f"; referred to by {where}" if where else ""
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError, soundfile.LibsndfileError) as exc:
        raise DataError(f"{path}: cannot read the audio ({exc}); expected a WAV, FLAC or OGG file{referred}") from None
    if data.shape[0] == 0:
        raise DataError(f"{path}: the audio file holds no samples{referred}")
    waveform = torch.from_numpy(data.mean(axis=1))
    if sample_rate and rate != sample_rate:
        import torchaudio

        waveform = torchaudio.functional.resample(waveform, rate, sample_rate)
        rate = sample_rate
    return waveform, rate
