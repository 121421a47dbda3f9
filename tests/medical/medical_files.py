"""Small file writers for the medical tests: PNGs, MedMNIST .npz files, CSV tables and DICOM files."""

from __future__ import annotations

import csv

import numpy as np


def write_png(path, pixels=None, mode=None):
    """A PNG of ``pixels`` (default a 12 x 10 grey ramp); ``mode`` e.g. ``"I;16"``. Returns the path."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.arange(120, dtype=np.uint8).reshape(12, 10) if pixels is None else pixels
    Image.fromarray(pixels, mode).save(path)
    return path


def write_npz(path, **arrays):
    """``np.savez`` of ``arrays``; returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def medmnist_arrays(labels=None, channels=None, count=(4, 2, 3), size=28):
    """The six MedMNIST arrays: random uint8 images and labels (default class ids 0-2, shape [N, 1])."""
    rng = np.random.default_rng(0)
    arrays = {}
    for prefix, n in zip(("train", "val", "test"), count):
        shape = (n, size, size) + ((channels,) if channels else ())
        arrays[f"{prefix}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        arrays[f"{prefix}_labels"] = (labels[prefix] if labels else (np.arange(n) % 3)[:, None]).astype(np.uint8)
    return arrays


def write_csv(path, header, rows):
    """A CSV with ``header`` and ``rows`` (lists of values); returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_dicom(path, pixels, *, photometric="MONOCHROME2", bits_stored=None, signed=False, slope=None,
                intercept=None, window=None, voi_function=None, voi_lut=None, uid=None, pixel_data=True, frames=None):
    """A DICOM file (explicit VR little endian, with preamble) holding ``pixels``.

    ``pixels``: ``[H, W]`` uint8/uint16/int16 (grey) or ``[H, W, 3]`` uint8 (RGB). ``window``:
    ``(center, width)``; ``voi_lut``: ``(first mapped value, bits, table)``. Returns the path.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = uid or generate_uid()
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = pixels.shape[:2]
    colour = pixels.ndim == 3
    ds.SamplesPerPixel = 3 if colour else 1
    ds.PhotometricInterpretation = "RGB" if colour else photometric
    if colour:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(signed)
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept or 0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if voi_function:
        ds.VOILUTFunction = voi_function
    if voi_lut is not None:
        first, bits, table = voi_lut
        item = Dataset()
        item.LUTDescriptor = [len(table), first, bits]
        item.add_new(0x00283006, "US", [int(v) for v in table])  # LUTData: its VR is ambiguous (US or OW)
        ds.VOILUTSequence = Sequence([item])
    if frames:
        ds.NumberOfFrames = frames
    if pixel_data:
        ds.PixelData = pixels.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_films(path, train=48, validation=16, test=16, size=32, variant="multilabel", seed=3):
    """A small synthetic MedMNIST-style ``.npz`` (films, labels, notes, label_names); returns the path."""
    from crossfuse_medical.synth import write_medmnist_demo

    return write_medmnist_demo(path, train, validation, test, seed=seed, size=size, variant=variant)


def write_class_folders(root, counts=(24, 8, 8), size=32, seed=4):
    """``root/{train,val,test}/CLASS/*.png`` of synthetic films in the multi-class variant; returns root."""
    from crossfuse_medical.synth import MULTICLASS, synthesize

    start = 0
    for split, count in zip(("train", "val", "test"), counts):
        images, labels, _ = synthesize(count, seed=seed, size=size, variant="multiclass", start=start)
        start += count
        for i, (image, label) in enumerate(zip(images, labels[:, 0])):
            write_png(root / split / MULTICLASS[label] / f"{split}{i:03d}.png", image)
    return root


def write_binary_csv(root, count=40, size=32, seed=5):
    """``root/labels.csv`` (image, diagnosis: normal / abnormal, note) over PNG films in ``root/films``;
    a film is abnormal when it has any finding. Returns the CSV path."""
    from crossfuse_medical.synth import synthesize

    images, labels, notes = synthesize(count, seed=seed, size=size)
    rows = []
    for i, (image, label, note) in enumerate(zip(images, labels, notes)):
        write_png(root / "films" / f"film{i:03d}.png", image)
        rows.append([f"films/film{i:03d}.png", "abnormal" if label.any() else "normal", note])
    return write_csv(root / "labels.csv", ["image", "diagnosis", "note"], rows)
