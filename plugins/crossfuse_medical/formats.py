"""Dataset readers of the medical tasks, each with a cheap layout test for ``data.format: auto``.

=============== ============================================== =========================================
format          layout                                         returns
=============== ============================================== =========================================
medmnist        ``x.npz`` with ``{train,val,test}_{images,     :class:`Splits` (all three splits)
                labels}`` (+ ``label_names``, ``*_notes``)
image-folder    ``root/{train,val,test}/CLASS/*.png`` or       :class:`Splits`, or one split
                ``root/CLASS/*.png`` (PNG, JPEG, TIFF, DICOM)
image-csv       ``x.csv``: an image path column + labels       one split
dicom-folder    ``root/**/*.dcm`` + a labels CSV keyed by      one split
                file name or ``SOPInstanceUID``
=============== ============================================== =========================================

A reader is called as ``reader(path, options)`` with the task's data config (fields read with
``getattr`` and defaults, so ``options=None`` works). Every file is checked when the dataset is
read (its header: no pixels are decoded), so bad data stops a run before anything is written;
each error is a :class:`DataError` naming the file and the item, line or key. No torch here.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from crossfuse.datasets import Splits
from crossfuse.errors import DataError, DataWarning

from .images import DICOM_EXTENSIONS, FILE_EXTENSIONS, MedicalImage, probe
from .tables import read_label_table

NPZ_SPLITS = {"train": "train", "val": "validation", "test": "test"}  # key prefix -> split
SPLIT_FOLDERS = {"train": ("train", "training"), "validation": ("val", "valid", "validation"),
                 "test": ("test", "testing")}


# -- MedMNIST .npz -------------------------------------------------------------------------------


def is_medmnist(path: str | Path) -> bool:
    """A ``.npz`` file with a ``train_images`` array (read from the zip directory, no array loaded)."""
    path = Path(path)
    if not (path.is_file() and path.suffix.lower() == ".npz"):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return "train_images.npy" in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def read_medmnist(path: str | Path, options: Any = None) -> Splits:
    """A MedMNIST ``.npz``: ``{train,val,test}_images`` (``uint8`` ``[N, H, W]`` or ``[N, H, W, 3]``) and
    ``{train,val,test}_labels`` (``[N]`` or ``[N, L]``: a class id when L = 1, 0/1 per finding when L > 1).

    Optional keys: ``label_names`` (``[K]`` or ``[L]`` strings) and ``{split}_notes`` (one referral note
    per image). ``data.labels`` names the classes when the file does not (MedMNIST files do not).
    """
    path = Path(path)
    arrays = _open_npz(path)
    prefixes = _npz_prefixes(arrays, path)
    images = {p: _npz_images(arrays, p, path) for p in prefixes}
    if not len(images["train"]):
        raise DataError(f"{path}: train_images holds no images")
    labels = {p: _npz_labels(arrays, p, len(images[p]), path) for p in prefixes}
    widths = {p: labels[p].shape[1] for p in prefixes}
    if len(set(widths.values())) > 1:
        raise DataError(f"{path}: the label arrays disagree on the number of labels per image "
                        f"({', '.join(f'{p}_labels: {w}' for p, w in widths.items())})")
    classes = _npz_classes(arrays, labels, path, options)
    splits: dict[str, Optional[list[MedicalImage]]] = dict.fromkeys(NPZ_SPLITS.values())
    for prefix in prefixes:
        notes = _npz_notes(arrays, prefix, len(images[prefix]), path)
        channels = 3 if images[prefix].ndim == 4 else 1
        splits[NPZ_SPLITS[prefix]] = [
            MedicalImage(images[prefix][i], tuple(int(v) for v in labels[prefix][i]), classes,
                         f"{path}, {prefix}_images[{i}]", notes[i] if notes else None, channels)
            for i in range(len(images[prefix]))]
    return Splits(**splits)


def _open_npz(path: Path) -> Any:
    try:
        return np.load(path, allow_pickle=False)  # never unpickle data files
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc}); expected a MedMNIST-style numpy archive") from None


def _npz_prefixes(arrays: Any, path: Path) -> list[str]:
    keys = set(arrays.files)
    prefixes = [p for p in NPZ_SPLITS if f"{p}_images" in keys or f"{p}_labels" in keys]
    expected = "train_images, train_labels, val_images, val_labels, test_images, test_labels"
    if "train" not in prefixes:
        raise DataError(f"{path}: no train_images/train_labels arrays (found: {', '.join(sorted(keys)) or 'none'}); "
                        f"expected the MedMNIST keys {expected}")
    for prefix in prefixes:
        for part in ("images", "labels"):
            if f"{prefix}_{part}" not in keys:
                raise DataError(f"{path}: {prefix}_{part} is missing while the other {prefix}_* array is there; "
                                f"expected the MedMNIST keys {expected}")
    return prefixes


def _npz_array(arrays: Any, key: str, path: Path) -> np.ndarray:
    try:
        return arrays[key]
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path}: cannot read the array {key} ({exc})") from None


def _npz_images(arrays: Any, prefix: str, path: Path) -> np.ndarray:
    images = _npz_array(arrays, f"{prefix}_images", path)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] != 3):
        raise DataError(f"{path}: {prefix}_images has shape {images.shape}; expected [N, H, W] (grey) or "
                        f"[N, H, W, 3] (RGB). 3D volumes (MedMNIST 3D) are not 2D images")
    if images.dtype != np.uint8:
        raise DataError(f"{path}: {prefix}_images is {images.dtype}; expected uint8 pixels (0-255) as MedMNIST "
                        f"writes them")
    if images.shape[1] < 8 or images.shape[2] < 8:
        raise DataError(f"{path}: {prefix}_images are {images.shape[1]} x {images.shape[2]} pixels; expected at "
                        f"least 8 x 8 (MedMNIST: 28 to 224)")
    return images


def _npz_labels(arrays: Any, prefix: str, count: int, path: Path) -> np.ndarray:
    labels = _npz_array(arrays, f"{prefix}_labels", path)
    if labels.ndim == 1:
        labels = labels[:, None]
    if labels.ndim != 2 or labels.shape[0] != count or labels.shape[1] < 1:
        raise DataError(f"{path}: {prefix}_labels has shape {labels.shape}; expected [{count}, L] for the {count} "
                        f"images of {prefix}_images (L = 1: a class id; L > 1: 0/1 per finding)")
    if not (np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.bool_)):
        whole = np.issubdtype(labels.dtype, np.floating) and np.all(np.isfinite(labels)) and \
            np.all(labels == np.round(labels))
        if not whole:
            raise DataError(f"{path}: {prefix}_labels is {labels.dtype} with non-integer values; expected class ids "
                            f"or 0/1 values")
    labels = labels.astype(np.int64)
    wrong = np.argwhere(labels < 0) if labels.shape[1] == 1 else np.argwhere((labels != 0) & (labels != 1))
    if len(wrong):
        i, j = wrong[0]
        expected = "a class id >= 0" if labels.shape[1] == 1 else "0 or 1 (one column per finding)"
        raise DataError(f"{path}: {prefix}_labels[{i}, {j}] is {labels[i, j]}; expected {expected}")
    return labels


def _npz_classes(arrays: Any, labels: dict[str, np.ndarray], path: Path, options: Any) -> tuple[str, ...]:
    """Names from ``data.labels``, else the file's ``label_names``, else ``"0"``, ``"1"`` ..."""
    configured = [str(n) for n in (getattr(options, "labels", None) or [])]
    stored = [str(n) for n in _npz_array(arrays, "label_names", path).reshape(-1)] if "label_names" in arrays.files \
        else []
    names, source = (configured, "data.labels") if configured else (stored, f"{path}: label_names")
    width = next(iter(labels.values())).shape[1]
    if width > 1:
        if names and len(names) != width:
            raise DataError(f"{source} gives {len(names)} names for {width} findings per image")
        return tuple(names) or tuple(str(i) for i in range(width))
    for prefix, values in labels.items():
        top = int(values.max()) if len(values) else -1
        if names and top >= len(names):
            i = int(np.argmax(values[:, 0]))
            raise DataError(f"{path}: {prefix}_labels[{i}] is class {top}, out of range for the {len(names)} "
                            f"classes of {source} ({', '.join(names)})")
    count = max(int(v.max()) for v in labels.values() if len(v)) + 1
    return tuple(names) or tuple(str(i) for i in range(count))


def _npz_notes(arrays: Any, prefix: str, count: int, path: Path) -> Optional[list[str]]:
    key = f"{prefix}_notes"
    if key not in arrays.files:
        return None
    notes = _npz_array(arrays, key, path)
    if notes.shape != (count,) or notes.dtype.kind != "U":
        raise DataError(f"{path}: {key} has shape {notes.shape} and type {notes.dtype}; expected {count} strings, "
                        f"one referral note per image of {prefix}_images")
    return [str(n) for n in notes]


# -- image folders -------------------------------------------------------------------------------


def is_image_folder(path: str | Path) -> bool:
    """A folder with ``train/`` and ``val/``, ``validation/`` or ``test/`` subfolders, or class folders
    that hold images directly (and not a DICOM folder with its labels CSV)."""
    path = Path(path)
    if not path.is_dir():
        return False
    if _split_folders(path):
        return True
    return not is_dicom_folder(path) and any(_holds_image(sub) for sub in _subfolders(path))


def read_image_folder(path: str | Path, options: Any = None) -> Splits | list[MedicalImage]:
    """Images sorted into one folder per class: ``root/{train,val,test}/CLASS/`` gives :class:`Splits`,
    ``root/CLASS/`` one split. Classes are the folder names (over all splits), sorted, or in the
    order of ``data.labels``, which must name the same folders. Images may sit in subfolders of
    their class folder; files that are not images (``Thumbs.db``, notes) are skipped.
    """
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; expected class folders (root/CLASS/*.png) or train/ val/ test/")
    splits = _split_folders(root)
    parents = list(splits.values()) if splits else [root]
    classes = _folder_classes(parents, root, options)
    if not splits:
        return _read_class_folders(root, classes)
    return Splits(**{name: _read_class_folders(folder, classes) for name, folder in splits.items()})


def _subfolders(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _split_folders(root: Path) -> dict[str, Path]:
    found = {}
    names = {p.name.lower(): p for p in _subfolders(root)}
    for split, candidates in SPLIT_FOLDERS.items():
        for candidate in candidates:
            if candidate in names:
                found[split] = names[candidate]
                break
    return found if "train" in found and len(found) > 1 else {}


def _holds_image(folder: Path) -> bool:
    with os.scandir(folder) as entries:
        return any(e.is_file() and Path(e.name).suffix.lower() in FILE_EXTENSIONS for e in entries)


def _images_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in FILE_EXTENSIONS
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _folder_classes(parents: list[Path], root: Path, options: Any) -> tuple[str, ...]:
    found = sorted({sub.name for parent in parents for sub in _subfolders(parent)})
    if not found:
        raise DataError(f"{root}: no class folders; expected one folder of images per class "
                        f"(root/CLASS/*.png or root/train/CLASS/*.png)")
    configured = [str(n) for n in (getattr(options, "labels", None) or [])]
    if configured and set(configured) != set(found):
        raise DataError(f"{root}: the class folders ({', '.join(found)}) differ from data.labels "
                        f"({', '.join(configured)}); name every class folder in data.labels")
    return tuple(configured) or tuple(found)


def _read_class_folders(parent: Path, classes: tuple[str, ...]) -> list[MedicalImage]:
    stray = [p for p in parent.iterdir() if p.is_file() and p.suffix.lower() in FILE_EXTENSIONS]
    if stray:
        raise DataError(f"{stray[0]}: an image outside any class folder of {parent}; move it into its class folder")
    samples = []
    for folder in _subfolders(parent):
        files = _images_under(folder)
        if not files:
            raise DataError(f"{folder}: empty class folder (no {', '.join(FILE_EXTENSIONS)} files); add its images "
                            f"or remove the folder")
        label = (classes.index(folder.name),)
        samples += [MedicalImage(str(f), label, classes, str(f), None, probe(f, str(f))) for f in files]
    return samples


# -- CSV of image paths --------------------------------------------------------------------------


def is_image_csv(path: str | Path) -> bool:
    """A ``.csv`` or ``.tsv`` file."""
    path = Path(path)
    return path.is_file() and path.suffix.lower() in (".csv", ".tsv")


def read_image_csv(path: str | Path, options: Any = None) -> list[MedicalImage]:
    """A table with one row per image: its path (relative to ``data.image_root``, default the table's
    folder) and its labels (:mod:`crossfuse_medical.tables`), plus a referral note column if present."""
    path = Path(path)
    table = read_label_table(path, options)
    root = Path(getattr(options, "image_root", None) or path.parent)
    samples = []
    for row in table.rows:
        file = Path(row.key) if Path(row.key).is_absolute() else root / row.key
        if not file.is_file():
            raise DataError(f"{row.where}: image {file} does not exist (column {table.image_column!r}; relative "
                            f"paths start at {root}, set data.image_root to change that)")
        samples.append(MedicalImage(str(file), row.labels, table.classes, row.where, row.note, probe(file, row.where)))
    return samples


# -- DICOM folders -------------------------------------------------------------------------------


def is_dicom_folder(path: str | Path) -> bool:
    """A folder with DICOM files (``.dcm``/``.dicom``, in it or its subfolders) and a ``.csv`` or DICOM
    file directly in it."""
    path = Path(path)
    if not path.is_dir():
        return False
    with os.scandir(path) as entries:
        top = {Path(e.name).suffix.lower() for e in entries if e.is_file()}
    if not top & ({".csv"} | set(DICOM_EXTENSIONS)):
        return False
    return next((True for p in path.rglob("*") if p.suffix.lower() in DICOM_EXTENSIONS and p.is_file()), False)


def read_dicom_folder(path: str | Path, options: Any = None) -> list[MedicalImage]:
    """Every DICOM file under ``path``, labelled by a CSV (``data.labels_csv``, default the one ``.csv``
    in the folder) whose image column holds file names (or paths relative to the folder) or
    ``SOPInstanceUID`` values (``data.dicom_key``: auto picks whichever matches more rows).

    A row naming no file is an error; a file without a row is skipped with a warning.
    """
    root = Path(path)
    files = _images_under(root) if root.is_dir() else []
    files = [f for f in files if f.suffix.lower() in DICOM_EXTENSIONS]
    if not files:
        raise DataError(f"{root}: no DICOM files (.dcm, .dicom) in this folder or its subfolders")
    table = read_label_table(_labels_csv(root, options), options)
    headers = {f: _dicom_facts(f) for f in files}
    keys, kind = _dicom_keys(headers, root, table.rows, getattr(options, "dicom_key", "auto"))
    samples, labelled = [], set()
    for row in table.rows:
        file = keys.get(row.key)
        if file is None:
            raise DataError(f"{row.where}: no DICOM file in {root} has the {kind} {row.key!r}")
        if file in labelled:
            raise DataError(f"{row.where}: {file} is labelled twice; keep one row per image")
        labelled.add(file)
        samples.append(MedicalImage(str(file), row.labels, table.classes, row.where, row.note, headers[file][1]))
    _warn_unlabelled([f for f in files if f not in labelled], root)
    return samples


def _dicom_facts(file: Path) -> tuple[Optional[str], int]:
    """(SOPInstanceUID, channels) from the header, which :func:`read_header` checks."""
    from .dicom import dicom_uid, read_header

    header = read_header(file, str(file))
    return dicom_uid(header), 3 if int(header.get("SamplesPerPixel", 1)) == 3 else 1


def _dicom_keys(headers: dict[Path, tuple[Optional[str], int]], root: Path, rows: Sequence[Any],
                mode: str) -> tuple[dict[str, Path], str]:
    """The file for each CSV key, and what the keys are: relative paths, unambiguous file names and
    stems, or SOPInstanceUIDs (``auto``: whichever matches more rows; file names on a tie)."""
    names = [f.name for f in headers]
    by_name: dict[str, Path] = {}
    for file in headers:
        by_name[file.relative_to(root).as_posix()] = file
        if names.count(file.name) == 1:  # the same name in two subfolders: only the relative path is safe
            by_name.setdefault(file.name, file)
            by_name.setdefault(file.stem, file)
    by_uid = {uid: file for file, (uid, _) in headers.items() if uid}
    if mode == "auto":
        mode = "uid" if sum(r.key in by_uid for r in rows) > sum(r.key in by_name for r in rows) else "file"
    return (by_uid, "SOPInstanceUID") if mode == "uid" else (by_name, "file name")


def _labels_csv(root: Path, options: Any) -> Path:
    chosen = getattr(options, "labels_csv", None)
    if chosen:
        path = Path(chosen) if Path(chosen).is_absolute() or Path(chosen).exists() else root / chosen
        if not path.is_file():
            raise DataError(f"data.labels_csv {chosen!r}: no such file (looked at {path})")
        return path
    tables = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in (".csv", ".tsv"))
    if len(tables) != 1:
        found = f"found {', '.join(p.name for p in tables)}" if tables else "found none"
        raise DataError(f"{root}: expected one .csv of labels in the DICOM folder ({found}); set data.labels_csv")
    return tables[0]


def _warn_unlabelled(files: list[Path], root: Path) -> None:
    if files:
        shown = ", ".join(str(f.relative_to(root)) for f in files[:3]) + (" ..." if len(files) > 3 else "")
        warnings.warn(DataWarning(f"{root}: {len(files)} DICOM file(s) have no row in the labels CSV and are left "
                                  f"out: {shown}"), stacklevel=3)
