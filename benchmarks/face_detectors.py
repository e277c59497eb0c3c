"""How well each face detector finds the eyes that `utils.faces` aligns on (prints a table).

Built-in faces (whose pupils `utils.synthetic.eye_centres` knows exactly) are placed into a
larger canvas at random offsets, scales and tilts; each detector's eye centres are mapped into
the 178×218 CelebA frame and compared with where the true eyes land there. Also: the bundled
`astronaut` photo (one face) and six scikit-image photos without a face.

    python benchmarks/face_detectors.py [--faces 40] [--seed 0]

MTCNN needs `pip install --no-deps "facenet-pytorch==2.6.0"`; the Haar cascades need
OpenCV 4.x (`opencv-python-headless<5`: OpenCV 5 ships none) and are skipped without them;
to measure them without touching the project's OpenCV:
`pip install --target /tmp/cv4 "opencv-python-headless<5"`, then run with `PYTHONPATH=/tmp/cv4`.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from utils.faces import CELEBA_SIZE, Face, detect_faces  # noqa: E402
from utils.synthetic import eye_centres, render_face, sample_face  # noqa: E402

NO_FACE_IMAGES = ("coffee", "chelsea", "rocket", "hubble_deep_field", "coins", "horse")


def place(picture: Image.Image, points: np.ndarray, scale: float, tilt: float, centre: tuple[float, float],
          canvas: tuple[int, int] = (800, 640), background=(120, 130, 140)) -> tuple[Image.Image, np.ndarray]:
    """`picture` scaled, turned by `tilt` degrees (counter-clockwise as seen) and centred at
    `centre` of a plain canvas; returns the canvas and where `points` (x, y rows) land."""
    import cv2

    angle = math.radians(tilt)
    rot = scale * np.array([[math.cos(angle), math.sin(angle)], [-math.sin(angle), math.cos(angle)]])
    middle = (np.array(picture.size) - 1) / 2
    matrix = np.column_stack([rot, np.array(centre) - rot @ middle])
    out = np.empty((canvas[1], canvas[0], 3), np.uint8)
    out[:] = background
    cv2.warpAffine(np.asarray(picture.convert("RGB")), matrix, canvas, dst=out, flags=cv2.INTER_LINEAR,
                   borderMode=cv2.BORDER_TRANSPARENT)
    return Image.fromarray(out), points @ rot.T + matrix[:, 2]


def synthetic_photo(index: int, rng: np.random.Generator, seed: int = 0,
                    scales: tuple[float, float] = (1.2, 2.5), tilt: float = 10.0,
                    canvas: tuple[int, int] = (960, 800)) -> tuple[Image.Image, np.ndarray, float]:
    """(canvas with built-in face `index` placed at random, its true eye centres there, scale)."""
    params = sample_face(seed, index)
    face, _ = render_face(params)
    scale = float(rng.uniform(*scales))
    half = scale * math.hypot(*CELEBA_SIZE) / 2  # stays inside the canvas at any tilt
    centre = (float(rng.uniform(half, canvas[0] - half)), float(rng.uniform(half, canvas[1] - half)))
    photo, eyes = place(face, eye_centres(params), scale, float(rng.uniform(-tilt, tilt)), centre, canvas)
    return photo, eyes, scale


def haar_detector():
    """Faces with Haar cascades (OpenCV 4.x), eyes as the centres of the two largest eye boxes."""
    import cv2

    if not hasattr(cv2, "CascadeClassifier") or not hasattr(cv2, "data"):
        return None
    faces = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    eyes = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_eye.xml")

    def detect(image: Image.Image) -> list[Face]:
        grey = np.asarray(image.convert("L"))
        found = []
        for x, y, w, h in faces.detectMultiScale(grey, 1.1, 5, minSize=(30, 30)):
            boxes = eyes.detectMultiScale(grey[y:y + h * 5 // 8, x:x + w], 1.1, 3)
            if len(boxes) < 2:
                continue
            two = sorted(boxes, key=lambda b: -b[2])[:2]
            left, right = sorted((x + ex + ew / 2, y + ey + eh / 2) for ex, ey, ew, eh in two)
            found.append(Face((x, y, x + w, y + h), left, right, 1.0))
        return sorted(found, key=lambda f: -f.area)

    return detect


def measure(detect, count: int, seed: int) -> dict[str, float]:
    import skimage.data

    rng = np.random.default_rng(seed)
    errors, missed = [], 0
    for index in range(1, count + 1):
        photo, eyes, scale = synthetic_photo(index, rng, seed)
        faces = detect(photo)
        if not faces:
            missed += 1
            continue
        found = np.array([faces[0].left_eye, faces[0].right_eye])
        errors.append(np.linalg.norm(found - eyes, axis=1).max() / scale)  # in crop pixels
    start = time.perf_counter()
    astronaut = detect(Image.fromarray(skimage.data.astronaut()))
    seconds = time.perf_counter() - start
    empty = sum(not detect(Image.fromarray(np.asarray(getattr(skimage.data, name)()).astype(np.uint8))
                           .convert("RGB")) for name in NO_FACE_IMAGES)
    return {"found": count - missed, "median": float(np.median(errors)),
            "p90": float(np.percentile(errors, 90)), "max": float(max(errors)),
            "astronaut": len(astronaut), "seconds": seconds, "no_face": empty}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print("| detector | faces found | median eye error | 90th pct | max | astronaut | no-face images |\n"
          "|---|---:|---:|---:|---:|---|---|")
    detectors = (("MTCNN (facenet-pytorch)", detect_faces), ("Haar cascades (OpenCV)", haar_detector()))
    for name, detect in detectors:
        if detect is None:
            print(f"| {name} | not available (OpenCV 5 ships no cascades) | | | | | |")
            continue
        r = measure(detect, args.faces, args.seed)
        print(f"| {name} | {r['found']} / {args.faces} | {r['median']:.1f} | {r['p90']:.1f} | {r['max']:.1f} "
              f"| {r['astronaut']} face(s), {r['seconds']:.2f} s | none found ({r['no_face']}/"
              f"{len(NO_FACE_IMAGES)}) |")


if __name__ == "__main__":
    main()
