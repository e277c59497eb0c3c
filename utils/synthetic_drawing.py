"""Drawing a built-in synthetic face: geometry, hair, features, glasses, and the pairs with ground truth.

`render_face` draws `FaceParams` (from `utils.synthetic_faces`) at 2x and reduces it (antialiasing);
`render_celeba_pair` / `render_glasses_pair` add the same face with the other hair colour (or
with/without glasses) and the mask of the pixels that differ. `eye_centres` is the ground truth
for `utils.faces`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from utils.synthetic_faces import (
    CELEBA_LAYOUT,
    GLASSES_LAYOUT,
    HAIR_PALETTES,
    RAMP,
    RGB,
    SS,
    SWAP_FAMILY,
    TYPICAL_HAIR,
    FaceParams,
    Layout,
    mix_rgb,
    scale_rgb,
)


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
    `SS`x and reduced, so 1x pixel k covers drawn pixels SS*k .. SS*k + SS - 1.
    """
    frame = _Frame(p, layout, 1.0)
    eyes = np.array(frame(np.array([[-p.eye_x, _EYE_Y], [p.eye_x, _EYE_Y]]))).reshape(2, 2)
    eyes = eyes - (SS - 1) / (2 * SS)
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
    dark_factor, light_mix = RAMP[family]
    base = np.array(rgb, dtype=np.float64)
    v = np.arange(256, dtype=np.float64)[:, None]
    dark = base * dark_factor
    light = base + (255 - base) * light_mix
    lo = dark + (base - dark) * (v / 128)
    hi = base + (light - base) * ((v - 128) / 127)
    return np.where(v < 128, lo, hi).round().clip(0, 255).astype(np.uint8).tobytes()


def _family_of(rgb: RGB, default: str) -> str:
    for family, palette in HAIR_PALETTES.items():
        if rgb in palette or rgb in TYPICAL_HAIR.get(family, ()):
            return family
    return default


def _body_shapes(p: FaceParams) -> list[tuple[np.ndarray, RGB]]:
    """Clothes, neck, ears and face outline: the opaque shapes in front of the back hair."""
    skin = p.skin_rgb
    neck_y = p.face_length * 0.55
    neck = np.array([[-_NECK_HALF, neck_y], [_NECK_HALF, neck_y], [_NECK_HALF * 1.05, 2.05],
                     [0.0, 2.35], [-_NECK_HALF * 1.05, 2.05]])
    shapes = [(_ellipse(0, 3.05, 2.1, 1.05, 40), p.clothes_rgb), (neck, scale_rgb(skin, 0.9)),
              (_ellipse(0, p.face_length * 0.9, _NECK_HALF, 0.3, 20), scale_rgb(skin, 0.78))]
    for sx in (-1, 1):
        shapes.append((_ellipse(sx * p.face_width * 0.98, 0.05, 0.14, 0.24, 20), scale_rgb(skin, 0.93)))
    shapes.append((_face_contour(p), skin))
    return shapes


def _draw_features(draw: ImageDraw.ImageDraw, p: FaceParams, f: _Frame) -> None:
    """Cheeks, eyes, brows, nose and mouth, all inside the face outline."""
    skin = p.skin_rgb

    if p.rosy:
        for sx in (-1, 1):
            draw.polygon(f(_ellipse(sx * 0.55, 0.32, 0.16, 0.1, 20)),
                         fill=mix_rgb(skin, (225, 110, 115), 0.3))
    ey = _EYE_Y
    lash = scale_rgb(p.brow_rgb, 0.6)
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
    draw.polygon(f(_ellipse(0, ny - 0.02, p.nose_width * 1.5, 0.06, 20)), fill=scale_rgb(skin, 0.9))
    draw.line(f(np.array([[0.05, ey + 0.08], [0.07, ny - 0.08]])), fill=scale_rgb(skin, 0.9),
              width=max(1, round(0.035 * f.unit)))
    for sx in (-1, 1):
        nostril = _ellipse(sx * p.nose_width * 0.75, ny + 0.02, 0.035, 0.02, 10)
        draw.polygon(f(nostril), fill=scale_rgb(skin, 0.6))

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
        draw.line(f(np.column_stack([x, line_y])), fill=scale_rgb(p.lip_rgb, 0.65),
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
    size = (layout.width * SS, layout.height * SS)
    f = _Frame(p, layout, SS)
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
    base, coverage = scene.canvas.reduce(SS), scene.hair.reduce(SS)
    return _colour_hair(base, coverage, scene.shading, rgb, _family_of(rgb, p.hair)), _binary(coverage)


def render_celeba_pair(p: FaceParams) -> tuple[Image.Image, Image.Image | None, Image.Image]:
    """(face, same face with the other hair family or None for brown/gray, hair mask) at 178x218."""
    scene = _draw_scene(p, CELEBA_LAYOUT)
    if p.glasses:
        _add_glasses(scene, p)
    base, coverage = scene.canvas.reduce(SS), scene.hair.reduce(SS)
    image = _colour_hair(base, coverage, scene.shading, p.hair_rgb, p.hair)
    swapped = (None if p.swap_rgb is None
               else _colour_hair(base, coverage, scene.shading, p.swap_rgb, SWAP_FAMILY[p.hair]))
    return image, swapped, _binary(coverage)


def render_glasses_pair(p: FaceParams) -> tuple[Image.Image, Image.Image, Image.Image]:
    """(face, same face with glasses toggled, frames mask) at 256x256.

    The frames are laid over the finished face at 1x with their 2x coverage as alpha, so the
    second render costs one small composite.
    """
    scene = _draw_scene(p, GLASSES_LAYOUT)
    plain = _colour_hair(scene.canvas.reduce(SS), scene.hair.reduce(SS), scene.shading, p.hair_rgb, p.hair)
    frames = Image.new("L", scene.hair.size, 0)
    _draw_glasses([(ImageDraw.Draw(frames), 255)], p, scene.frame)
    coverage = frames.reduce(SS)
    framed = Image.composite(Image.new("RGB", plain.size, p.glasses_rgb), plain, coverage)
    mask = _binary(coverage)
    return (framed, plain, mask) if p.glasses else (plain, framed, mask)


