"""What a built-in synthetic face is: layouts, palettes and the parameters drawn per face.

`sample_face(seed, index, kind)` draws face *k*'s `FaceParams` from its own random stream
`(seed, kind, k)`, so a face does not depend on how many are made. `utils.synthetic_drawing`
draws them; `utils.synthetic` writes the data sets (see its docstring for the design).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

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
RAMP: dict[str, tuple[float, float]] = {
    "black": (0.55, 0.13), "blond": (0.86, 0.35), "brown": (0.68, 0.18), "gray": (0.78, 0.30),
}
# the "typical" shades a swapped render uses (the middle of the other family)
TYPICAL_HAIR: dict[str, tuple[RGB, ...]] = {
    "black": ((28, 22, 20), (32, 26, 24), (38, 30, 26)),
    "blond": ((226, 196, 130), (222, 190, 122), (236, 214, 160)),
}
SWAP_FAMILY = {"black": "blond", "blond": "black"}

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
SS = 2  # supersampling factor: draw at 2x, then Image.reduce(2) antialiases every edge


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


class Draws:
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
        return mix_rgb(palette[k], other, t)


def mix_rgb(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def scale_rgb(c: RGB, f: float) -> RGB:
    return tuple(min(255, max(0, int(round(x * f)))) for x in c)  # type: ignore[return-value]


def face_rng(seed: int, kind: str, index: int, stream: int = 0) -> np.random.Generator:
    """Face `index` of data set `kind`: its own streams (0: drawing, 1: labels), whatever the count."""
    return np.random.default_rng([seed, {"celeba": 1, "glasses": 2}[kind], index, stream])


def sample_face(seed: int, index: int, kind: str = "celeba") -> FaceParams:
    """The parameters of face `index` (1-based, as in the file names) of data set `kind`."""
    rng = face_rng(seed, kind, index)
    d = Draws(rng)
    hair = d.pick(HAIR_FAMILIES, HAIR_SHARES)
    male = d.chance(0.42)
    young = d.chance(0.75)
    if hair == "gray":
        young = d.chance(0.1)
    else:
        d.u()
    style = d.pick(_HAIR_STYLES_M if male else _HAIR_STYLES_F)
    swap_rgb = d.pick(TYPICAL_HAIR[SWAP_FAMILY[hair]]) if hair in SWAP_FAMILY else (d.u(), None)[1]
    glasses_p = CELEBA_GLASSES_RATE if kind == "celeba" else GLASSES_SHARE
    bg1 = random_background(d)
    bg2 = mix_rgb(bg1, random_background(d), d.u(0.3, 0.8))
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
        skin_rgb=mix_rgb(d.pick(_SKINS, _SKIN_WEIGHTS), d.pick(_SKINS), d.u(0.0, 0.3)),
        background=(bg1, bg2),
        gradient=d.pick(("flat", "vertical", "vertical", "horizontal")),
        clothes_rgb=random_background(d, saturation=(0.2, 0.7), value=(0.2, 0.9)),
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
        brow_rgb=scale_rgb(d.pick(((70, 50, 38), (52, 38, 30), (96, 70, 48), (40, 32, 30))), d.u(0.85, 1.1)),
        nose_width=d.u(0.06, 0.1),
        mouth_w=d.u(0.2, 0.3),
        lip_rgb=(mix_rgb((200, 80, 90), (150, 40, 60), d.u()) if (not male and d.chance(0.55))
                 else scale_rgb((190, 110, 105), d.u(0.85, 1.05))),
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


def random_background(d: Draws, saturation: tuple[float, float] = (0.05, 0.45),
                       value: tuple[float, float] = (0.45, 0.95)) -> RGB:
    h, s, v = d.u(), d.u(*saturation), d.u(*value)
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    rgb = ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))[i]
    return tuple(int(round(255 * c)) for c in rgb)  # type: ignore[return-value]


