"""Built-in synthetic faces in the real CelebA and "Glasses or No Glasses" layouts, with ground truth.

Why: nobody can download CelebA in CI, and a reader offline should still run every notebook
and *see* CycleGAN work. This module draws simple, smooth, deterministic cartoon faces and
writes them exactly where and how the Kaggle downloads would be, so the rest of the project
(split, loader, training, evaluation) cannot tell the difference -- except that these faces
come with what no real data set has: the same face re-rendered with the other hair colour
(or with/without glasses) and the mask of the pixels that differ.

    python -m utils.synthetic celeba  --root files/synthetic --count 2000 [--seed 0]
    python -m utils.synthetic glasses --root files/synthetic_glasses --count 1000 [--seed 0]
    python -m utils.synthetic sheet   --out docs/synthetic_faces.png [--seed 0]

The faces are described in `utils.synthetic_faces` and drawn in `utils.synthetic_drawing`;
this module writes the data sets and the contact sheet. Design choices, each for a reason:

* Smooth flat shapes (PIL polygons drawn at 2x and reduced for antialiasing), soft hair
  strands (a low-resolution shading map upscaled bilinearly), no per-pixel noise: a small
  CycleGAN at 64x64 on a CPU must be able to reproduce everything outside the hair.
* The hair is one region with one shading map; its colour comes from a palette ramp. The
  ground-truth render only swaps the palette, so the mask is exactly the hair.
* Face *k* is drawn from its own random stream `(seed, kind, k)`: it does not depend on
  `count`, and the same seed gives byte-identical files.
* Hair families are far apart in colour: black (luminance < 60), blond (> 150), brown and
  gray in between / unsaturated, so that a split that leaves brown and gray out is visible.
* The glasses layout uses 256x256 PNGs (the real ones are 1024x1024) for speed.

Speed (single-threaded), each face including the swapped render, the mask and encoding every
file: 210-280 faces per CPU second for celeba (178x218) and 135-155 for glasses (256x256, two
PNGs of 1.7x the pixels), measured with `python benchmarks/synthetic_speed.py --count 500` on
a shared 2-core Xeon under load ~7 (a quiet core is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from utils.cli import SettingError, command
from utils.datasets import CELEBA_ATTRIBUTES
from utils.synthetic_drawing import eye_centres, render_celeba_pair, render_face, render_glasses_pair
from utils.synthetic_faces import (
    CELEBA_BOTH_SET_RATE,
    CELEBA_LAYOUT,
    GLASSES_LABEL_NOISE,
    GLASSES_LAYOUT,
    GROUND_TRUTH_DIR,
    LABELLED_SHARE,
    MARKER_NAME,
    RGB,
    FaceParams,
    Layout,
    face_rng,
    sample_face,
)

# the face's parameters and drawing, re-exported: readers and benchmarks import them from here
__all__ = [
    "CELEBA_BOTH_SET_RATE",
    "CELEBA_LAYOUT",
    "FaceParams",
    "GLASSES_LABEL_NOISE",
    "GLASSES_LAYOUT",
    "GROUND_TRUTH_DIR",
    "LABELLED_SHARE",
    "Layout",
    "MARKER_NAME",
    "RGB",
    "celeba_attributes",
    "contact_sheet",
    "eye_centres",
    "face_rng",
    "glasses_train_table",
    "main",
    "make_celeba",
    "make_glasses",
    "png_bytes",
    "read_marker",
    "render_celeba_pair",
    "render_face",
    "render_glasses_pair",
    "sample_face",
]

PathLike = str | os.PathLike


# ----------------------------------------------------------------------------- attributes
def celeba_attributes(params: Sequence[FaceParams], seed: int = 0) -> np.ndarray:
    """The (len(params), 40) int8 matrix of 1/-1 values for faces 1..len(params) of `seed`.

    Attributes are tied to what is drawn where possible.
    Hair columns come from the true family, then `CELEBA_BOTH_SET_RATE` of the black/blond
    rows get both Black_Hair and Blond_Hair (label noise as in the real CSV; listing 6.1 sends
    them to black). Attributes that nothing draws are random with plausible rates.
    """
    n = len(params)
    col = {name: i for i, name in enumerate(CELEBA_ATTRIBUTES)}
    # per-face label draws: row k does not depend on how many faces are made
    draws = np.array([face_rng(seed, "celeba", k, 1).random(48) for k in range(1, n + 1)]).reshape(n, 48)
    out = np.where(draws[:, :40] < 0.15, 1, -1).astype(np.int8)

    def flag(values) -> np.ndarray:
        return np.where(np.asarray(values, dtype=bool), 1, -1).astype(np.int8)

    hair = np.array([p.hair for p in params])
    style = np.array([p.hair_style for p in params])
    male = np.array([p.male for p in params])
    out[:, col["Black_Hair"]] = flag(hair == "black")
    out[:, col["Blond_Hair"]] = flag(hair == "blond")
    out[:, col["Brown_Hair"]] = flag(hair == "brown")
    out[:, col["Gray_Hair"]] = flag(hair == "gray")
    # label noise: some black/blond rows get both hair labels (listing 6.1 sends them to black)
    noisy = np.isin(hair, ("black", "blond")) & (draws[:, 40] < CELEBA_BOTH_SET_RATE / 0.8)
    out[noisy, col["Black_Hair"]] = 1
    out[noisy, col["Blond_Hair"]] = 1
    out[:, col["Bald"]] = -1
    out[:, col["Wearing_Hat"]] = -1
    out[:, col["Blurry"]] = -1
    out[:, col["Bangs"]] = flag(np.isin(style, ("bangs", "long_bangs")))
    out[:, col["Receding_Hairline"]] = flag(style == "receding")
    wavy = np.array([p.wavy or p.hair_style == "curly" for p in params])
    out[:, col["Wavy_Hair"]] = flag(wavy)
    out[:, col["Straight_Hair"]] = flag(~wavy & (draws[:, 41] < 0.6))
    out[:, col["Male"]] = flag(male)
    out[:, col["Young"]] = flag([p.young for p in params])
    out[:, col["Smiling"]] = flag([p.smiling for p in params])
    out[:, col["Mouth_Slightly_Open"]] = flag([p.mouth_open for p in params])
    out[:, col["High_Cheekbones"]] = flag([p.smiling and p.face_width < 1.02 for p in params])
    out[:, col["Eyeglasses"]] = flag([p.glasses for p in params])
    out[:, col["Rosy_Cheeks"]] = flag([p.rosy for p in params])
    out[:, col["Narrow_Eyes"]] = flag([p.eye_h < 0.072 for p in params])
    out[:, col["Bushy_Eyebrows"]] = flag([p.brow_thickness > 0.068 for p in params])
    out[:, col["Arched_Eyebrows"]] = flag([p.brow_arch > 0.055 for p in params])
    out[:, col["Big_Lips"]] = flag([p.lip_size > 0.058 for p in params])
    out[:, col["Big_Nose"]] = flag([p.nose_width > 0.092 for p in params])
    out[:, col["Pointy_Nose"]] = flag([p.nose_width < 0.068 for p in params])
    out[:, col["Oval_Face"]] = flag([p.face_length > 1.36 and p.jaw < 0.5 for p in params])
    out[:, col["Chubby"]] = flag([p.face_width > 1.08 for p in params])
    out[:, col["Pale_Skin"]] = flag([sum(p.skin_rgb) > 660 for p in params])
    lipstick = np.array([p.lip_rgb[0] > 1.8 * p.lip_rgb[1] for p in params])
    out[:, col["Wearing_Lipstick"]] = flag(lipstick)
    out[:, col["Heavy_Makeup"]] = flag(lipstick & (draws[:, 42] < 0.7))
    out[:, col["Attractive"]] = flag(draws[:, 43] < 0.5)
    out[:, col["No_Beard"]] = 1
    for name in ("5_o_Clock_Shadow", "Goatee", "Mustache", "Sideburns", "Wearing_Necktie"):
        out[:, col[name]] = flag(male & (out[:, col[name]] == 1) & (draws[:, 44] < 0.5))
    for name in ("Wearing_Earrings", "Wearing_Necklace"):
        out[:, col[name]] = flag(~male & (out[:, col[name]] == 1))
    return out


# ----------------------------------------------------------------------------- writing
def _check_ours(root: Path, kind: str, real_paths: Sequence[Path]) -> Path:
    """The ground-truth folder of `kind`, after refusing to write over a real download."""
    truth = root / GROUND_TRUTH_DIR / kind
    if (truth / MARKER_NAME).is_file():
        return truth
    found = [path for path in real_paths if path.exists()]
    if found:
        raise FileExistsError(
            f"{found[0]} exists and was not written by utils.synthetic (no {truth / MARKER_NAME}). "
            "It looks like a real download: refusing to overwrite it. Choose another --root "
            "(e.g. files/synthetic) or move the download away first."
        )
    return truth


def _prepare(root: PathLike, kind: str, count: int, seed: int, real: Sequence[str]) -> tuple[Path, Path]:
    if int(count) != count or count < 1:
        raise SettingError(f"count must be a positive integer (--count 1 or more), got {count!r}")
    if int(seed) != seed or seed < 0:
        raise SettingError(f"seed must be a non-negative integer (--seed 0 or more), got {seed!r}")
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"--root {root} is a file; give a folder for the synthetic {kind} faces.")
    truth = _check_ours(root, kind, [root / name for name in real])
    truth.mkdir(parents=True, exist_ok=True)
    (truth / MARKER_NAME).write_text(json.dumps({"kind": kind, "count": int(count), "seed": int(seed),
                                                 "complete": False}) + "\n")
    return root, truth


def _finalise(truth: Path, kind: str, count: int, seed: int) -> None:
    (truth / MARKER_NAME).write_text(json.dumps({"kind": kind, "count": int(count), "seed": int(seed),
                                                 "complete": True}) + "\n")


def read_marker(root: PathLike, kind: str) -> dict | None:
    """What `make_<kind>` recorded in `root` (kind, count, seed, complete), or None if not ours."""
    path = Path(root) / GROUND_TRUTH_DIR / kind / MARKER_NAME
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _remove_stale(folder: Path, pattern: str, keep: set[str]) -> None:
    """Delete our own files from an earlier, larger run (only names this module writes)."""
    regex = re.compile(pattern)
    for path in folder.iterdir():
        if path.is_file() and regex.fullmatch(path.name) and path.name not in keep:
            path.unlink()


def png_bytes(image: Image.Image, level: int = 3) -> bytes:
    """A lossless PNG of an "L" or "RGB" image, about twice as fast as `Image.save`.

    Why: encoding is a third of the cost of a face, and Pillow tries five row filters per row.
    Smooth synthetic faces compress well with the "Up" filter alone (each row minus the one
    above), computed for the whole image at once with numpy.
    """
    if image.mode not in ("L", "RGB"):
        raise ValueError(f"png_bytes writes L or RGB images, not {image.mode}")
    pixels = np.asarray(image)
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1)
    data = np.empty((height, rows.shape[1] + 1), dtype=np.uint8)
    data[:, 0] = 2  # filter type "Up"
    data[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=data[1:, 1:])  # uint8 arithmetic wraps, as PNG wants

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2 if image.mode == "RGB" else 0, 0, 0, 0)
    body = zlib.compress(data.tobytes(), level)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def _save_png(image: Image.Image, path: Path) -> None:
    path.write_bytes(png_bytes(image))


def make_celeba(root: PathLike, count: int, seed: int = 0) -> Path:
    """Write `count` synthetic faces in the exact Kaggle CelebA layout under `root`; return `root`.

    `root/img_align_celeba/img_align_celeba/000001.jpg ...` (178x218 JPEG),
    `root/list_attr_celeba.csv` (image_id + the 40 attributes, 1/-1), and the ground truth in
    `root/ground_truth/celeba/`: `swapped/<stem>.png` (other hair family; black/blond faces
    only), `mask/<stem>.png` (255 = hair) and `faces.csv` (image_id, hair, glasses).
    Refuses to write where a real download is (no marker of ours).
    """
    root, truth = _prepare(root, "celeba", count, seed, ["list_attr_celeba.csv", "img_align_celeba"])
    images = root / "img_align_celeba" / "img_align_celeba"
    swapped_dir, mask_dir = truth / "swapped", truth / "mask"
    for folder in (images, swapped_dir, mask_dir):
        folder.mkdir(parents=True, exist_ok=True)
    names = [f"{k:06d}" for k in range(1, count + 1)]
    params = [sample_face(seed, k, "celeba") for k in range(1, count + 1)]
    for name, p in zip(names, params, strict=True):
        image, swapped, mask = render_celeba_pair(p)
        image.save(images / f"{name}.jpg", "JPEG", quality=95, subsampling=0)
        if swapped is not None:
            _save_png(swapped, swapped_dir / f"{name}.png")
        _save_png(mask, mask_dir / f"{name}.png")
    ids = np.array([f"{name}.jpg" for name in names])
    _remove_stale(images, r"\d{6}\.jpg", set(ids))
    with_swap = {f"{n}.png" for n, p in zip(names, params, strict=True) if p.swap_rgb is not None}
    _remove_stale(swapped_dir, r"\d{6}\.png", with_swap)
    _remove_stale(mask_dir, r"\d{6}\.png", {f"{n}.png" for n in names})

    attrs = pd.DataFrame(celeba_attributes(params, seed), columns=list(CELEBA_ATTRIBUTES))
    attrs.insert(0, "image_id", ids)
    attrs.to_csv(root / "list_attr_celeba.csv", index=False)
    pd.DataFrame({"image_id": ids, "hair": [p.hair for p in params],
                  "glasses": np.array([p.glasses for p in params], dtype=np.int8)}
                 ).to_csv(truth / "faces.csv", index=False)
    _finalise(truth, "celeba", count, seed)
    return root


def glasses_train_table(params: Sequence[FaceParams], seed: int = 0) -> pd.DataFrame:
    """train.csv for faces 1..len(params): `id, v1..v512, glasses` for the first 90% of ids.

    v1..v512 stand in for the real latent vectors (deterministic, 3 decimals); the label is
    the drawn truth, flipped for `GLASSES_LABEL_NOISE` of the faces like the real set's
    wrong labels. Row k depends only on face k, not on how many faces are made.
    """
    labelled = max(1, int(round(len(params) * LABELLED_SHARE)))
    draws = np.array([face_rng(seed, "glasses", k, 1).random(513) for k in range(1, labelled + 1)])
    table = pd.DataFrame(np.round(draws[:, :512] * 4 - 2, 3), columns=[f"v{i}" for i in range(1, 513)])
    table.insert(0, "id", np.arange(1, labelled + 1))
    truth = np.array([p.glasses for p in params[:labelled]], dtype=np.int8)
    table["glasses"] = np.where(draws[:, 512] < GLASSES_LABEL_NOISE, 1 - truth, truth)
    return table


def make_glasses(root: PathLike, count: int, seed: int = 0) -> Path:
    """Write `count` synthetic faces in the Kaggle "Glasses or No Glasses" layout; return `root`.

    `root/faces-spring-2020/faces-spring-2020/face-1.png ...` (256x256 PNG; the real ones are
    1024x1024), `root/train.csv` (id, v1..v512, glasses) for the first 90% of ids, with
    `GLASSES_LABEL_NOISE` of the labels flipped like the real set's wrong labels, and the truth
    in `root/ground_truth/glasses/`: `swapped/face-K.png` (glasses toggled), `mask/face-K.png`
    (255 = frames) and `faces.csv` (id, glasses) for every face.
    """
    root, truth = _prepare(root, "glasses", count, seed, ["train.csv", "faces-spring-2020"])
    images = root / "faces-spring-2020" / "faces-spring-2020"
    swapped_dir, mask_dir = truth / "swapped", truth / "mask"
    for folder in (images, swapped_dir, mask_dir):
        folder.mkdir(parents=True, exist_ok=True)
    params = [sample_face(seed, k, "glasses") for k in range(1, count + 1)]
    for k, p in enumerate(params, start=1):
        image, swapped, mask = render_glasses_pair(p)
        _save_png(image, images / f"face-{k}.png")
        _save_png(swapped, swapped_dir / f"face-{k}.png")
        _save_png(mask, mask_dir / f"face-{k}.png")
    keep = {f"face-{k}.png" for k in range(1, count + 1)}
    for folder in (images, swapped_dir, mask_dir):
        _remove_stale(folder, r"face-\d+\.png", keep)

    glasses_train_table(params, seed).to_csv(root / "train.csv", index=False, float_format="%.3f")
    truth_labels = np.array([p.glasses for p in params], dtype=np.int8)
    faces = pd.DataFrame({"id": np.arange(1, count + 1), "glasses": truth_labels})
    faces.to_csv(truth / "faces.csv", index=False)
    _finalise(truth, "glasses", count, seed)
    return root


def contact_sheet(seed: int = 0, columns: int = 8, rows: int = 2, tile_width: int = 120) -> Image.Image:
    """Pairs of rows: synthetic CelebA faces above their ground-truth hair swap.

    Faces are picked in index order to cover both families, with and without glasses.
    """
    wanted = columns * rows
    picked: list[FaceParams] = []
    need_glasses = max(2, wanted // 5)
    k = 0
    while len(picked) < wanted:
        k += 1
        p = sample_face(seed, k, "celeba")
        if p.swap_rgb is None:
            continue
        if not p.glasses and len(picked) < wanted - need_glasses + sum(q.glasses for q in picked):
            picked.append(p)
        elif p.glasses and sum(q.glasses for q in picked) < need_glasses:
            picked.append(p)
    tile_h = round(tile_width * CELEBA_LAYOUT.height / CELEBA_LAYOUT.width)
    gap = 4
    size = (columns * (tile_width + gap) + gap, 2 * rows * (tile_h + gap) + gap + rows * gap)
    sheet = Image.new("RGB", size, (255, 255, 255))
    for i, p in enumerate(picked):
        image, swapped, _ = render_celeba_pair(p)
        r, c = divmod(i, columns)
        x = gap + c * (tile_width + gap)
        y = gap + r * (2 * (tile_h + gap) + gap)
        for j, tile in enumerate((image, swapped)):
            thumbnail = tile.resize((tile_width, tile_h), Image.Resampling.LANCZOS)
            sheet.paste(thumbnail, (x, y + j * (tile_h + gap)))
    return sheet


@command
def main(argv: Sequence[str] | None = None) -> int:
    """The command line. Exit status 0, or 2 with one `error:` line for a mistake (`utils.cli`)."""
    parser = argparse.ArgumentParser(prog="python -m utils.synthetic", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for kind in ("celeba", "glasses"):
        cmd = sub.add_parser(kind, help=f"write synthetic faces in the Kaggle {kind} layout")
        cmd.add_argument("--root", required=True, type=Path, help="folder to write (created if needed)")
        cmd.add_argument("--count", required=True, type=int, help="number of faces")
        cmd.add_argument("--seed", default=0, type=int)
    sheet = sub.add_parser("sheet", help="contact sheet: faces above their ground-truth hair swap")
    sheet.add_argument("--out", default=Path("docs/synthetic_faces.png"), type=Path)
    sheet.add_argument("--seed", default=0, type=int)
    args = parser.parse_args(argv)
    if args.command == "sheet":
        args.out.parent.mkdir(parents=True, exist_ok=True)
        contact_sheet(args.seed).save(args.out, optimize=True)
        print(f"Wrote {args.out}")
        return 0
    make = make_celeba if args.command == "celeba" else make_glasses
    root = make(args.root, args.count, args.seed)
    print(f"Wrote {args.count} synthetic {args.command} faces (seed {args.seed}) under {root}; "
          f"ground truth in {root / GROUND_TRUTH_DIR / args.command}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
