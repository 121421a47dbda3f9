"""Readers for face-recognition data in the formats the field uses (LFW and folders of identities).

Layouts: one folder per identity (``root/<name>/<name>_0001.jpg`` ...), as in LFW, CASIA-WebFace
exports and most private galleries; and LFW's pair lists, both the 10-fold ``pairs.txt`` and the
single-split ``pairsDevTrain.txt`` / ``pairsDevTest.txt``. Errors name the file, the line and what
was expected.

The dataset registry calls :func:`read_identity_dataset` and :func:`read_lfw_pairs` as
``reader(path, options)`` (``options``: the task's ``data`` section); :func:`is_identity_root` and
:func:`is_lfw_folder` are their cheap ``detect`` functions for ``data.format: auto``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crossfuse.errors import DataError
from crossfuse.media import IMAGE_EXTENSIONS, lines, read_text

# LFW's pair lists, in the order a folder is searched: the 10-fold protocol first (what papers report).
PAIRS_FILES = ("pairs.txt", "pairsDevTest.txt", "pairsDevTrain.txt")


@dataclass(frozen=True)
class FaceImage:
    """One face image and the identity (folder name) it belongs to."""

    path: str
    identity: str


@dataclass(frozen=True)
class Pair:
    """Two face images to verify; ``same`` is the ground truth, ``where`` is ``"pairs.txt, line N"``.

    What every pairs reader returns (a list of them). ``fold`` is the LFW fold (0 when the file has
    one: the metrics then split the pairs ten ways).
    """

    a: str
    b: str
    same: bool
    fold: int = 0
    where: str = ""


def image_path(root: str | Path, name: str, number: int, ext: str = "jpg") -> Path:
    """LFW's file name for image ``number`` of ``name``: ``root/name/name_0001.jpg``.

    >>> image_path("lfw", "George_W_Bush", 12).as_posix()
    'lfw/George_W_Bush/George_W_Bush_0012.jpg'
    """
    return Path(root) / name / f"{name}_{int(number):04d}.{ext.lstrip('.')}"


# --- identity folders ---------------------------------------------------------------------------

def _identity_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise DataError(f"face image root {str(root)!r} {what}; expected one sub-folder per identity "
                        f"(root/<name>/<image files>)")
    # Hidden folders (.ipynb_checkpoints, .DS_Store's siblings) are not identities.
    dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not dirs:
        raise DataError(f"{root}: no identity folders; expected one sub-folder per person, "
                        f"each holding that person's images")
    return dirs


def _images_in(folder: Path, exts: tuple[str, ...]) -> list[Path]:
    wanted = {e.lower() for e in exts}
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in wanted)


def read_identity_folders(root: str | Path, exts: tuple[str, ...] = IMAGE_EXTENSIONS,
                          min_images: int = 1) -> list[FaceImage]:
    """Every image under ``root/<identity>/``, sorted by identity then file name.

    ``min_images=2`` is what verification training and gallery/probe splits need: a person seen
    once cannot form a matched pair. A folder with fewer images is an error, not silently dropped,
    so a typo in a folder name does not shrink the data set unnoticed.
    """
    images = []
    for folder in _identity_dirs(Path(root)):
        files = _images_in(folder, exts)
        if len(files) < min_images:
            why = " (two are needed to form a matched pair)" if min_images == 2 else ""
            raise DataError(f"{folder}: identity {folder.name!r} has {len(files)} image(s) with extensions "
                            f"{', '.join(exts)}; expected at least {min_images}{why}. Add images or remove "
                            f"the folder")
        images.extend(FaceImage(str(f), folder.name) for f in files)
    return images


# --- LFW pair lists -----------------------------------------------------------------------------

def _numbered_lines(path: Path) -> list[tuple[int, list[str]]]:
    """Non-blank lines as (line number, whitespace-split fields): LFW mixes tabs and spaces across copies."""
    return [(n, line.split()) for n, line in enumerate(lines(read_text(path)), start=1) if line.strip()]


def _header(path: Path, number: int, fields: list[str]) -> tuple[int, int]:
    """(folds, pairs per class per fold): ``10 300`` for pairs.txt, a single ``N`` for the Dev files."""
    try:
        values = [int(f) for f in fields]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or min(values) < 1:
        raise DataError(f"{path}, line {number}: malformed header {' '.join(fields)!r}; expected "
                        f"'<folds> <pairs per fold>' (pairs.txt, e.g. '10 300') or a single count "
                        f"(pairsDevTest.txt, e.g. '500')")
    return (values[0], values[1]) if len(values) == 2 else (1, values[0])


def _image_number(path: Path, number: int, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise DataError(f"{path}, line {number}: image number {text!r} is not an integer") from None


def _existing_image(path: Path, number: int, root: Path, name: str, image: int, ext: str) -> str:
    if not (root / name).is_dir():
        raise DataError(f"{path}, line {number}: no folder for person {name!r}; expected {root / name}")
    file = image_path(root, name, image, ext)
    if not file.is_file():
        raise DataError(f"{path}, line {number}: image {image} of {name!r} does not exist; expected {file}")
    return str(file)


def _pair(path: Path, number: int, fields: list[str], same: bool, fold: int, root: Path, ext: str) -> Pair:
    expected = 3 if same else 4
    if len(fields) not in (3, 4):
        raise DataError(f"{path}, line {number}: {len(fields)} field(s); expected 3 ('name n1 n2', matched) "
                        f"or 4 ('name1 n1 name2 n2', mismatched)")
    if len(fields) != expected:
        kind, other = ("matched", "mismatched") if same else ("mismatched", "matched")
        raise DataError(f"{path}, line {number}: a {other} line ({len(fields)} fields) where a {kind} line "
                        f"({expected} fields) was expected; each fold lists its matched pairs first, then "
                        f"the same number of mismatched pairs, as the header says")
    names = [fields[0], fields[0]] if same else [fields[0], fields[2]]
    images = [_image_number(path, number, f) for f in ((fields[1], fields[2]) if same else (fields[1], fields[3]))]
    a, b = (_existing_image(path, number, root, n, i, ext) for n, i in zip(names, images))
    return Pair(a, b, same, fold, f"{path.name}, line {number}")


def read_pairs(pairs_file: str | Path, images_root: str | Path, ext: str = "jpg") -> list[Pair]:
    """LFW verification pairs from ``pairs.txt`` (10 folds) or ``pairsDevTrain/DevTest.txt`` (fold 0).

    ``pairs.txt`` starts with ``<folds> <n>``; each fold then has ``n`` matched lines
    ``name n1 n2`` followed by ``n`` mismatched lines ``name1 n1 name2 n2``. The Dev files start
    with a single ``n`` and hold one such block. Images are looked up as
    ``images_root/name/name_000k.<ext>`` and must exist.
    """
    path = Path(pairs_file)
    if not path.is_file():
        raise DataError(f"pairs file {str(path)!r} does not exist; expected LFW's pairs.txt or pairsDevTest.txt")
    numbered = _numbered_lines(path)
    if not numbered:
        raise DataError(f"{path}, line 1: the file is empty; expected a header line such as '10 300'")
    folds, per_class = _header(path, *numbered[0])
    body, expected = numbered[1:], 2 * folds * per_class
    if len(body) < expected:
        last = numbered[-1][0]
        raise DataError(f"{path}, line {last}: the file ends after {len(body)} pair line(s); the header "
                        f"({' '.join(numbered[0][1])!r}) promises {expected} ({folds} fold(s) x {per_class} matched "
                        f"+ {per_class} mismatched)")
    if len(body) > expected:
        raise DataError(f"{path}, line {body[expected][0]}: more pair lines than the header "
                        f"({' '.join(numbered[0][1])!r}) promises ({expected}); fix the header or remove the extra lines")
    root = Path(images_root)
    return [_pair(path, number, fields, (i % (2 * per_class)) < per_class, i // (2 * per_class), root, ext)
            for i, (number, fields) in enumerate(body)]


# --- the dataset registry's readers and detectors ------------------------------------------------

def is_identity_root(path: str | Path) -> bool:
    """``detect`` of ``identity-folders``: a folder whose sub-folders hold images, and no LFW pairs file
    (a folder with ``pairs.txt`` is read as pairs; set ``data.format=identity-folders`` to train on it)."""
    path = Path(path)
    if not path.is_dir() or any((path / name).is_file() for name in PAIRS_FILES):
        return False
    wanted = set(IMAGE_EXTENSIONS)
    return any(file.suffix.lower() in wanted for folder in path.iterdir()
               if folder.is_dir() and not folder.name.startswith(".") for file in folder.iterdir())


def is_lfw_folder(path: str | Path) -> bool:
    """``detect`` of ``lfw-pairs``: a folder holding ``pairs.txt``, ``pairsDevTest.txt`` or ``pairsDevTrain.txt``."""
    path = Path(path)
    return path.is_dir() and any((path / name).is_file() for name in PAIRS_FILES)


def read_identity_dataset(path: str | Path, options: Any = None) -> list[FaceImage]:
    """Reader of ``identity-folders``: :func:`read_identity_folders` of ``path`` (``root/NAME/*.jpg``)."""
    return read_identity_folders(path)


def read_lfw_pairs(path: str | Path, options: Any = None) -> list[Pair]:
    """Reader of ``lfw-pairs``: a pairs file, or a folder holding one (``pairs.txt`` first, then
    ``pairsDevTest.txt``, then ``pairsDevTrain.txt``).

    Images are looked up under ``options.images_root`` when the config names one
    (``data.test_images`` ...), else in the folder of the pairs file, with extension
    ``options.image_ext`` (``jpg``).
    """
    path = Path(path)
    if path.is_dir():
        found = [path / name for name in PAIRS_FILES if (path / name).is_file()]
        if not found:
            raise DataError(f"{path}: a folder without {', '.join(PAIRS_FILES)}; give the pairs file itself, "
                            f"or a folder holding one next to the NAME/NAME_0001.jpg folders")
        path = found[0]
    root = getattr(options, "images_root", None) or path.parent
    return read_pairs(path, root, ext=getattr(options, "image_ext", "jpg"))
