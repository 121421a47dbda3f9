"""Samples to PIL images: arrays and files, grey and colour, 16-bit PNGs; the model's input mode."""

from __future__ import annotations

import numpy as np
import pytest

from crossfuse.errors import DataError
from crossfuse_medical.images import MedicalImage, image_mode, input_image, load_pixels, to_pil

from medical_files import write_png


def test_an_in_memory_grey_array_becomes_an_l_or_rgb_image():
    pixels = np.array([[0, 50], [100, 255]], dtype=np.uint8)
    sample = MedicalImage(pixels, (1,), ("a", "b"), "x.npz, train_images[0]")
    assert not sample.is_file
    grey = to_pil(sample, "L")
    assert grey.mode == "L" and np.array_equal(np.asarray(grey), pixels)
    rgb = to_pil(sample, "RGB")
    assert rgb.getpixel((1, 0)) == (50, 50, 50)


def test_a_colour_png_keeps_its_colours_or_becomes_grey_by_luma(tmp_path):
    pixels = np.zeros((2, 2, 3), dtype=np.uint8)
    pixels[0, 0] = (255, 0, 0)
    path = write_png(tmp_path / "c.png", pixels)
    sample = input_image(path)
    assert sample.channels == 3 and sample.labels == ()
    assert to_pil(sample, "RGB").getpixel((0, 0)) == (255, 0, 0)
    assert to_pil(sample, "L").getpixel((0, 0)) == 76  # ITU-R 601 luma of pure red


def test_a_16_bit_png_is_stretched_over_its_own_range(tmp_path):
    values = np.array([[0, 1000], [2000, 4000]], dtype=np.uint16)  # 12-bit data in a 16-bit PNG
    path = write_png(tmp_path / "x16.png", values)
    assert load_pixels(input_image(path)).tolist() == [[0, 64], [128, 255]]


def test_unreadable_files_name_the_file_and_who_referred_to_it(tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    with pytest.raises(DataError, match=r"broken\.png: cannot read the image"):
        input_image(broken)
    with pytest.raises(DataError, match=r"notes\.txt: not an image file"):
        input_image(tmp_path / "notes.txt")
    truncated = write_png(tmp_path / "cut.png", np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(DataError, match=r"cut\.png: cannot read the image .*referred to by t\.csv, line 4"):
        load_pixels(MedicalImage(str(truncated), (0,), ("a",), "t.csv, line 4"))


def test_the_model_input_mode_follows_the_data_unless_configured():
    grey = MedicalImage(np.zeros((2, 2), np.uint8), (0,), ("a",), "g")
    colour = MedicalImage(np.zeros((2, 2, 3), np.uint8), (0,), ("a",), "c", channels=3)
    assert image_mode([grey, grey]) == "L" and image_mode([grey, colour]) == "RGB"
    assert image_mode([colour], "grey") == "L" and image_mode([grey], "rgb") == "RGB"
