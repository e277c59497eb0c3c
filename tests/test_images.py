"""The one loader for a reader's pictures: EXIF, transparency, greyscale, 16-bit, size, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from utils import images
from utils.cli import UserError, describe
from utils.inference import load_image, load_images


def _left_red_right_blue(width: int = 40, height: int = 20) -> np.ndarray:
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, : width // 2] = (255, 0, 0)
    pixels[:, width // 2:] = (0, 0, 255)
    return pixels


def test_exif_orientation_is_applied(tmp_path):
    """A phone stores the sensor's pixels and an Orientation tag; the reader sees them turned."""
    path = tmp_path / "sideways.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    Image.fromarray(_left_red_right_blue()).save(path, exif=exif, quality=95)
    picture = images.read_photo(path)
    assert picture.size == (20, 40)  # portrait, as a viewer shows it
    top, bottom = np.asarray(picture)[2, 10], np.asarray(picture)[-3, 10]
    assert top[0] > 200 and top[2] < 60  # the red half is now on top
    assert bottom[2] > 200 and bottom[0] < 60
    assert images.picture_size(path) == (20, 40)
    assert load_image(path, 8).shape == (1, 3, 8, 8)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparency_is_composited_on_white(tmp_path, mode):
    """Left half transparent (its hidden colour black, as most editors leave it), right half
    opaque black: the left half must come out white, not black."""
    path = tmp_path / f"{mode}.png"
    if mode == "P":
        indices = np.zeros((10, 12), np.uint8)
        indices[:, 6:] = 1  # palette entry 0 is transparent, entry 1 opaque; both black
        picture = Image.fromarray(indices, "P")
        picture.putpalette([0, 0, 0, 0, 0, 0])
        picture.save(path, transparency=0)
    else:
        rgba = np.zeros((10, 12, 4), np.uint8)
        rgba[:, 6:, 3] = 255
        Image.fromarray(rgba, "RGBA").convert(mode).save(path)
    assert Image.open(path).mode == mode
    rgb = np.asarray(images.read_photo(path))
    assert rgb.shape == (10, 12, 3)
    assert (rgb[:, :6] == 255).all()
    assert (rgb[:, 6:] == 0).all()


def test_greyscale_becomes_rgb(tmp_path):
    path = tmp_path / "grey.png"
    Image.fromarray(np.full((8, 8), 77, np.uint8), "L").save(path)
    rgb = np.asarray(images.read_photo(path))
    assert rgb.shape == (8, 8, 3) and (rgb == 77).all()


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    levels = np.array([[0, 257 * 100, 65535, 32768]], np.uint16).repeat(4, axis=0)
    path = tmp_path / "deep.png"
    Image.fromarray(levels).save(path)
    assert Image.open(path).mode.startswith("I")  # PIL keeps 16 bits: the case that used to clip
    rgb = np.asarray(images.read_photo(path))
    assert rgb[0, :, 0].tolist() == [0, 100, 255, 128]


def test_large_jpeg_is_decoded_small(tmp_path):
    path = tmp_path / "big.jpg"
    Image.fromarray(np.full((1600, 2400, 3), 128, np.uint8)).save(path)
    picture = images.read_photo(path, max_side=500)
    assert max(picture.size) <= 500 and picture.size[0] / picture.size[1] == pytest.approx(1.5, abs=0.02)
    assert images.read_photo(path).size == (2400, 1600)  # no max_side: full size


def test_large_png_is_reduced(tmp_path):
    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((900, 1200, 3), np.uint8)).save(path)
    assert max(images.read_photo(path, max_side=500).size) <= 500


def test_missing_photo_says_not_found(tmp_path):
    with pytest.raises(images.PhotoNotFoundError, match="not found") as caught:
        images.read_photo(tmp_path / "nope.jpg")
    assert isinstance(caught.value, UserError) and isinstance(caught.value, FileNotFoundError)
    assert "damaged" not in str(caught.value) and "nope.jpg" in describe(caught.value)
    with pytest.raises(images.PhotoNotFoundError, match="not found"):
        load_image(tmp_path / "nope.jpg", 16)


def test_folder_is_not_a_photo(tmp_path):
    with pytest.raises(images.PhotoNotFoundError, match="is a folder"):
        images.read_photo(tmp_path)


@pytest.mark.parametrize("content", [b"", b"<html>not a picture</html>", b"\xff\xd8\xff\xe0" + b"\0" * 20])
def test_undecodable_file_says_not_an_image(tmp_path, content):
    path = tmp_path / "photo.jpg"
    path.write_bytes(content)
    with pytest.raises(images.NotAnImageError, match="not an image or is damaged") as caught:
        images.read_photo(path)
    assert "photo.jpg" in str(caught.value) and isinstance(caught.value, UserError)
    assert path.read_bytes() == content  # the reader's file is left as it was


def test_load_images_takes_the_same_loader(tmp_path):
    """What translate/round_trip get from files: upright, alpha on white, 16-bit scaled."""
    rgba = np.zeros((8, 8, 4), np.uint8)  # transparent black
    Image.fromarray(rgba, "RGBA").save(tmp_path / "clear.png")
    Image.fromarray(np.full((8, 8), 65535, np.uint16)).save(tmp_path / "white16.png")
    batch = load_images([tmp_path / "clear.png", tmp_path / "white16.png"], 8)
    assert torch.allclose(batch, torch.ones_like(batch))  # both white, in [-1, 1]
