"""Running trained generators: batches from folders, a reader's own photo, round trips.

Listing 6.8 runs the generators without `torch.no_grad()`, which keeps every activation
for a backward pass that never comes; here inference never builds a graph.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torchvision.utils import save_image

from utils.ch06util import list_images, make_transform, read_rgb

PathLike = str | os.PathLike


def load_images(paths: Sequence[PathLike], image_size: int) -> torch.Tensor:
    """Image files (any size, any PIL format) as an (N, 3, S, S) tensor in [-1, 1], resized
    exactly as training resizes them."""
    transform = make_transform(image_size, flip=False)
    return torch.stack([transform(image=read_rgb(p))["image"] for p in paths])


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
def translate(gen: nn.Module, images: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """`gen(images)` in eval mode, in batches, on the generator's device; returns CPU tensors."""
    device = next(gen.parameters()).device
    was_training = gen.training
    gen.eval()
    try:
        return torch.cat([gen(chunk.to(device)).float().cpu()
                          for chunk in images.split(batch_size)])
    finally:
        gen.train(was_training)


def round_trip(gen_there: nn.Module, gen_back: nn.Module,
               images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Translate, then translate back: (translated, back again). Back should match `images`."""
    translated = translate(gen_there, images)
    return translated, translate(gen_back, translated)


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
