"""Scores with ground truth: how a translation compares with the render of the right answer.

(Extra code – not in the book.) The metric functions (`psnr`, `masked_ssim`, masks, colours),
`evaluate_with_truth` / `evaluate_direction_with_truth`, and the input checks and helpers that
`utils.domain_metrics` shares. What each number means: `utils.evaluate`'s docstring.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from utils.ch06util import list_images
from utils.cli import SettingError, UserError
from utils.images import open_picture
from utils.inference import load_images

PathLike = str | os.PathLike


class EvaluationInputError(UserError, ValueError):
    """The images or files given to score are not usable (an empty folder, too few images)."""


class MissingPackageError(UserError, ImportError):
    """An optional package a requested score needs is not installed; the message says how to install it."""

# kind -> (name of A->B made by gen_B, name of B->A made by gen_A, the masked region's word)
KINDS: dict[str, tuple[str, str, str]] = {
    "hair": ("black_to_blond", "blond_to_black", "hair"),
    "glasses": ("remove_glasses", "add_glasses", "glasses"),
}

# ------------------------------------------------------------------ tensor helpers
def to_unit(images: torch.Tensor) -> torch.Tensor:
    """Model space [-1, 1] to [0, 1], the range every reported figure is measured in."""
    return (images.clamp(-1, 1) + 1) / 2


def grow_mask(mask: torch.Tensor, px: int) -> torch.Tensor:
    """Boolean `N,1,H,W` mask dilated by `px` pixels (a square neighbourhood)."""
    if px <= 0:
        return mask
    return F.max_pool2d(mask.float(), kernel_size=2 * px + 1, stride=1, padding=px) > 0


def shrink_mask(mask: torch.Tensor, px: int) -> torch.Tensor:
    """Boolean `N,1,H,W` mask eroded by `px` pixels, so that edge pixels blended with skin drop out."""
    return ~grow_mask(~mask, px)


def masked_mean_color(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean colour (`N,3`) of each image over its mask (`N,1,H,W`); zeros where the mask is empty."""
    weights = mask.to(images.dtype)
    return (images * weights).sum((2, 3)) / weights.sum((2, 3)).clamp(min=1)


def psnr(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
         max_db: float = 100.0) -> torch.Tensor:
    """Per-image PSNR in dB of `[0, 1]` images over `mask` (all pixels when None), capped at `max_db`.

    PSNR = 10 log10(1 / MSE). A perfect match has MSE 0 and infinite PSNR; the cap keeps
    means and JSON finite. An empty mask also gives `max_db` (no pixel differs).
    """
    if mask is None:
        mask = torch.ones_like(pred[:, :1], dtype=torch.bool)
    weights = mask.to(pred.dtype).expand_as(pred)
    mse = ((pred - target) ** 2 * weights).sum((1, 2, 3)) / weights.sum((1, 2, 3)).clamp(min=1)
    db = 10 * torch.log10(1 / mse.clamp(min=1e-30))
    return db.clamp(max=max_db)


def masked_ssim(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM of `[0, 1]` images averaged over the pixels of `mask` (`N,1,H,W`).

    The SSIM map is torchmetrics' (Gaussian window 11, sigma 1.5), averaged over channels.
    Windows near the mask's edge still see some masked pixels: grow the mask to exclude them.
    An empty mask gives 1.
    """
    from torchmetrics.functional.image import structural_similarity_index_measure

    # float64 (but Apple's MPS has none): in flat regions SSIM divides by variances near 0,
    # where float32 rounding shows (identical images score 0.9999 instead of 1)
    exact = torch.float32 if pred.device.type == "mps" else torch.float64
    _, ssim_map = structural_similarity_index_measure(
        pred.to(exact), target.to(exact), data_range=1.0, reduction="none", return_full_image=True)
    weights = mask.to(ssim_map.dtype)
    per_pixel = ssim_map.mean(1, keepdim=True)
    total = weights.sum((1, 2, 3))
    mean = (per_pixel * weights).sum((1, 2, 3)) / total.clamp(min=1)
    return torch.where(total > 0, mean, torch.ones_like(mean)).to(pred.dtype)


def target_reached(source: torch.Tensor, output: torch.Tensor, truth: torch.Tensor,
                   inside: torch.Tensor, outside: torch.Tensor,
                   max_outside_mae: float = 0.1) -> torch.Tensor:
    """Per image: 1.0 when `output` has the target colour inside and left the rest alone, else 0.0.

    All images in [0, 1]. (i) The mean colour of `output` over `inside` is nearer to the mean
    of `truth` there than to the mean of `source`; (ii) the mean absolute difference between
    `output` and `source` over `outside` is below `max_outside_mae`. NaN where `inside` is empty.
    """
    out_color = masked_mean_color(output, inside)
    to_truth = (out_color - masked_mean_color(truth, inside)).norm(dim=1)
    to_source = (out_color - masked_mean_color(source, inside)).norm(dim=1)
    weights = outside.to(source.dtype).expand_as(source)
    outside_mae = ((output - source).abs() * weights).sum((1, 2, 3)) / weights.sum((1, 2, 3)).clamp(min=1)
    correct = ((to_truth < to_source) & (outside_mae < max_outside_mae)).to(source.dtype)
    empty = inside.sum((1, 2, 3)) == 0
    return torch.where(empty, torch.full_like(correct, math.nan), correct)


def colour_offset_effect(gen: nn.Module, images: torch.Tensor,
                         offset: Sequence[float] = (0.3, -0.2, 0.1)) -> float:
    """The largest change in `gen`'s output when `offset` is added to each colour channel of `images`.

    About 1e-6 for the chapter's generator, whatever its weights: an instance norm follows its
    first convolution and removes the shift (the README's "What `make demo` shows"), so it
    cannot see an image's overall colour and must guess it from the content.
    """
    shift = torch.tensor(offset, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    with torch.inference_mode():
        return float((gen(images + shift) - gen(images)).abs().max())


# -------------------------------------------------------------------- files
def load_masks(paths: Sequence[Path], image_size: int) -> torch.Tensor:
    """Masks (mode L, 255 = region) as `N,1,S,S` coverage in [0, 1] (box-filter area average)."""
    masks = []
    for path in paths:
        with open_picture(path) as image:  # a damaged or giant mask: one clear error
            small = image.convert("L").resize((image_size, image_size), Image.Resampling.BOX)
        masks.append(torch.from_numpy(np.asarray(small, dtype=np.float32) / 255.0))
    return torch.stack(masks).unsqueeze(1)


def truth_files(truth_dir: PathLike, sources: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """`swapped/<stem>.png` and `mask/<stem>.png` of each source image, or a clear error."""
    truth_dir = Path(truth_dir)
    swapped = [truth_dir / "swapped" / f"{p.stem}.png" for p in sources]
    masks = [truth_dir / "mask" / f"{p.stem}.png" for p in sources]
    missing = [p for p in swapped + masks if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} ground-truth file(s) missing in {truth_dir}, e.g. {missing[0]}. "
            "--truth must be the ground_truth/<kind> folder written with the synthetic faces "
            "(it holds swapped/ and mask/); for real photos leave --truth out."
        )
    return swapped, masks


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def check_limit(limit: int | None) -> None:
    if limit is not None and limit < 0:
        raise SettingError(f"limit={limit}: use a number of images per direction, or 0 (or nothing) "
                           "for all of them (--limit).")


def source_paths(folder: PathLike, limit: int | None) -> list[Path]:
    """The images of `folder`, sorted; the first `limit` of them when `limit` is positive (0: all)."""
    check_limit(limit)
    paths = list_images(folder)
    if not paths:
        raise EvaluationInputError(
            f"No images in {folder}. Point it at a folder of held-out .jpg/.png faces (split with "
            "`python -m utils.prepare split celeba --test-count 100` to get files/test/black and blond).")
    return paths[:limit] if limit else paths


def check_size(image_size: int) -> None:
    if image_size < 8 or image_size % 4:
        raise SettingError(f"image_size={image_size}: use a multiple of 4, at least 8 "
                           "(the generator halves the size twice).")


@contextlib.contextmanager
def evaluating(*modules: nn.Module) -> Iterator[None]:
    """Eval mode and no autograd inside; the modules' previous training flags afterwards."""
    flags = [m.training for m in modules]
    try:
        for m in modules:
            m.eval()
        with torch.inference_mode():
            yield
    finally:
        for m, flag in zip(modules, flags, strict=True):
            m.train(flag)


def mean_of(values: list[torch.Tensor]) -> float:
    joined = torch.cat(values) if values else torch.empty(0)
    joined = joined[~joined.isnan()]
    return float(joined.mean()) if joined.numel() else math.nan


# ------------------------------------------------------------ with ground truth
def evaluate_direction_with_truth(
    gen: nn.Module, gen_back: nn.Module, source_dir: PathLike, truth_dir: PathLike, *,
    region: str = "hair", image_size: int = 256, device: torch.device | str = "cpu",
    batch_size: int = 8, erode_px: int = 1, grow_px: int = 2, max_outside_mae: float = 0.1,
    max_db: float = 100.0, limit: int | None = None,
) -> dict[str, float | int]:
    """Translate every image of `source_dir` with `gen` and score it against the ground truth.

    Returns ``{f"{region}_accuracy", f"psnr_outside_{region}", f"ssim_outside_{region}",
    "l1_to_truth", "cycle_l1", "count"}`` as defined in the module docstring.
    """
    check_size(image_size)
    sources = source_paths(source_dir, limit)
    swapped_paths, mask_paths = truth_files(truth_dir, sources)
    gen, gen_back = gen.to(device), gen_back.to(device)
    acc, psnrs, ssims, l1s, cycles = [], [], [], [], []
    with evaluating(gen, gen_back):
        for batch in chunks(range(len(sources)), batch_size):
            src = load_images([sources[i] for i in batch], image_size).to(device)
            truth = to_unit(load_images([swapped_paths[i] for i in batch], image_size).to(device))
            coverage = load_masks([mask_paths[i] for i in batch], image_size).to(device)
            fake = gen(src)
            back = gen_back(fake)
            src01, fake01 = to_unit(src), to_unit(fake)
            core = coverage >= 0.5
            inside = shrink_mask(core, erode_px)
            keep_raw = inside.sum((1, 2, 3), keepdim=True) == 0
            inside = torch.where(keep_raw, core, inside)
            outside = ~grow_mask(coverage > 0, grow_px)
            acc.append(target_reached(src01, fake01, truth, inside, outside, max_outside_mae).cpu())
            psnrs.append(psnr(fake01, src01, outside, max_db).cpu())
            ssims.append(masked_ssim(fake01, src01, outside).cpu())
            l1s.append((fake01 - truth).abs().mean((1, 2, 3)).cpu())
            cycles.append((src01 - to_unit(back)).abs().mean((1, 2, 3)).cpu())
    return {
        f"{region}_accuracy": mean_of(acc),
        f"psnr_outside_{region}": mean_of(psnrs),
        f"ssim_outside_{region}": mean_of(ssims),
        "l1_to_truth": mean_of(l1s),
        "cycle_l1": mean_of(cycles),
        "count": len(sources),
    }


def evaluate_with_truth(gen_A: nn.Module, gen_B: nn.Module, test_A: PathLike, test_B: PathLike,
                        truth: PathLike, *, kind: str = "hair", **options: Any) -> dict[str, dict]:
    """Both directions: gen_B on the A test images, gen_A on the B test images.

    `truth` is the ground_truth/<kind> folder; `options` go to `evaluate_direction_with_truth`.
    Returns ``{"black_to_blond": {...}, "blond_to_black": {...}}`` (or the glasses names).
    """
    a_to_b, b_to_a, region = kind_names(kind)
    return {
        a_to_b: evaluate_direction_with_truth(gen_B, gen_A, test_A, truth, region=region, **options),
        b_to_a: evaluate_direction_with_truth(gen_A, gen_B, test_B, truth, region=region, **options),
    }


def kind_names(kind: str) -> tuple[str, str, str]:
    if kind not in KINDS:
        raise SettingError(f"kind={kind!r}: use one of {sorted(KINDS)}.")
    return KINDS[kind]


