"""Find the face in a reader's photo and frame it the way CelebA's aligned crops are framed.

(Extra code – not in the book.) The generators learned from CelebA's *aligned* crops: 178×218
pixels, the eyes level at (69.2, 111.2) and (107.8, 111.3) (the data set's mean aligned eye
positions). A selfie only resized to 256×256 shows them a face at another size and place, which
they never saw. So: detect the face and its two eye centres, apply the similarity transform
(rotation, uniform scale, shift) that puts the eyes at those points of a 178×218 canvas, fill
what lies beyond the photo's edge with the edge pixels (not black: a black band over the head
would look like black hair), and hand the crop to the chapter's own resize.

The detector: MTCNN from `facenet-pytorch` 2.6.0 (MIT licence; its three small networks ship
inside the 1.9 MB wheel, so nothing is downloaded at run time; CPU is enough). It was chosen
over OpenCV's Haar cascades by measurement on this project's machine (2-core AMD EPYC,
torch 2.14.1, `python benchmarks/face_detectors.py`): 40 synthetic faces pasted into a larger
canvas at random offsets, scales 1.2–2.5 and tilts ±10°, eye error in 178×218 crop pixels:

| detector | faces found | median eye error | 90th pct | max | astronaut | no-face images |
|---|---:|---:|---:|---:|---|---|
| MTCNN (facenet-pytorch 2.6.0) | 37 / 40 | 2.2 | 3.7 | 5.7 | 1 face | none found (6/6) |
| Haar face + eye cascades (OpenCV 4.14) | 30 / 40 | 1.7 | 2.2 | 2.6 | 1 face | none found (6/6) |

Where both find the eyes, Haar's are a little closer on these drawn faces (MTCNN puts drawn
eyes ~1.7 px too high; on the real astronaut photo, MTCNN run again on the aligned crop finds
the eyes within 1 px of CelebA's). But a miss is worse than 2 px: it ends in "no face found".
Haar's eye boxes missed a quarter of the faces, and OpenCV 5 (what albumentations installs
today) ships no cascades at all: using them would pin `opencv-python-headless<5` for everyone.
MTCNN's catch is its metadata, which pins torch<2.3 and numpy<2 although the code runs on
torch 2.14 and numpy 2.4: it is installed with `pip install --no-deps "facenet-pytorch==2.6.0"`
(its real imports, requests and tqdm, are already here), which never touches torch. `make
setup` does exactly that, and so does notebook 04's first cell on Colab. Its pretrained weights load through
`torch.load`, which defaults to `weights_only=True` since torch 2.6 (on 2.4–2.5 it unpickles
them fully: files inside the installed package, trusted as much as its code).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw

from utils.cli import UserError

# CelebA's aligned crops: size (width, height) and the mean eye centres (x, y), pixels; "left"
# is the eye on the image's left (the person's right eye).
CELEBA_SIZE = (178, 218)
CELEBA_LEFT_EYE = (69.2, 111.2)
CELEBA_RIGHT_EYE = (107.8, 111.3)

CELEBA_EYE_DISTANCE = math.dist(CELEBA_LEFT_EYE, CELEBA_RIGHT_EYE)  # 38.6 px

SMALL_FACE = 0.75  # eyes closer than this share of CELEBA_EYE_DISTANCE: the crop is upsampled
DETECT_SIDE = 1024  # detection runs on a copy at most this long: faster, and enough for selfies
MIN_FACE = 20  # pixels: MTCNN's smallest face (its default min_face_size), in the detection copy
MIN_SCORE = 0.9  # MTCNN's face probability below which a detection is ignored
FEATHER = 0.12  # share of the crop's width over which the pasted face fades into the photo
DETECTOR_PACKAGE = "facenet-pytorch==2.6.0"
INSTALL_DETECTOR = f'pip install --no-deps "{DETECTOR_PACKAGE}"'


class NoFaceError(UserError):
    """The detector found no face in the photo."""


class DetectorMissingError(UserError):
    """facenet-pytorch is not installed."""


@dataclass(frozen=True)
class Face:
    """One detected face in photo pixels (pixel centres at integer coordinates)."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    left_eye: tuple[float, float]  # the eye on the image's left
    right_eye: tuple[float, float]
    score: float

    def scaled(self, sx: float, sy: float) -> Face:
        """The same face in a copy of the photo resized by (sx, sy) (e.g. the full-size original)."""
        def point(x: float, y: float) -> tuple[float, float]:
            return (x + 0.5) * sx - 0.5, (y + 0.5) * sy - 0.5

        x0, y0, x1, y1 = self.box
        return Face((*point(x0, y0), *point(x1, y1)), point(*self.left_eye), point(*self.right_eye),
                    self.score)

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)


@functools.lru_cache(maxsize=1)
def _mtcnn():
    try:
        from facenet_pytorch import MTCNN
    except ImportError as error:
        raise DetectorMissingError(
            f"the face detector is not installed ({error}) — run {INSTALL_DETECTOR} (--no-deps: "
            "its metadata would otherwise replace your torch), or `make setup`.") from error
    return MTCNN(keep_all=True, device="cpu")


def detect_faces(image: Image.Image) -> list[Face]:
    """Every face MTCNN finds in an RGB image (probability >= MIN_SCORE), largest first."""
    scale = min(1.0, DETECT_SIDE / max(image.size))
    small = image if scale == 1.0 else image.resize(
        (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BILINEAR)
    detector = _mtcnn()
    if min(small.size) < MIN_FACE:  # MTCNN's image pyramid is empty there (and it would crash)
        return []
    with torch.inference_mode():
        boxes, probs, points = detector.detect(small.convert("RGB"), landmarks=True)
    if boxes is None:
        return []
    # facenet-pytorch returns object arrays with numpy 2; coordinates back to the photo's pixels
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4) / scale
    points = np.asarray(points, dtype=float).reshape(-1, 5, 2) / scale
    faces = []
    for box, prob, marks in zip(boxes, np.asarray(probs, dtype=float).ravel(), points, strict=True):
        if prob < MIN_SCORE:
            continue
        left, right = sorted((tuple(map(float, marks[0])), tuple(map(float, marks[1]))))
        faces.append(Face(tuple(map(float, box)), left, right, float(prob)))
    return sorted(faces, key=lambda f: -f.area)


def find_face(image: Image.Image, name: str = "the photo") -> tuple[Face, int]:
    """(the largest face, how many faces were found); NoFaceError when there is none."""
    faces = detect_faces(image)
    if not faces:
        raise NoFaceError(
            f"no face found in {name} — use a closer, frontal photo: the whole face in the "
            "picture, both eyes visible, the head roughly upright, at least ~60 pixels wide.")
    return faces[0], len(faces)


def alignment_matrix(left_eye, right_eye, target_left=CELEBA_LEFT_EYE,
                     target_right=CELEBA_RIGHT_EYE) -> np.ndarray:
    """The 2×3 similarity transform (rotation, uniform scale, shift) from photo pixels to crop
    pixels that sends `left_eye` to `target_left` and `right_eye` to `target_right`."""
    src_l, src_r = complex(*left_eye), complex(*right_eye)
    dst_l, dst_r = complex(*target_left), complex(*target_right)
    if src_l == src_r:
        raise ValueError("the two eye centres coincide: cannot align.")
    a = (dst_r - dst_l) / (src_r - src_l)  # rotation and scale as one complex factor
    b = dst_l - a * src_l
    return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]])


def _warp(pixels: np.ndarray, matrix: np.ndarray, size: tuple[int, int], border: str) -> np.ndarray:
    import cv2  # installed with albumentations

    mode = cv2.BORDER_REPLICATE if border == "edge" else cv2.BORDER_CONSTANT
    return cv2.warpAffine(pixels, matrix, size, flags=cv2.INTER_LINEAR, borderMode=mode, borderValue=0)


def align(image: Image.Image, face: Face, size: tuple[int, int] = CELEBA_SIZE) -> Image.Image:
    """The CelebA-framed crop (178×218) of `face`; beyond the photo's edge, its edge pixels.

    A face much larger than the crop is first shrunk by an integer factor with a box filter, so
    the bilinear warp does not alias (a 4000-pixel selfie would otherwise look like a mosaic).
    """
    matrix = alignment_matrix(face.left_eye, face.right_eye)
    factor = int(1.0 / math.hypot(matrix[0, 0], matrix[1, 0]))  # photo pixels per crop pixel
    if factor >= 2:
        image = image.reduce(factor)
        # a reduced pixel q covers photo pixels factor*q .. factor*q + factor - 1
        matrix = np.column_stack([matrix[:, :2] * factor,
                                  matrix[:, :2] @ np.full(2, (factor - 1) / 2) + matrix[:, 2]])
    return Image.fromarray(_warp(np.asarray(image.convert("RGB")), matrix, size, "edge"))


def _feather_mask(size: tuple[int, int], feather: float = FEATHER) -> np.ndarray:
    """1 inside the crop, fading linearly to 0 over the outer `feather` of its width."""
    width, height = size
    ramp = max(1.0, feather * width)
    x = np.minimum(np.arange(width) + 0.5, width - 0.5 - np.arange(width)) / ramp
    y = np.minimum(np.arange(height) + 0.5, height - 0.5 - np.arange(height)) / ramp
    return np.clip(np.minimum.outer(y, x), 0.0, 1.0).astype(np.float32)


def paste_back(photo: Image.Image, face: Face, crop: Image.Image) -> Image.Image:
    """`photo` with `crop` (a CelebA-framed picture of `face`, e.g. translated) warped back into
    place and blended in with a feathered edge.

    `crop` may have any size: a 256×256 generator output is the 178×218 frame stretched as the
    chapter's resize stretches it, and is warped back at its own resolution (not shrunk first).
    """
    crop = crop.convert("RGB")
    width, height = crop.size
    # crop pixels -> CelebA-frame pixels (pixel centres at integers), then -> photo pixels
    to_frame = np.array([[CELEBA_SIZE[0] / width, 0, 0.5 * CELEBA_SIZE[0] / width - 0.5],
                         [0, CELEBA_SIZE[1] / height, 0.5 * CELEBA_SIZE[1] / height - 0.5], [0, 0, 1]])
    to_photo = np.linalg.inv(np.vstack([alignment_matrix(face.left_eye, face.right_eye), [0, 0, 1]]))
    inverse = (to_photo @ to_frame)[:2]  # crop pixels -> photo pixels
    corners = np.array([[0, 0, 1], [width - 1, 0, 1], [0, height - 1, 1], [width - 1, height - 1, 1]])
    xs, ys = (corners @ inverse.T).T
    x0, y0 = max(0, math.floor(xs.min())), max(0, math.floor(ys.min()))
    x1, y1 = min(photo.width, math.ceil(xs.max()) + 1), min(photo.height, math.ceil(ys.max()) + 1)
    result = photo.convert("RGB")
    if x1 <= x0 or y1 <= y0:
        return result
    # the region of the photo the crop covers: warp into it only (a 40-megapixel photo stays uint8)
    to_region = inverse - np.array([[0, 0, x0], [0, 0, y0]])  # crop pixels -> region pixels
    region = (x1 - x0, y1 - y0)
    new = _warp(np.asarray(crop), to_region, region, "constant").astype(np.float32)
    mask = _warp(_feather_mask(crop.size), to_region, region, "constant")[..., None]
    old = np.asarray(result.crop((x0, y0, x1, y1))).astype(np.float32)
    blended = np.clip(np.rint(old * (1 - mask) + new * mask), 0, 255).astype(np.uint8)
    result.paste(Image.fromarray(blended), (x0, y0))
    return result


def draw_face(photo: Image.Image, face: Face, colour=(0, 255, 0)) -> Image.Image:
    """A copy of `photo` with the face's box and its two eye centres drawn on it."""
    picture = photo.convert("RGB")
    draw = ImageDraw.Draw(picture)
    width = max(2, round(max(picture.size) / 250))
    draw.rectangle(face.box, outline=colour, width=width)
    for x, y in (face.left_eye, face.right_eye):
        r = 2 * width
        draw.ellipse((x - r, y - r, x + r, y + r), outline=(255, 0, 0), width=width)
    return picture


@dataclass(frozen=True)
class Framed:
    """A photo, its largest face, how many faces it had, and that face framed like CelebA."""

    photo: Image.Image
    face: Face
    count: int
    crop: Image.Image  # 178×218

    def describe(self) -> str:
        others = f" (the largest of {self.count} faces)" if self.count > 1 else ""
        x0, y0, x1, y1 = (round(v) for v in self.face.box)
        text = f"Face found at ({x0}, {y0})–({x1}, {y1}){others}, probability {self.face.score:.3f}."
        apart = math.dist(self.face.left_eye, self.face.right_eye)
        if apart < SMALL_FACE * CELEBA_EYE_DISTANCE:
            text += (f" The eyes are only {apart:.0f} px apart (CelebA's crops: {CELEBA_EYE_DISTANCE:.0f}), "
                     "so the crop is enlarged and blurry: a closer photo works better.")
        return text


def frame_like_celeba(photo: Image.Image, name: str = "the photo") -> Framed:
    """Detect the largest face in `photo` and return it framed like CelebA's aligned crops."""
    face, count = find_face(photo, name)
    return Framed(photo, face, count, align(photo, face))
