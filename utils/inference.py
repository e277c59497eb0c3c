"""Running trained generators: batches from folders, a reader's own photo, round trips.

Listing 6.8 runs the generators without `torch.no_grad()`, which keeps every activation
for a backward pass that never comes; here inference never builds a graph.

(Extra code – not in the book.) Every picture is read by `utils.images` (EXIF orientation,
transparency on white, 16-bit scaled), tensors handed to `translate`/`round_trip` are checked
(float, (B, 3, H, W), in [-1, 1]) with an error that says how to convert them, and the output
has the input's height and width even when they are not multiples of 4 (the generator's two
stride-2 steps would otherwise return a different size).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision.utils import save_image

from utils.ch06util import list_images, make_transform
from utils.images import read_rgb_array, to_rgb

PathLike = str | os.PathLike


def load_images(paths: Sequence[PathLike], image_size: int) -> torch.Tensor:
    """Image files (any size, any PIL format) as an (N, 3, S, S) tensor in [-1, 1], resized
    exactly as training resizes them."""
    transform = make_transform(image_size, flip=False)
    return torch.stack([transform(image=read_rgb_array(p))["image"] for p in paths])


def to_model_input(picture: Image.Image | np.ndarray, image_size: int) -> torch.Tensor:
    """A PIL image (any mode: `utils.images.to_rgb` rules) or an (H, W, 3) uint8 array as a
    (1, 3, S, S) tensor in [-1, 1], resized exactly as training resizes (listing 6.2)."""
    if isinstance(picture, Image.Image):
        picture = np.asarray(to_rgb(picture))
    picture = np.asarray(picture)
    if picture.dtype != np.uint8 or picture.ndim != 3 or picture.shape[2] != 3:
        raise ValueError(f"expected a PIL image or an (H, W, 3) uint8 array, got an array of shape "
                         f"{picture.shape} and dtype {picture.dtype}.")
    return make_transform(image_size, flip=False)(image=picture)["image"].unsqueeze(0)


_RANGE_SLACK = 1e-3  # float rounding around tanh's [-1, 1]


def check_images(images, name: str = "images") -> torch.Tensor:
    """`images` if it is what the generators take: a float tensor (B, 3, H, W) in [-1, 1].

    Otherwise a TypeError (not a tensor, not float) or ValueError (shape, channels, range) that
    says what was expected and the one line that converts it.
    """
    expected = "a float tensor of shape (B, 3, H, W) with values in [-1, 1]"
    if not isinstance(images, torch.Tensor):
        hint = ("read files with utils.inference.load_images(paths, size), or convert a PIL image "
                "with utils.inference.to_model_input(image, size)")
        raise TypeError(f"{name}: expected {expected}, got a {type(images).__module__}."
                        f"{type(images).__name__} — {hint}.")
    if not images.is_floating_point():
        raise TypeError(f"{name}: expected {expected}, got dtype {images.dtype} — for 0..255 "
                        f"pixels use {name}.float() / 127.5 - 1.")
    if images.dim() == 3 and images.shape[0] in (1, 3, 4):
        raise ValueError(f"{name}: expected {expected}, got one image of shape "
                         f"{tuple(images.shape)} — add the batch dimension: {name}.unsqueeze(0).")
    if images.dim() != 4 or images.numel() == 0:
        raise ValueError(f"{name}: expected {expected}, got shape {tuple(images.shape)}.")
    channels = images.shape[1]
    if channels != 3:
        if images.shape[-1] in (1, 3, 4):
            fix = f"channels come last: use {name}.permute(0, 3, 1, 2)"
        elif channels == 1:
            fix = f"greyscale: repeat it, {name}.expand(-1, 3, -1, -1)"
        elif channels == 4:
            fix = (f"RGBA: load the file with utils.inference.load_images (transparency on white), "
                   f"or drop alpha with {name}[:, :3]")
        else:
            fix = "the generators take RGB images"
        raise ValueError(f"{name}: expected {expected}, got {channels} channels "
                         f"(shape {tuple(images.shape)}) — {fix}.")
    low, high = (float(v) for v in torch.aminmax(images.detach().float()))
    if math.isnan(low) or math.isnan(high) or low < -1 - _RANGE_SLACK or high > 1 + _RANGE_SLACK:
        fix = (f"they look like 0..255 pixels: use {name} / 127.5 - 1" if low >= 0 and high > 1.5
               else "rescale them to [-1, 1] (pixels in 0..1: x * 2 - 1)")
        raise ValueError(f"{name}: expected {expected}, got values from {low:.3g} to {high:.3g} — "
                         f"{fix}.")
    return images


def _run(gen: nn.Module, chunk: torch.Tensor, device: torch.device, mask: bool = False) -> torch.Tensor:
    """`gen(chunk)` at the input's size: padded (reflected) to a multiple of 4, then cropped.
    With `mask`, the generator's mask instead (a mask variant's, `gen(x, return_mask=True)`)."""
    height, width = chunk.shape[-2:]
    pad_h, pad_w = -height % 4, -width % 4
    x = chunk.to(device)
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate" if min(height, width) < 2 else "reflect")
    out = gen(x, return_mask=True)[1] if mask else gen(x)
    return out[..., :height, :width].float().cpu()


def load_image(path: PathLike, image_size: int) -> torch.Tensor:
    """One image file (a reader's own photo, say) as a (1, 3, S, S) tensor in [-1, 1]."""
    return load_images([path], image_size)


def load_batch(folder: PathLike, count: int, image_size: int, offset: int = 0) -> torch.Tensor:
    """The first `count` images of `folder` (sorted, from `offset`) as one (N, 3, S, S) tensor."""
    paths = list_images(folder)[offset:offset + count]
    if not paths:
        raise ValueError(f"No images in {folder} from position {offset}: nothing to show.")
    return load_images(paths, image_size)


@torch.inference_mode()
def translate(gen: nn.Module, images: torch.Tensor, batch_size: int = 16, *,
              mask: bool = False) -> torch.Tensor:
    """`gen(images)` in eval mode, in batches, on the generator's device; returns CPU tensors of
    the input's shape (`images`: float (B, 3, H, W) in [-1, 1], checked). With `mask`, the
    (B, 1, H, W) masks of a mask variant instead (see `edit_masks`)."""
    check_images(images)
    device = next(gen.parameters()).device
    was_training = gen.training
    gen.eval()
    try:
        return torch.cat([_run(gen, chunk, device, mask) for chunk in images.split(batch_size)])
    finally:
        gen.train(was_training)


def has_mask(gen: nn.Module) -> bool:
    """(extra code) Whether `gen` predicts where it edits: a mask variant of `ch06util.Generator`."""
    return bool(getattr(gen, "has_mask", False))


def edit_masks(gen: nn.Module, images: torch.Tensor) -> torch.Tensor | None:
    """(extra code) Where a mask variant edits `images`, as grey pictures in [-1, 1] for `show_rows`:
    white where it draws new content, black where its output is the input itself. None for a
    generator without a mask (the chapter's redraws every pixel)."""
    if not has_mask(gen):
        return None
    return (translate(gen, images, mask=True) * 2 - 1).expand(-1, 3, -1, -1)


def round_trip(gen_there: nn.Module, gen_back: nn.Module,
               images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Translate, then translate back: (translated, back again). Back should match `images`."""
    translated = translate(gen_there, images)
    return translated, translate(gen_back, translated)


def round_trip_stages(gen_there: nn.Module, gen_back: nn.Module, images: torch.Tensor,
                      labels: Sequence[str]) -> tuple[list[torch.Tensor], list[str]]:
    """A round trip's stages and their titles for `utils.show.show_round_trips`: the images, their
    translation, (extra code) the mask of where `gen_there` edited them when it has one, and the
    translation back. `labels`: the three stages' names, e.g. ("black", "→ blond", "→ black")."""
    source, there_label, back_label = labels
    there, back = round_trip(gen_there, gen_back, images)
    masks = edit_masks(gen_there, images)
    if masks is None:
        return [images, there, back], [source, there_label, back_label]
    return [images, there, masks, back], [source, there_label, "edited (white)", back_label]


def save_round_trips(rows: Sequence[tuple[str, torch.Tensor]], out_dir: PathLike) -> list[Path]:
    """Listing 6.8's files: one PNG per (name, batch), e.g. `black0.png`, `fakeblond0.png`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, images in rows:
        path = out / f"{name}.png"
        save_image(images * 0.5 + 0.5, path)
        written.append(path)
    return written
