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

Design choices, each for a reason:

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
import functools
import json
import math
import os
import re
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from utils.cli import SettingError, command
from utils.datasets import CELEBA_ATTRIBUTES

PathLike = str | os.PathLike

GROUND_TRUTH_DIR = "ground_truth"
MARKER_NAME = ".synthetic"  # in ground_truth/<kind>/: proves the data set folder is ours

HAIR_FAMILIES: tuple[str, ...] = ("black", "blond", "brown", "gray")
HAIR_SHARES: tuple[float, ...] = (0.45, 0.35, 0.10, 0.10)
CELEBA_BOTH_SET_RATE = 0.02  # rows labelled Black_Hair AND Blond_Hair, as in the real CSV
CELEBA_GLASSES_RATE = 0.15
GLASSES_SHARE = 0.5  # faces with glasses in the glasses layout
GLASSES_LABEL_NOISE = 0.03  # flipped labels in train.csv (the real set has ~10%)
LABELLED_SHARE = 0.9  # train.csv labels ids 1..4500 of 5000

RGB = tuple[int, int, int]

# Hair palettes. Black family: luminance 17-38; blond: 170-228; brown: saturated reddish 60-98;
# gray: unsaturated 128-200. The ramp factors keep strands/highlights inside each family's range.
HAIR_PALETTES: dict[str, tuple[RGB, ...]] = {
    "black": ((18, 16, 16), (28, 22, 20), (38, 30, 26), (24, 22, 30), (46, 34, 28), (32, 26, 24)),
    "blond": ((236, 214, 160), (226, 196, 130), (214, 180, 112), (240, 228, 196), (222, 190, 122),
              (204, 172, 108)),
    "brown": ((96, 60, 36), (120, 78, 46), (86, 54, 34), (132, 88, 56)),
    "gray": ((150, 150, 152), (176, 174, 172), (132, 132, 136), (200, 200, 202)),
}
# (dark factor, light mix) of the strand ramp per family
_RAMP: dict[str, tuple[float, float]] = {
    "black": (0.55, 0.13), "blond": (0.86, 0.35), "brown": (0.68, 0.18), "gray": (0.78, 0.30),
}
# the "typical" shades a swapped render uses (the middle of the other family)
_TYPICAL: dict[str, tuple[RGB, ...]] = {
    "black": ((28, 22, 20), (32, 26, 24), (38, 30, 26)),
    "blond": ((226, 196, 130), (222, 190, 122), (236, 214, 160)),
}
_SWAP_FAMILY = {"black": "blond", "blond": "black"}

_SKINS: tuple[RGB, ...] = (
    (250, 224, 204), (240, 208, 182), (230, 192, 162), (216, 172, 140), (198, 152, 118),
    (174, 126, 94), (142, 100, 72), (112, 78, 56),
)
_SKIN_WEIGHTS = (0.16, 0.22, 0.2, 0.14, 0.1, 0.08, 0.06, 0.04)
_IRISES: tuple[RGB, ...] = ((70, 45, 30), (50, 35, 25), (60, 100, 140), (80, 110, 70), (110, 80, 50))
_FRAMES: tuple[RGB, ...] = ((22, 22, 26), (60, 40, 28), (120, 70, 40), (140, 140, 150), (170, 140, 70),
                            (140, 30, 40), (30, 40, 90))
_HAIR_STYLES_F = ("long", "long", "long_bangs", "bob", "bangs", "side_part", "curly")
_HAIR_STYLES_M = ("short", "short", "side_part", "receding", "curly", "bangs", "bob")


@dataclass(frozen=True)
class Layout:
    """Canvas of one data set: size in pixels, where the face centre sits, pixels per face unit."""

    width: int
    height: int
    centre_x: float
    centre_y: float
    unit: float


CELEBA_LAYOUT = Layout(178, 218, 89.0, 122.0, 47.0)  # like the real aligned crops
GLASSES_LAYOUT = Layout(256, 256, 128.0, 130.0, 64.0)  # square, face larger (real: 1024x1024)
_SS = 2  # supersampling factor: draw at 2x, then Image.reduce(2) antialiases every edge


@dataclass(frozen=True)
class FaceParams:
    """Everything one face is drawn from (face units: the face's half width is ~1, y points down)."""

    hair: str  # true family: black, blond, brown or gray
    hair_rgb: RGB
    swap_rgb: RGB | None  # typical shade of the other family (black <-> blond), else None
    hair_style: str
    wavy: bool
    hair_volume: float
    hair_length: float
    part: float  # -1..1, asymmetry of the hairline
    skin_rgb: RGB
    background: tuple[RGB, RGB]
    gradient: str  # "flat", "vertical", "horizontal"
    clothes_rgb: RGB
    dx: float
    dy: float
    scale: float
    tilt: float  # degrees
    face_width: float
    face_length: float
    jaw: float  # 0 round .. 1 pointed chin
    eye_x: float
    eye_w: float
    eye_h: float
    iris_rgb: RGB
    brow_thickness: float
    brow_arch: float
    brow_rgb: RGB
    nose_width: float
    mouth_w: float
    lip_rgb: RGB
    lip_size: float
    smiling: bool
    mouth_open: bool
    rosy: bool
    male: bool
    young: bool
    glasses: bool
    glasses_shape: float  # superellipse exponent: 2 round .. 5 rectangular
    glasses_rgb: RGB
    frame_width: float
    detail_seed: int  # strands of the hair shading


class _Draws:
    """Uniform numbers consumed in order from one face's stream (fast: one numpy call per face)."""

    def __init__(self, rng: np.random.Generator, n: int = 160) -> None:
        self.values = rng.random(n).tolist()
        self.i = 0

    def u(self, low: float = 0.0, high: float = 1.0) -> float:
        value = self.values[self.i]
        self.i += 1
        return low + (high - low) * value

    def chance(self, p: float) -> bool:
        return self.u() < p

    def pick(self, options: Sequence, weights: Sequence[float] | None = None):
        x = self.u()
        if weights is None:
            return options[min(int(x * len(options)), len(options) - 1)]
        total, acc = sum(weights), 0.0
        for option, weight in zip(options, weights, strict=True):
            acc += weight / total
            if x < acc:
                return option
        return options[-1]

    def shade(self, palette: Sequence[RGB]) -> RGB:
        """A colour between two neighbouring palette entries (keeps the family, varies the shade)."""
        k = min(int(self.u() * len(palette)), len(palette) - 1)
        other = palette[min(k + 1, len(palette) - 1)]
        t = round(self.u(0.0, 2.0)) / 4  # 0, 1/4 or 1/2: a finite set, so colour ramps are cached
        return _mix(palette[k], other, t)


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def _scale(c: RGB, f: float) -> RGB:
    return tuple(min(255, max(0, int(round(x * f)))) for x in c)  # type: ignore[return-value]


def _face_rng(seed: int, kind: str, index: int, stream: int = 0) -> np.random.Generator:
    """Face `index` of data set `kind`: its own streams (0: drawing, 1: labels), whatever the count."""
    return np.random.default_rng([seed, {"celeba": 1, "glasses": 2}[kind], index, stream])


def sample_face(seed: int, index: int, kind: str = "celeba") -> FaceParams:
    """The parameters of face `index` (1-based, as in the file names) of data set `kind`."""
    rng = _face_rng(seed, kind, index)
    d = _Draws(rng)
    hair = d.pick(HAIR_FAMILIES, HAIR_SHARES)
    male = d.chance(0.42)
    young = d.chance(0.75)
    if hair == "gray":
        young = d.chance(0.1)
    else:
        d.u()
    style = d.pick(_HAIR_STYLES_M if male else _HAIR_STYLES_F)
    swap_rgb = d.pick(_TYPICAL[_SWAP_FAMILY[hair]]) if hair in _SWAP_FAMILY else (d.u(), None)[1]
    glasses_p = CELEBA_GLASSES_RATE if kind == "celeba" else GLASSES_SHARE
    bg1 = _random_background(d)
    bg2 = _mix(bg1, _random_background(d), d.u(0.3, 0.8))
    hair_length = {"long": d.u(1.9, 2.8), "long_bangs": d.u(1.9, 2.8), "bob": d.u(0.75, 1.15),
                   "curly": d.u(0.5, 1.0)}.get(style, d.u(-0.05, 0.05))
    smiling = d.chance(0.48)
    return FaceParams(
        hair=hair,
        hair_rgb=d.shade(HAIR_PALETTES[hair]),
        swap_rgb=swap_rgb,
        hair_style=style,
        wavy=d.chance(0.35),
        hair_volume=d.u(0.0, 0.14),
        hair_length=hair_length,
        part=d.u(-1.0, 1.0),
        skin_rgb=_mix(d.pick(_SKINS, _SKIN_WEIGHTS), d.pick(_SKINS), d.u(0.0, 0.3)),
        background=(bg1, bg2),
        gradient=d.pick(("flat", "vertical", "vertical", "horizontal")),
        clothes_rgb=_random_background(d, saturation=(0.2, 0.7), value=(0.2, 0.9)),
        dx=d.u(-0.12, 0.12),
        dy=d.u(-0.1, 0.1),
        scale=d.u(0.92, 1.08),
        tilt=d.u(-7.0, 7.0),
        face_width=d.u(0.9, 1.08) + (0.04 if male else 0.0),
        face_length=d.u(1.22, 1.42),
        jaw=d.u(0.1, 0.9),
        eye_x=d.u(0.37, 0.44),
        eye_w=d.u(0.15, 0.19),
        eye_h=d.u(0.065, 0.1),
        iris_rgb=d.pick(_IRISES, (4, 3, 2, 1, 2)),
        brow_thickness=d.u(0.035, 0.065) + (0.015 if male else 0.0),
        brow_arch=d.u(0.0, 0.08),
        brow_rgb=_scale(d.pick(((70, 50, 38), (52, 38, 30), (96, 70, 48), (40, 32, 30))), d.u(0.85, 1.1)),
        nose_width=d.u(0.06, 0.1),
        mouth_w=d.u(0.2, 0.3),
        lip_rgb=(_mix((200, 80, 90), (150, 40, 60), d.u()) if (not male and d.chance(0.55))
                 else _scale((190, 110, 105), d.u(0.85, 1.05))),
        lip_size=d.u(0.035, 0.065),
        smiling=smiling,
        mouth_open=d.chance(0.7 if smiling else 0.15),
        rosy=d.chance(0.12),
        male=male,
        young=young,
        glasses=d.chance(glasses_p),
        glasses_shape=d.u(2.0, 5.0),
        glasses_rgb=d.pick(_FRAMES),
        frame_width=d.u(0.045, 0.08),
        detail_seed=int(rng.integers(0, 2**31)),
    )


def _random_background(d: _Draws, saturation: tuple[float, float] = (0.05, 0.45),
                       value: tuple[float, float] = (0.45, 0.95)) -> RGB:
    h, s, v = d.u(), d.u(*saturation), d.u(*value)
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    rgb = ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))[i]
    return tuple(int(round(255 * c)) for c in rgb)  # type: ignore[return-value]


# ----------------------------------------------------------------------------- geometry
class _Frame:
    """Face units -> canvas pixels: pose jitter (shift, scale, tilt) applied to every point."""

    def __init__(self, p: FaceParams, layout: Layout, factor: float) -> None:
        self.unit = layout.unit * p.scale * factor
        angle = math.radians(p.tilt)
        c, s = math.cos(angle), math.sin(angle)
        self.m = np.array([[c, s], [-s, c]]) * self.unit  # row vectors: pts @ m
        self.o = np.array([(layout.centre_x + p.dx * layout.unit) * factor,
                           (layout.centre_y + p.dy * layout.unit) * factor])

    def __call__(self, pts: np.ndarray) -> list[float]:
        return (pts @ self.m + self.o).ravel().tolist()


_EYE_Y = -0.15  # eye centres' height in face units (y points down)


def eye_centres(p: FaceParams, layout: Layout = CELEBA_LAYOUT) -> np.ndarray:
    """Where face `p` has its pupils' centres, as [[x, y] image-left eye, [x, y] right eye] in
    pixels of the final `layout`-sized image (pixel centres at integer coordinates).

    (Extra code – not in the book.) The ground truth for `utils.faces`: faces are drawn at
    `_SS`x and reduced, so 1x pixel k covers drawn pixels _SS*k .. _SS*k + _SS - 1.
    """
    frame = _Frame(p, layout, 1.0)
    eyes = np.array(frame(np.array([[-p.eye_x, _EYE_Y], [p.eye_x, _EYE_Y]]))).reshape(2, 2)
    eyes = eyes - (_SS - 1) / (2 * _SS)
    return eyes[np.argsort(eyes[:, 0])]


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 36,
             a0: float = 0.0, a1: float = 2 * math.pi) -> np.ndarray:
    return _unit_arc(n, a0, a1) * (rx, ry) + (cx, cy)


@functools.lru_cache(maxsize=64)
def _unit_arc(n: int, a0: float, a1: float) -> np.ndarray:
    t = np.linspace(a0, a1, n, endpoint=abs(a1 - a0) < 2 * math.pi - 1e-9)
    arc = np.column_stack([np.cos(t), np.sin(t)])
    arc.flags.writeable = False  # shared by every face
    return arc


def _face_contour(p: FaceParams, n: int = 56) -> np.ndarray:
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    s = np.sin(t)
    lower = np.clip(s, 0, None)
    x = p.face_width * np.cos(t) * (1 - p.jaw * 0.38 * lower**2)
    y = np.where(s > 0, p.face_length * s, 1.15 * s)
    return np.column_stack([x, y])


def _face_half_width(p: FaceParams, y: np.ndarray) -> np.ndarray:
    """Half width of the face contour at height `y` (0 above the forehead / below the chin)."""
    s = np.where(y > 0, y / p.face_length, y / 1.15)
    inside = np.abs(s) < 1
    s = np.clip(s, -1, 1)
    lower = np.clip(s, 0, None)
    return np.where(inside, p.face_width * np.sqrt(1 - s**2) * (1 - p.jaw * 0.38 * lower**2), 0.0)


_NECK_HALF = 0.42
_SKULL_CY = -0.2


def _hair_geometry(p: FaceParams) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """(back hair polygon or None, front hair polygon, outer contour) in face units."""
    style = p.hair_style
    hw = p.face_width
    curly = style == "curly"
    rx = hw * (1.42 if curly else 1.12) + p.hair_volume
    ry = (1.5 if curly else 1.3) + p.hair_volume
    cy = _SKULL_CY
    bottom = max(p.hair_length, -0.05)
    flare = {"long": 0.12, "long_bangs": 0.12, "bob": 0.1}.get(style, 0.0)

    # outer contour: left bottom -> up -> over the top -> down to the right bottom
    arc = _ellipse(0, cy, rx, ry, 44, math.pi, 2 * math.pi)
    arc = np.vstack([arc, [[rx, cy]]])
    if curly:
        ang = np.arctan2(arc[:, 1] - cy, arc[:, 0])
        arc = np.column_stack([arc[:, 0] * (1 + 0.045 * np.sin(11 * ang)), cy + (arc[:, 1] - cy)
                               * (1 + 0.045 * np.sin(11 * ang))])
    ys = np.linspace(cy, bottom, 10) if bottom > cy + 0.05 else np.array([cy])
    side = rx + flare * (ys - cy)
    if style == "bob":  # the ends curl in
        side = side - 0.25 * np.clip((ys - (bottom - 0.3)) / 0.3, 0, 1) ** 2
    if p.wavy or curly:
        side = side + 0.05 * np.sin(7 * ys + 3 * p.part)
    right = np.column_stack([side, ys])[1:]
    left = np.column_stack([-side, ys])[::-1][:-1] if len(ys) > 1 else np.empty((0, 2))
    outer = np.vstack([left, arc, right])

    # hairline across the forehead, from the right temple to the left
    yt = -0.12
    xt = float(_face_half_width(p, np.array([yt]))[0]) * 0.97
    yc = {"bangs": -0.5, "long_bangs": -0.5, "receding": -1.02}.get(style, -0.88)
    x = np.linspace(xt, -xt, 25)
    r = np.abs(x) / xt
    k = 7.0 if yc > -0.6 else 2.6
    y = yt + (yc - yt) * (1 - r**k)
    if yc > -0.6:  # fringe: a soft wave, no sharp detail
        y = y + 0.035 * np.sin(x * 8 + 5 * p.part)
    else:
        y = y - 0.18 * p.part * (x / xt) * (1 - r**2)  # side part
    if style == "receding":
        y = y - 0.16 * np.exp(-(((np.abs(x) - 0.5) / 0.16) ** 2))
    hairline = np.column_stack([x, y])

    # inner edge down each side: hugs the face, then the neck
    if bottom > yt + 0.05:
        yi = np.linspace(yt, bottom - 0.1, 14)
        xi = np.maximum(_face_half_width(p, yi) * 0.96, _NECK_HALF + 0.06)
        if p.wavy or curly:
            xi = xi + 0.04 * np.sin(7 * yi + 3 * p.part)
        inner_right = np.column_stack([xi, yi])[::-1]
        inner_left = np.column_stack([-xi, yi])
    else:
        inner_right = inner_left = np.empty((0, 2))
    front = np.vstack([outer, inner_right, hairline, inner_left])
    back = outer if bottom > 0.3 else None
    return back, front, outer


# ----------------------------------------------------------------------------- drawing
def _background(p: FaceParams, size: tuple[int, int]) -> Image.Image:
    """A flat colour or a gentle linear gradient across the whole canvas.

    The gradient is computed on one row or column and stretched (nearest): 10x cheaper than
    blending two full canvases.
    """
    a, b = p.background
    if p.gradient == "flat":
        return Image.new("RGB", size, a)
    strip = (1, size[1]) if p.gradient == "vertical" else (size[0], 1)
    line = Image.composite(Image.new("RGB", strip, b), Image.new("RGB", strip, a), _ramp_strip(strip))
    return line.resize(size, Image.Resampling.NEAREST)


@functools.lru_cache(maxsize=16)
def _ramp_strip(strip: tuple[int, int]) -> Image.Image:
    """0 -> 255 along a 1-pixel strip (top to bottom, or left to right)."""
    ramp = Image.linear_gradient("L")  # 256x256, black at the top
    if strip[1] == 1:
        ramp = ramp.transpose(Image.Transpose.TRANSPOSE)
    return ramp.resize(strip, Image.Resampling.BILINEAR)


def _hair_shading(p: FaceParams, layout: Layout, outer: np.ndarray) -> Image.Image:
    """Strands and a highlight as a smooth grey map (128 = base colour), at the output size.

    Drawn at 1/4 of the final size and upscaled bilinearly, so strands are soft bands a
    small generator can reproduce, never pixel-level texture.
    """
    factor = 0.25
    size = (max(2, round(layout.width * factor)), max(2, round(layout.height * factor)))
    small = Image.new("L", size, 128)
    draw = ImageDraw.Draw(small)
    frame = _Frame(p, layout, factor)
    u = np.random.default_rng(p.detail_seed).random(18)
    crown = np.array([0.35 * p.part * p.face_width, _SKULL_CY - 1.1])
    targets = ((np.arange(9) + u[:9]) * (len(outer) / 9)).astype(int)  # spread around the head
    for target, tone in zip(targets.tolist(), u[9:].tolist(), strict=True):
        end = outer[target] * 0.97 + np.array([0, 0.05])
        mid = (crown + end) / 2 * 1.08
        value = 92 if tone < 0.6 else 168
        draw.line(frame(np.vstack([crown, mid, end])), fill=value, width=1)
    # a soft sheen on top of the head
    sheen = _ellipse(0.15 * p.part, _SKULL_CY, p.face_width * 0.78, 0.95, 12,
                     math.radians(215), math.radians(320))
    draw.line(frame(sheen), fill=178, width=2)
    small = small.filter(ImageFilter.GaussianBlur(0.8))  # soft strands, no stair-steps once upscaled
    return small.resize((layout.width, layout.height), Image.Resampling.BILINEAR)


@functools.lru_cache(maxsize=512)
def _ramp(rgb: RGB, family: str) -> bytes:
    """A 256-colour palette: shading 0..128..255 -> dark .. base colour .. light."""
    dark_factor, light_mix = _RAMP[family]
    base = np.array(rgb, dtype=np.float64)
    v = np.arange(256, dtype=np.float64)[:, None]
    dark = base * dark_factor
    light = base + (255 - base) * light_mix
    lo = dark + (base - dark) * (v / 128)
    hi = base + (light - base) * ((v - 128) / 127)
    return np.where(v < 128, lo, hi).round().clip(0, 255).astype(np.uint8).tobytes()


def _family_of(rgb: RGB, default: str) -> str:
    for family, palette in HAIR_PALETTES.items():
        if rgb in palette or rgb in _TYPICAL.get(family, ()):
            return family
    return default


def _body_shapes(p: FaceParams) -> list[tuple[np.ndarray, RGB]]:
    """Clothes, neck, ears and face outline: the opaque shapes in front of the back hair."""
    skin = p.skin_rgb
    neck_y = p.face_length * 0.55
    neck = np.array([[-_NECK_HALF, neck_y], [_NECK_HALF, neck_y], [_NECK_HALF * 1.05, 2.05],
                     [0.0, 2.35], [-_NECK_HALF * 1.05, 2.05]])
    shapes = [(_ellipse(0, 3.05, 2.1, 1.05, 40), p.clothes_rgb), (neck, _scale(skin, 0.9)),
              (_ellipse(0, p.face_length * 0.9, _NECK_HALF, 0.3, 20), _scale(skin, 0.78))]
    for sx in (-1, 1):
        shapes.append((_ellipse(sx * p.face_width * 0.98, 0.05, 0.14, 0.24, 20), _scale(skin, 0.93)))
    shapes.append((_face_contour(p), skin))
    return shapes


def _draw_features(draw: ImageDraw.ImageDraw, p: FaceParams, f: _Frame) -> None:
    """Cheeks, eyes, brows, nose and mouth, all inside the face outline."""
    skin = p.skin_rgb

    if p.rosy:
        for sx in (-1, 1):
            draw.polygon(f(_ellipse(sx * 0.55, 0.32, 0.16, 0.1, 20)), fill=_mix(skin, (225, 110, 115), 0.3))
    ey = _EYE_Y
    lash = _scale(p.brow_rgb, 0.6)
    white = (238, 234, 228)
    pupil_r = 0.55
    for sx in (-1, 1):
        cx = sx * p.eye_x
        t = np.linspace(0, math.pi, 14)
        upper = np.column_stack([cx + p.eye_w * np.cos(t), ey - p.eye_h * np.sin(t)])
        lower = np.column_stack([cx - p.eye_w * np.cos(t), ey + p.eye_h * 0.85 * np.sin(t)])
        draw.polygon(f(np.vstack([upper, lower])), fill=white)
        ir = p.eye_h * 0.82
        draw.polygon(f(_ellipse(cx, ey, ir, ir, 18)), fill=p.iris_rgb)
        draw.polygon(f(_ellipse(cx, ey, ir * pupil_r, ir * pupil_r, 12)), fill=(20, 16, 16))
        draw.line(f(upper), fill=lash, width=max(1, round(0.03 * f.unit)))
        # eyebrow: a tapered arc
        bx = np.linspace(cx - sx * 0.2, cx + sx * 0.22, 12)
        u = (bx - cx) / 0.21
        by = ey - 0.23 - p.brow_arch * (1 - u**2)
        thick = p.brow_thickness * (1.1 - 0.5 * np.clip(u * sx, 0, 1))
        brow = np.vstack([np.column_stack([bx, by - thick / 2]), np.column_stack([bx, by + thick / 2])[::-1]])
        draw.polygon(f(brow), fill=p.brow_rgb)

    # nose: a soft shadow under the tip and two nostrils
    ny = 0.3
    draw.polygon(f(_ellipse(0, ny - 0.02, p.nose_width * 1.5, 0.06, 20)), fill=_scale(skin, 0.9))
    draw.line(f(np.array([[0.05, ey + 0.08], [0.07, ny - 0.08]])), fill=_scale(skin, 0.9),
              width=max(1, round(0.035 * f.unit)))
    for sx in (-1, 1):
        nostril = _ellipse(sx * p.nose_width * 0.75, ny + 0.02, 0.035, 0.02, 10)
        draw.polygon(f(nostril), fill=_scale(skin, 0.6))

    # mouth: the smile bends the line between the lips
    my = 0.66
    x = np.linspace(-p.mouth_w, p.mouth_w, 17)
    r = 1 - (x / p.mouth_w) ** 2
    line_y = my - (0.075 if p.smiling else 0.01) * (1 - r)
    top = line_y - p.lip_size * r**0.6 - 0.012 * np.cos(x * 20) * r
    bottom = line_y + p.lip_size * 1.25 * r**0.6
    if p.mouth_open:
        o_up = 0.02 + 0.01 * p.smiling
        o_dn = 0.08 if p.smiling else 0.05
        top = np.minimum(top, line_y - o_up * r - 0.02 * r)
        bottom = np.maximum(bottom, line_y + o_dn * r + 0.025 * r)
    lips = np.vstack([np.column_stack([x, top]), np.column_stack([x, bottom])[::-1]])
    draw.polygon(f(lips), fill=p.lip_rgb)
    if p.mouth_open:
        xi = x * 0.86
        inner_top = np.column_stack([xi, line_y - o_up * r])
        inner_bot = np.column_stack([xi, line_y + o_dn * r])
        draw.polygon(f(np.vstack([inner_top, inner_bot[::-1]])), fill=(70, 24, 30))
        if p.smiling:
            teeth_bot = np.column_stack([xi, line_y - o_up * r + (o_up + o_dn) * 0.45 * r])
            draw.polygon(f(np.vstack([inner_top, teeth_bot[::-1]])), fill=(236, 232, 222))
    else:
        draw.line(f(np.column_stack([x, line_y])), fill=_scale(p.lip_rgb, 0.65),
                  width=max(1, round(0.022 * f.unit)))


def _glasses_strokes(p: FaceParams) -> list[np.ndarray]:
    """Polylines of the frames: two superellipse rims, the bridge and the temples (face units)."""
    ey = -0.14
    a, b = p.eye_w + 0.09, 0.17
    n = p.glasses_shape
    t = np.linspace(0, 2 * math.pi, 33)
    c, s = np.cos(t), np.sin(t)
    sx_ = np.sign(c) * np.abs(c) ** (2 / n)
    sy_ = np.sign(s) * np.abs(s) ** (2 / n)
    strokes = []
    for side in (-1, 1):
        cx = side * p.eye_x
        strokes.append(np.column_stack([cx + a * sx_, ey + b * sy_]))
        temple_x = side * (p.face_width * 0.99)
        strokes.append(np.array([[cx + side * a, ey - 0.04], [temple_x, ey - 0.06]]))
    inner = p.eye_x - a
    bx = np.linspace(-inner, inner, 7)
    strokes.append(np.column_stack([bx, ey - 0.05 - 0.04 * (1 - (bx / max(inner, 1e-3)) ** 2)]))
    return strokes


def _draw_glasses(draws: Sequence[tuple[ImageDraw.ImageDraw, int | RGB]], p: FaceParams, f: _Frame) -> None:
    width = max(1, round(p.frame_width * f.unit))
    for stroke in _glasses_strokes(p):
        xy = f(stroke)
        for draw, fill in draws:
            draw.line(xy, fill=fill, width=width)


@dataclass
class _Scene:
    """A face drawn at 2x with its hair left black, plus where the hair is.

    Hair pixels are (0, 0, 0) on the 2x canvas, so after `reduce` an edge pixel holds only the
    non-hair part of its colour; adding `hair colour x coverage` then gives an antialiased edge
    in any palette. That makes a second hair colour cost only a few small 1x operations.
    """

    canvas: Image.Image  # 2x RGB, hair black
    hair: Image.Image  # 2x "L", 255 on hair
    shading: Image.Image  # 1x "L" strand map
    frame: _Frame


def _draw_scene(p: FaceParams, layout: Layout) -> _Scene:
    size = (layout.width * _SS, layout.height * _SS)
    f = _Frame(p, layout, _SS)
    canvas = _background(p, size)
    hair = Image.new("L", size, 0)
    draw, mask = ImageDraw.Draw(canvas), ImageDraw.Draw(hair)
    back, front, outer = _hair_geometry(p)
    if back is not None:
        xy = f(back)
        draw.polygon(xy, fill=(0, 0, 0))
        mask.polygon(xy, fill=255)
    for shape, fill in _body_shapes(p):  # the head occludes the back hair
        xy = f(shape)
        draw.polygon(xy, fill=fill)
        mask.polygon(xy, fill=0)
    _draw_features(draw, p, f)  # all inside the face outline
    xy = f(front)
    draw.polygon(xy, fill=(0, 0, 0))
    mask.polygon(xy, fill=255)
    return _Scene(canvas, hair, _hair_shading(p, layout, outer), f)


def _add_glasses(scene: _Scene, p: FaceParams, frames: Image.Image | None = None) -> None:
    """Glasses on top of everything: drawn on the canvas, erased from the hair mask."""
    targets = [(ImageDraw.Draw(scene.canvas), p.glasses_rgb), (ImageDraw.Draw(scene.hair), 0)]
    if frames is not None:
        targets.append((ImageDraw.Draw(frames), 255))
    _draw_glasses(targets, p, scene.frame)


def _colour_hair(base: Image.Image, coverage: Image.Image, shading: Image.Image, rgb: RGB,
                 family: str) -> Image.Image:
    """`base` (reduced, hair black) + hair colour x coverage, only inside the hair's bounding box."""
    image = base.copy()
    box = coverage.getbbox()
    if box is not None:
        colour = shading.crop(box)
        colour.putpalette(_ramp(rgb, family))
        cover = coverage.crop(box)
        hair = ImageChops.multiply(colour.convert("RGB"), Image.merge("RGB", (cover, cover, cover)))
        image.paste(ImageChops.add(base.crop(box), hair), box)
    return image


def _binary(coverage: Image.Image) -> Image.Image:
    """255 wherever anything covers a pixel, even a quarter of it."""
    return Image.fromarray(np.where(np.asarray(coverage) > 0, 255, 0).astype(np.uint8))


def render_face(p: FaceParams, layout: Layout = CELEBA_LAYOUT, *, hair_rgb: RGB | None = None,
                glasses: bool | None = None) -> tuple[Image.Image, Image.Image]:
    """One face as (RGB image, "L" hair mask: 255 wherever hair shows, even partly).

    `hair_rgb` overrides the hair colour (its family ramp is looked up from the palettes),
    `glasses` overrides whether glasses are drawn.
    """
    scene = _draw_scene(p, layout)
    if p.glasses if glasses is None else glasses:
        _add_glasses(scene, p)
    rgb = p.hair_rgb if hair_rgb is None else hair_rgb
    base, coverage = scene.canvas.reduce(_SS), scene.hair.reduce(_SS)
    return _colour_hair(base, coverage, scene.shading, rgb, _family_of(rgb, p.hair)), _binary(coverage)


def render_celeba_pair(p: FaceParams) -> tuple[Image.Image, Image.Image | None, Image.Image]:
    """(face, same face with the other hair family or None for brown/gray, hair mask) at 178x218."""
    scene = _draw_scene(p, CELEBA_LAYOUT)
    if p.glasses:
        _add_glasses(scene, p)
    base, coverage = scene.canvas.reduce(_SS), scene.hair.reduce(_SS)
    image = _colour_hair(base, coverage, scene.shading, p.hair_rgb, p.hair)
    swapped = (None if p.swap_rgb is None
               else _colour_hair(base, coverage, scene.shading, p.swap_rgb, _SWAP_FAMILY[p.hair]))
    return image, swapped, _binary(coverage)


def render_glasses_pair(p: FaceParams) -> tuple[Image.Image, Image.Image, Image.Image]:
    """(face, same face with glasses toggled, frames mask) at 256x256.

    The frames are laid over the finished face at 1x with their 2x coverage as alpha, so the
    second render costs one small composite.
    """
    scene = _draw_scene(p, GLASSES_LAYOUT)
    plain = _colour_hair(scene.canvas.reduce(_SS), scene.hair.reduce(_SS), scene.shading, p.hair_rgb, p.hair)
    frames = Image.new("L", scene.hair.size, 0)
    _draw_glasses([(ImageDraw.Draw(frames), 255)], p, scene.frame)
    coverage = frames.reduce(_SS)
    framed = Image.composite(Image.new("RGB", plain.size, p.glasses_rgb), plain, coverage)
    mask = _binary(coverage)
    return (framed, plain, mask) if p.glasses else (plain, framed, mask)


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
    draws = np.array([_face_rng(seed, "celeba", k, 1).random(48) for k in range(1, n + 1)]).reshape(n, 48)
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
    draws = np.array([_face_rng(seed, "glasses", k, 1).random(513) for k in range(1, labelled + 1)])
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
