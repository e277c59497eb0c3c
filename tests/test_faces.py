"""Finding a face and framing it like CelebA (no network: the detector's weights are in its wheel)."""

from __future__ import annotations

import builtins
import math

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("facenet_pytorch", reason='needs pip install --no-deps "facenet-pytorch==2.6.0"')
skimage_data = pytest.importorskip("skimage.data")

from benchmarks.face_detectors import synthetic_photo  # noqa: E402
from utils import faces  # noqa: E402
from utils.cli import UserError  # noqa: E402

TARGETS = np.array([faces.CELEBA_LEFT_EYE, faces.CELEBA_RIGHT_EYE])


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return Image.fromarray(skimage_data.astronaut())


def _landing(face: faces.Face, eyes: np.ndarray) -> np.ndarray:
    """Where `eyes` (photo pixels) land in the crop that `face` is aligned with."""
    matrix = faces.alignment_matrix(face.left_eye, face.right_eye)
    return eyes @ matrix[:, :2].T + matrix[:, 2]


def test_the_celeba_constants():
    assert faces.CELEBA_SIZE == (178, 218)
    assert faces.CELEBA_LEFT_EYE == (69.2, 111.2) and faces.CELEBA_RIGHT_EYE == (107.8, 111.3)


def test_alignment_matrix_sends_the_eyes_to_the_targets():
    left, right = (300.0, 410.0), (380.0, 395.0)  # tilted, larger than CelebA
    matrix = faces.alignment_matrix(left, right)
    landed = np.array([left, right]) @ matrix[:, :2].T + matrix[:, 2]
    assert np.allclose(landed, TARGETS)
    a, b = matrix[0, 0], matrix[1, 0]
    assert matrix[1, 1] == pytest.approx(a) and matrix[0, 1] == pytest.approx(-b)  # a similarity


def test_astronaut_one_face_eyes_inside_and_aligned(astronaut, one_thread):
    framed = faces.frame_like_celeba(astronaut)
    x0, y0, x1, y1 = framed.face.box
    assert framed.count == 1
    for x, y in (framed.face.left_eye, framed.face.right_eye):
        assert x0 < x < x1 and y0 < y < y1
    assert framed.crop.size == faces.CELEBA_SIZE
    again = faces.detect_faces(framed.crop)  # the detector, run on the crop, finds the eyes...
    assert len(again) == 1
    found = np.array([again[0].left_eye, again[0].right_eye])
    assert np.abs(found - TARGETS).max() < 3.0  # ...where CelebA has them


def test_several_faces_the_largest_and_the_count(astronaut, one_thread):
    group = Image.new("RGB", (900, 520), (200, 200, 200))
    group.paste(astronaut, (0, 0))
    small = astronaut.crop((150, 30, 300, 210)).resize((110, 132))
    group.paste(small, (700, 150))
    framed = faces.frame_like_celeba(group)
    assert framed.count == 2
    assert framed.face.box[2] < 512  # the astronaut's full-size face, not the small copy
    assert "largest of 2 faces" in framed.describe()


@pytest.mark.parametrize("name", ["rocket", "coffee"])
def test_no_face_is_a_clear_user_error(name, one_thread):
    photo = Image.fromarray(getattr(skimage_data, name)())
    with pytest.raises(faces.NoFaceError, match="no face found") as caught:
        faces.frame_like_celeba(photo, name)
    assert isinstance(caught.value, UserError)
    assert "closer, frontal photo" in str(caught.value)


def test_synthetic_faces_align_back_within_a_few_pixels(one_thread):
    """Built-in faces placed at known offsets, scales 1.2-2.5 and tilts of +-10 degrees."""
    rng = np.random.default_rng(1)
    errors, missed = [], 0
    for index in range(1, 13):
        photo, eyes, _ = synthetic_photo(index, rng)
        found = faces.detect_faces(photo)
        if not found:
            missed += 1
            continue
        errors.append(np.abs(_landing(found[0], eyes) - TARGETS).max())
    assert missed <= 2  # cartoon faces: MTCNN misses ~1 in 20 (benchmarks/face_detectors.py)
    assert max(errors) < 5.0 and float(np.median(errors)) < 3.0


def test_align_fills_beyond_the_photo_with_edge_pixels(astronaut, one_thread):
    """The astronaut's hair nearly touches the top: the crop reaches past the edge."""
    pixels = np.asarray(astronaut.crop((130, 40, 320, 240))).copy()  # ends just above her hair
    pixels[0] = (200, 50, 50)  # mark the photo's top edge
    framed = faces.frame_like_celeba(Image.fromarray(pixels))
    matrix = faces.alignment_matrix(framed.face.left_eye, framed.face.right_eye)
    inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))
    assert (inverse @ [89, 0, 1])[1] < -5  # the crop's top row lies beyond the photo...
    top_row = np.asarray(framed.crop)[0].astype(int)
    assert (top_row[:, 0] > 150).all() and (top_row[:, 1:] < 100).all()  # ...and repeats its edge


def test_paste_back_changes_only_the_face_region(astronaut, one_thread):
    face, _ = faces.find_face(astronaut)
    crop = faces.align(astronaut, face)
    inverted = Image.fromarray(255 - np.asarray(crop))
    pasted = faces.paste_back(astronaut, face, inverted)
    before, after = np.asarray(astronaut).astype(int), np.asarray(pasted).astype(int)
    assert pasted.size == astronaut.size
    changed = np.abs(after - before).max(axis=2) > 0
    ys, xs = np.nonzero(changed)
    x0, y0, x1, y1 = face.box
    assert xs.min() > x0 - (x1 - x0) and xs.max() < x1 + (x1 - x0)  # near the face only
    cx, cy = np.mean([face.left_eye, face.right_eye], axis=0)
    assert np.abs(after[round(cy), round(cx)] - (255 - before[round(cy), round(cx)])).max() < 40
    assert (after[-20:] == before[-20:]).all()  # the bottom of the photo is untouched


def test_a_large_face_is_shrunk_before_the_warp(one_thread):
    """A face 6x CelebA's size: the crop is box-filtered first, not sampled every 6th pixel."""
    stripes = np.zeros((218 * 6, 178 * 6, 3), np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes: six of them make one crop pixel, mid grey
    big = Image.fromarray(stripes)
    eyes = TARGETS * 6 + 2.5  # the crop 6x larger: pixel k covers 6k .. 6k + 5
    face = faces.Face((0.0, 0.0, 1.0, 1.0), tuple(eyes[0]), tuple(eyes[1]), 1.0)
    crop = np.asarray(faces.align(big, face)).astype(float)
    assert abs(crop[20:-20, 20:-20].mean() - 127.5) < 10 and crop[20:-20, 20:-20].std() < 20


def test_detector_missing_says_how_to_install(monkeypatch):
    real_import = builtins.__import__

    def no_facenet(name, *args, **kwargs):
        if name.startswith("facenet_pytorch"):
            raise ImportError("No module named 'facenet_pytorch'")
        return real_import(name, *args, **kwargs)

    faces._mtcnn.cache_clear()
    monkeypatch.setattr(builtins, "__import__", no_facenet)
    try:
        with pytest.raises(faces.DetectorMissingError, match="--no-deps"):
            faces.detect_faces(Image.new("RGB", (64, 64)))
    finally:
        monkeypatch.undo()
        faces._mtcnn.cache_clear()


def test_draw_face_marks_box_and_eyes(astronaut, one_thread):
    face, _ = faces.find_face(astronaut)
    drawn = np.asarray(faces.draw_face(astronaut, face)).astype(int)
    x0, y0 = (math.floor(v) for v in face.box[:2])
    assert tuple(drawn[y0 + 1, x0 + 20]) == (0, 255, 0)
    assert drawn.shape == np.asarray(astronaut).shape


def test_paste_back_of_a_stretched_crop_puts_every_pixel_back(astronaut, one_thread):
    """A 256×256 generator-sized crop (the 178×218 frame stretched, as training resizes it)
    pasted back unchanged gives the photo again: the geometry is undone exactly."""
    face, _ = faces.find_face(astronaut)
    crop = faces.align(astronaut, face).resize((256, 256), Image.BICUBIC)
    pasted = np.asarray(faces.paste_back(astronaut, face, crop)).astype(int)
    x0, y0, x1, y1 = (round(v) for v in face.box)
    region = np.s_[y0 + 10:y1 - 10, x0 + 10:x1 - 10]  # inside the face: fully pasted
    assert np.abs(pasted[region] - np.asarray(astronaut).astype(int)[region]).mean() < 4


def test_a_small_face_gets_advice(astronaut, one_thread):
    framed = faces.frame_like_celeba(astronaut.resize((300, 300), Image.LANCZOS))
    assert "closer photo" in framed.describe()
    assert "closer photo" not in faces.frame_like_celeba(astronaut).describe()


@pytest.mark.parametrize("size", [(1, 1), (12, 12), (3000, 20)])
def test_a_tiny_or_thin_picture_has_no_face_rather_than_a_crash(size, one_thread):
    with pytest.raises(faces.NoFaceError, match="no face found"):
        faces.find_face(Image.new("RGB", size, (120, 100, 90)))
