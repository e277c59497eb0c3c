"""One loader for every picture a reader gives us: what the eye sees, as 8-bit RGB.

(Extra code – not in the book.) `PIL.Image.open(path).convert("RGB")` silently changes a
reader's photo in four ways: a phone picture stored sideways with an EXIF "rotate" tag
comes out on its side, transparent areas of a PNG turn black (the hidden colour under
alpha 0 is usually black), a 16-bit PNG is clipped to its lowest byte instead of scaled,
and a 50-megapixel JPEG is decoded whole (150 MB) only to be shrunk to 256 px. Here:

* the EXIF orientation is applied (`ImageOps.exif_transpose`);
* transparency (RGBA, LA, palette images with a transparent colour) is composited on white;
* greyscale, CMYK and palette images become RGB; 16-bit images are scaled (65535 -> 255);
* with `max_side`, a large JPEG is decoded directly at 1/2, 1/4 or 1/8 size (`Image.draft`,
  the JPEG decoder's own scaling, so the full-size pixels never exist in memory) and any
  image larger than that is then reduced by an integer factor (`Image.reduce`, box filter).

A missing file says "not found", anything PIL cannot decode says the file is not an image or
is damaged: both are `UserError`s, so a command line prints one line (`utils.cli`).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from utils.cli import UserError

PathLike = str | os.PathLike

BACKGROUND = (255, 255, 255)  # what transparent pixels are composited on


class PhotoNotFoundError(UserError, FileNotFoundError):
    """The path given for a picture does not exist (or is a folder)."""


class NotAnImageError(UserError, ValueError):
    """The file exists but cannot be decoded as a picture."""


def _check_path(path: PathLike) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise PhotoNotFoundError(f"not found: {path} — check the path (relative paths start at "
                                 f"{Path.cwd()}).")
    if path.is_dir():
        raise PhotoNotFoundError(f"{path} is a folder, not an image file — give the path of one "
                                 "picture (.jpg, .png, ...).")
    return path


def _to_8bit(image: Image.Image) -> Image.Image:
    """16-bit and float greyscale modes ("I;16", "I", "F") scaled to "L" (not clipped)."""
    values = np.asarray(image)
    if image.mode == "F":
        top = 1.0 if float(np.nanmax(values, initial=0.0)) <= 1.0 else 255.0
        scaled = np.nan_to_num(values) * (255.0 / top)
    else:  # "I;16*" and "I" (what PIL makes of 16-bit PNGs and TIFFs): 0..65535
        scaled = values.astype(np.float64) / 257.0
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), "L")


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL image as RGB: transparency composited on white, 16-bit scaled, EXIF not touched."""
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        image = _to_8bit(image)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode in ("P", "L", "RGB") and "transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def _shrink(image: Image.Image, max_side: int | None) -> Image.Image:
    if max_side is None:
        return image
    factor = math.ceil(max(image.size) / max_side)
    return image.reduce(factor) if factor > 1 else image


@contextlib.contextmanager
def _opened(source, label: str) -> Iterator[Image.Image]:
    """`Image.open(source)`: the one way every picture is opened, so that each failure a reader's
    file can cause is one clear error whichever path the picture takes (its size read from the
    header, or decoded): not found, not an image, damaged, or too large to decode safely (a
    header that claims 20000×20000 pixels: PIL's `DecompressionBombError`)."""
    try:
        with Image.open(source) as image, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield image
    except PermissionError:
        raise  # the reader's file system, not the picture: utils.cli says so in one line
    except Image.DecompressionBombError as error:
        raise NotAnImageError(
            f"{label} is too large to decode safely ({error}) — shrink it below 100 megapixels "
            "first (any image editor).") from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise _not_an_image(label, error) from error


@contextlib.contextmanager
def open_picture(path: PathLike) -> Iterator[Image.Image]:
    """A picture file opened as it is (its mode kept: a mask stays greyscale, no EXIF turn), with
    the same one-line errors as `read_photo` (not found, not an image, too large)."""
    path = _check_path(path)
    with _opened(path, str(path)) as image:
        yield image


def picture_size(path: PathLike) -> tuple[int, int]:
    """(width, height) of a picture as the reader sees it (EXIF rotation applied), header only."""
    path = _check_path(path)
    with _opened(path, str(path)) as image:
        width, height = image.size
        turned = image.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # Orientation: 90° turns
    return (height, width) if turned else (width, height)


def _not_an_image(path: Path | str, error: BaseException) -> NotAnImageError:
    return NotAnImageError(
        f"{path} is not an image or is damaged ({error}) — open it in an image viewer; if it "
        "shows, save it again as .jpg or .png, else replace it.")


def _decode(source, label: str, max_side: int | None) -> Image.Image:
    with _opened(source, label) as image:
        if max_side is not None and image.format == "JPEG":
            longest = max(image.size)  # the same side before and after an EXIF turn
            image.draft("RGB", tuple(max(1, side * max_side // longest) for side in image.size))
        image.load()
        upright = ImageOps.exif_transpose(image)
        return _shrink(to_rgb(upright), max_side)


def read_photo(path: PathLike, max_side: int | None = None) -> Image.Image:
    """The picture at `path` as an RGB PIL image, upright, transparency on white (see above).

    `max_side` bounds the longer side (large JPEGs are decoded small to begin with).
    """
    path = _check_path(path)
    return _decode(path, str(path), max_side)


def read_photo_bytes(data: bytes, name: str = "the upload", max_side: int | None = None) -> Image.Image:
    """`read_photo` for a picture held in memory (a notebook upload): the same rules."""
    if not data:
        raise NotAnImageError(f"{name} is empty (0 bytes) — choose the file again.")
    return _decode(io.BytesIO(data), name, max_side)


def read_rgb_array(path: PathLike, max_side: int | None = None) -> np.ndarray:
    """`read_photo` as an (H, W, 3) uint8 array (what albumentations and OpenCV take)."""
    return np.asarray(read_photo(path, max_side))
