"""DICOM pixels through the display pipeline: rescale, window (file, config, VOI LUT, min-max),
MONOCHROME1, 12- and 16-bit, signed data, colour; and the files that must be refused."""

from __future__ import annotations

import numpy as np
import pytest

from crossfuse.errors import DataError
from crossfuse_medical.images import MedicalImage, Window, load_pixels, probe, to_pil

from medical_files import write_dicom

STORED = np.array([[0, 100], [200, 300]], dtype=np.uint16)  # slope 2, intercept -100: -100, 100, 300, 500


def pixels(path, window=None):
    return load_pixels(MedicalImage(str(path), (), (), str(path)), window or Window()).tolist()


def test_rescale_then_the_files_linear_window(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", STORED, slope=2, intercept=-100, window=(200, 401))
    # DICOM LINEAR: ((x - (c - 0.5)) / (w - 1) + 0.5) * 255, clipped: x = 100 -> 64.07, x = 300 -> 191.57
    assert pixels(path) == [[0, 64], [192, 255]]


def test_monochrome1_is_inverted_after_the_window(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", STORED, slope=2, intercept=-100, window=(200, 401),
                       photometric="MONOCHROME1")
    assert pixels(path) == [[255, 191], [63, 0]]


def test_a_config_window_overrides_the_files(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", STORED, slope=2, intercept=-100, window=(200, 401))
    assert pixels(path, Window(center=300, width=201)) == [[0, 0], [128, 255]]


def test_without_a_window_the_image_range_is_stretched(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", STORED, slope=2, intercept=-100, window=(200, 401))
    assert pixels(path, Window(from_file=False)) == [[0, 85], [170, 255]]
    bare = write_dicom(tmp_path / "b.dcm", STORED, slope=2, intercept=-100)
    assert pixels(bare) == [[0, 85], [170, 255]]


def test_12_bit_data_in_16_bit_words_ignores_the_unused_high_bits(tmp_path):
    values = np.array([[0, 1000], [2000, 4095]], dtype=np.uint16)
    path = write_dicom(tmp_path / "a.dcm", values | 0xF000, bits_stored=12)  # garbage above bit 11
    assert pixels(path) == [[0, 62], [125, 255]]  # 1000 * 255 / 4095 = 62.3, 2000 -> 124.5


def test_full_16_bit_data(tmp_path):
    values = np.array([[0, 30000], [60000, 65535]], dtype=np.uint16)
    path = write_dicom(tmp_path / "a.dcm", values, window=(32768, 65536))
    assert pixels(path) == [[0, 117], [233, 255]]


def test_signed_12_bit_ct_values_with_a_lung_window(tmp_path):
    stored = np.array([[-1024, 0], [1024, 2047]], dtype=np.int16)
    path = write_dicom(tmp_path / "ct.dcm", stored, bits_stored=12, signed=True, slope=1, intercept=-1024,
                       window=(-600, 1501))
    # HU -2048, -1024, 0, 1023 through center -600, width 1501: -1024 -> 55.5, 0 -> 229.6
    assert pixels(path) == [[0, 56], [230, 255]]


def test_the_files_voi_lut_sequence_is_applied_and_scaled_to_8_bits(tmp_path):
    stored = np.array([[0, 1], [2, 3]], dtype=np.uint16)
    path = write_dicom(tmp_path / "a.dcm", stored, voi_lut=(0, 16, [0, 1000, 40000, 65535]), window=(1, 2))
    assert pixels(path) == [[0, 4], [156, 255]]  # the LUT wins over the window, as pydicom prefers it


def test_the_files_sigmoid_function_is_honoured(tmp_path):
    stored = np.array([[50, 50], [0, 1000]], dtype=np.uint16)
    path = write_dicom(tmp_path / "a.dcm", stored, window=(50, 100), voi_function="SIGMOID")
    # 255 / (1 + exp(-4 (x - c) / w)): x = c -> 127.5, x = 0 -> 255 / (1 + e^2) = 30.4, x = 1000 -> 255
    assert pixels(path) == [[128, 128], [30, 255]]


def test_colour_dicom_keeps_its_channels(tmp_path):
    rgb = np.zeros((3, 4, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 2] = 200, 40
    path = write_dicom(tmp_path / "us.dcm", rgb)
    assert probe(path, "here") == 3
    image = to_pil(MedicalImage(str(path), (), (), "x", channels=3), "RGB")
    assert image.getpixel((1, 1)) == (200, 0, 40)


def test_grey_dicom_becomes_three_equal_channels_for_an_rgb_backbone(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", STORED, slope=2, intercept=-100, window=(200, 401))
    image = to_pil(MedicalImage(str(path), (), (), "x"), "RGB")
    assert image.mode == "RGB" and image.getpixel((1, 0)) == (64, 64, 64)


def test_a_dicom_without_pixel_data_is_refused_naming_the_file(tmp_path):
    path = write_dicom(tmp_path / "sr.dcm", STORED, pixel_data=False)
    with pytest.raises(DataError, match=r"sr\.dcm: the DICOM file holds no pixel data.*labels\.csv, line 3"):
        probe(path, "labels.csv, line 3")


def test_a_file_that_is_not_dicom_is_refused(tmp_path):
    path = tmp_path / "broken.dcm"
    path.write_bytes(b"this is not a DICOM file at all" * 10)
    with pytest.raises(DataError, match=r"broken\.dcm: not a readable DICOM file"):
        probe(path, str(path))


def test_truncated_pixel_data_is_an_error_when_the_pixels_are_read(tmp_path):
    path = write_dicom(tmp_path / "cut.dcm", np.zeros((64, 64), dtype=np.uint16))
    path.write_bytes(path.read_bytes()[:-4000])
    with pytest.raises(DataError, match=r"cut\.dcm"):
        pixels(path)


def test_multi_frame_files_are_refused(tmp_path):
    path = write_dicom(tmp_path / "cine.dcm", np.zeros((2, 4, 4), dtype=np.uint8).reshape(8, 4), frames=2)
    with pytest.raises(DataError, match=r"cine\.dcm: the DICOM file holds 2 frames"):
        probe(path, str(path))
